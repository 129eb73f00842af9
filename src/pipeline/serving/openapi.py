"""One API description for every route: BentoML's `/docs.json` plus the routes it cannot see.

BentoML describes its `@bentoml.api` methods only; the image, admin, jobs and annotation routes
are Starlette routes mounted beside them, each module describing its own (`routes/*.py`: `PATHS`
built with the helpers here). This middleware adds them, with their schemas, the bearer-token
security scheme on every route that needs a token, and the JSON error answers, so clients,
schemathesis and the access tests walk one document that lists every route.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.config import MOST_MARGIN
from pipeline.serving.access import allowed_roles
from pipeline.serving.schemas import BatchItem, CensorResult, ErrorBody

COMPONENTS = (CensorResult, BatchItem, ErrorBody)  # The routes add their own (`SCHEMAS`).
IMAGE_ID = {
    "name": "image_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "description": "SHA-256 of the image file.",
}
STYLE = {
    "name": "style",
    "in": "query",
    "required": False,
    "schema": {"enum": ["black", "blur", "pixelate"]},
    "description": "Look of censored pixels; default: the deployment setting.",
}
MARGIN = {
    "name": "margin",
    "in": "query",
    "required": False,
    "schema": {"type": "number", "minimum": 0, "maximum": MOST_MARGIN},
    "description": "Model pixels by which the censored region is widened; default: the deployment setting.",
}
ERRORS = {
    "400": "A bad parameter or body.",
    "401": "No token, or one that is unknown or revoked.",
    "403": "The token lacks the role this route needs, or a path leaves the jobs or annotation root.",
    "404": "No such image, job, folder or pool file.",
    "409": "Off on this deployment (jobs: GORE_JOBS_ROOT unset; annotation: GORE_ANNOTATION_ROOT unset), or the "
    "served classifier cannot do what was asked (uncertainty needs our members; the cascade WRL and BCE ones).",
    "408": "A request body that stopped arriving (GORE_BODY_IDLE_S); nothing of it was kept.",
    "413": "A file, image (pixels x frames) or body over the limits.",
    "415": "Not one of the accepted image formats.",
    "422": "A file that cannot be decoded (empty, truncated, damaged), or labels none of which could be taken.",
    "500": "An internal error; it was logged. The request can be sent again.",
    "503": "Passing: a model service is down, the service is busy, or it is shutting down. See Retry-After.",
    "507": "The data directory is full; nothing was stored. See Retry-After.",
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before sending the request again.", "schema": {"type": "integer"}}
}
ALWAYS = ("401", "500", "503")  # Any route behind a token: no token, an internal error, draining.
UPLOAD_ERRORS = ("400", "403", "409", "413", "415", "422", "507")


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(code: str) -> dict[str, Any]:
    response = json_answer(ref(ErrorBody), ERRORS[code])
    if code in ("503", "507"):
        response["headers"] = RETRY_AFTER
    return response


def openapi30(node: Any) -> Any:
    """Pydantic writes JSON Schema 2020-12 (`anyOf` with null, `const`); OpenAPI 3.0 says
    `nullable` and `enum`. BentoML's document is 3.0, so every schema in it is converted."""
    if isinstance(node, list):
        return [openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "anyOf" in node and {"type": "null"} in node["anyOf"]:
        others = [openapi30(s) for s in node["anyOf"] if s != {"type": "null"}]
        base = others[0] if len(others) == 1 else {"anyOf": others}
        if "$ref" in base:
            base = {"allOf": [base]}
        rest = {k: openapi30(v) for k, v in node.items() if k != "anyOf"}
        return {**rest, **base, "nullable": True}
    if "const" in node:
        return {**{k: openapi30(v) for k, v in node.items() if k != "const"}, "enum": [node["const"]]}
    return {k: openapi30(v) for k, v in node.items()}


def operation(
    summary: str,
    ok: dict[str, Any],
    *,
    parameters=(),
    body: type[BaseModel] | None = None,
    ok_status: str = "200",
    errors=("400", "401", "403", "404"),
    request_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`body`: a JSON body of that model; `request_body`: any other body, as OpenAPI writes it."""
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": list(parameters),
        "responses": {ok_status: ok, **{code: error(code) for code in errors}},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
    if request_body is not None:
        operation["requestBody"] = request_body
    return operation


def png(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}


def components(models: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _describe_form(schema: dict[str, Any], files: str, most_files: int) -> None:
    """The upload form as the service takes it: the file field required (1 to `most_files` files
    for a batch), nothing else accepted, the options optional (left out: the deployment's)."""
    schema["required"], schema["additionalProperties"] = [files], False
    for name, prop in schema["properties"].items():
        if name == files:
            binary = {"type": "string", "format": "binary"}
            many = {"items": binary, "minItems": 1, "maxItems": most_files}
            schema["properties"][name] = {**prop, **(many if prop.get("type") == "array" else binary)}
        else:
            prop.pop("default", None)
            prop.pop("nullable", None)


def extend(
    document: dict[str, Any], most_files: int, routes: dict[str, Any], schemas: tuple[type[BaseModel], ...]
) -> dict[str, Any]:
    """BentoML's document with the mounted `routes` (path items) and their `schemas` added."""
    paths = document.setdefault("paths", {})
    paths.update(routes)
    answers = {"/censor": ref(CensorResult), "/censor/batch": {"type": "array", "items": ref(BatchItem)}}
    for route, files in (("/censor", "image"), ("/censor/batch", "images")):
        body = paths[route]["post"]["requestBody"]
        body["required"] = True
        _describe_form(body["content"]["multipart/form-data"]["schema"], files, most_files)
    for route, answer in answers.items():  # BentoML's own answer schema drops `nullable`: ours says it.
        paths[route]["post"]["responses"] = {
            "200": json_answer(answer, "The answer."),
            **{c: error(c) for c in UPLOAD_ERRORS},
        }
    paths["/readyz"]["get"].setdefault("responses", {})["503"] = error("503")
    parts = document.setdefault("components", {})
    parts.setdefault("schemas", {}).update(components((*COMPONENTS, *schemas)))
    parts.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    for path, operations in paths.items():
        for method, described in operations.items():
            if (
                not isinstance(described, dict)
                or allowed_roles(method.upper(), path.replace("{image_id}", "x").replace("{job_id}", "x")) is None
            ):
                continue
            described["security"] = [{"bearer": []}]
            for code in ALWAYS:
                described.setdefault("responses", {}).setdefault(code, error(code))
    return openapi30(document)


class OpenAPIExtension:
    """ASGI middleware: GET /docs.json answers BentoML's document, extended."""

    def __init__(
        self, app: ASGIApp, most_files: int, routes: dict[str, Any], schemas: tuple[type[BaseModel], ...]
    ) -> None:
        self.app, self.most_files, self.routes, self.schemas = app, most_files, routes, schemas

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/docs.json":
            return await self.app(scope, receive, send)
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = json.dumps(extend(json.loads(body), self.most_files, self.routes, self.schemas)).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
