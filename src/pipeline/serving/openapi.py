"""One API description for every route: BentoML's `/docs.json` plus the routes it cannot see.

BentoML describes its `@bentoml.api` methods only; the image and admin routes are Starlette
routes mounted beside them. This middleware adds them, with their schemas, the bearer-token
security scheme on every route that needs a token, and the JSON error answers, so clients,
schemathesis and the access tests walk one document that lists every route.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.serving.access import AuditEntry, NewToken, Token, required_role
from pipeline.serving.http import ReviewRequest, TokenRequest
from pipeline.serving.schemas import CensorResult, ErrorBody

COMPONENTS = (CensorResult, ErrorBody, Token, NewToken, AuditEntry, ReviewRequest, TokenRequest)
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
    "schema": {"type": "number", "minimum": 0, "maximum": 8},
    "description": "Model pixels by which the censored region is widened; default: the deployment setting.",
}
ERRORS = {
    "400": "A bad parameter or body.",
    "401": "No token, or one that is unknown or revoked.",
    "403": "The token lacks the role this route needs.",
    "404": "No such image, or nothing of that kind for it.",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(
    summary: str,
    ok: dict[str, Any],
    *,
    parameters=(),
    body: type[BaseModel] | None = None,
    ok_status: str = "200",
    errors=("400", "401", "403", "404"),
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": list(parameters),
        "responses": {ok_status: ok, **{code: _json(_ref(ErrorBody), ERRORS[code]) for code in errors}},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return operation


def _png(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}


def extra_paths() -> dict[str, Any]:
    record = _json(_ref(CensorResult), "The image as the deployment shows it.")
    return {
        "/images/{image_id}": {
            "get": _operation("The image's record, seen with the deployment's options.", record, parameters=[IMAGE_ID])
        },
        "/images/{image_id}/censored": {
            "get": _operation(
                "The censored copy (PNG; APNG for several frames), made on demand.",
                _png("The censored copy."),
                parameters=[IMAGE_ID, STYLE, MARGIN],
            )
        },
        "/images/{image_id}/mask": {
            "get": _operation("The gore mask (255 = censored).", _png("The mask."), parameters=[IMAGE_ID, MARGIN])
        },
        "/images/{image_id}/original": {
            "get": _operation(
                "The original file: an explicit reveal, written to the audit log.",
                {"description": "The file as uploaded.", "content": {"application/octet-stream": {}}},
                parameters=[IMAGE_ID],
            )
        },
        "/images/{image_id}/review": {
            "post": _operation(
                "A person's verdict, stored beside the analysis and audited.",
                record,
                parameters=[IMAGE_ID],
                body=ReviewRequest,
            )
        },
        "/admin/tokens": {
            "get": _operation(
                "Every token (never its secret).",
                _json({"type": "array", "items": _ref(Token)}, "Tokens."),
                errors=("401", "403"),
            ),
            "post": _operation(
                "A new token; its secret is in this answer only.",
                _json(_ref(NewToken), "The token."),
                body=TokenRequest,
                ok_status="201",
                errors=("400", "401", "403"),
            ),
        },
        "/admin/tokens/{token_id}": {
            "delete": _operation(
                "Revoke a token.",
                _json(_ref(Token), "The revoked token."),
                parameters=[{"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                errors=("401", "403", "404"),
            )
        },
        "/admin/audit": {
            "get": _operation(
                "The audit log, newest first (JSON, or CSV with format=csv).",
                _json({"type": "array", "items": _ref(AuditEntry)}, "Entries."),
                parameters=[
                    {"name": "format", "in": "query", "required": False, "schema": {"enum": ["json", "csv"]}},
                    {"name": "image_id", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                errors=("401", "403"),
            )
        },
    }


def components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in COMPONENTS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def extend(document: dict[str, Any]) -> dict[str, Any]:
    document.setdefault("paths", {}).update(extra_paths())
    parts = document.setdefault("components", {})
    parts.setdefault("schemas", {}).update(components())
    parts.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if (
                isinstance(operation, dict)
                and required_role(method.upper(), path.replace("{image_id}", "x")) is not None
            ):
                operation["security"] = [{"bearer": []}]
                operation.setdefault("responses", {}).setdefault("401", _json(_ref(ErrorBody), ERRORS["401"]))
    return document


class OpenAPIExtension:
    """ASGI middleware: GET /docs.json answers BentoML's document, extended."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            body = json.dumps(extend(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
