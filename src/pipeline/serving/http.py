"""HTTP pieces beside the BentoML APIs: the image and admin routes, and JSON error answers.

Everything graphic is sent with `Cache-Control: no-store`, so no browser or proxy keeps a copy.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from anyio import to_thread
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.config import MOST_MARGIN, CensorStyle
from pipeline.errors import Conflict, InvalidRequest, NotFound, PipelineError, UploadTooLarge
from pipeline.serving.access import principal
from pipeline.serving.annotation import OFF, AnnotationDesk, NextRequest
from pipeline.serving.censorer import Censorer
from pipeline.serving.views import Views
from pipeline.stores.access import ROLES, AccessStore, Role
from pipeline.stores.images import ImageStore, check_id
from pipeline.stores.jobs import JobRequest, JobStore
from pipeline.stores.records import Analysis, ImageRecord, Review, Verdict, utc_now

NO_STORE = {"Cache-Control": "no-store"}
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".avif": "image/avif",
}


INTERNAL = "internal error: the service logged it; the request can be sent again"
log = logging.getLogger(__name__)
T = TypeVar("T")


def error_response(error: PipelineError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=int(error.status), headers=error.headers())


def internal_error() -> JSONResponse:
    log.exception("unexpected error")
    return JSONResponse({"error": INTERNAL}, status_code=500)


async def answered(work: Awaitable[T]) -> T | JSONResponse:
    """The result, or a JSON error: a client's error with its status, anything else a logged 500."""
    try:
        return await work
    except PipelineError as error:
        return error_response(error)
    except Exception:  # Never a bare 500 or a stack trace to the client.
        return internal_error()


def upload_filename(spooled: Path) -> str:
    """The client's file name of a BentoML `Path` upload.

    BentoML spools each file to `NamedTemporaryFile(suffix=<client name>)`, named "tmp", eight
    random characters, then the suffix. Re-reading the form instead would wait forever: BentoML's
    context holds a second Request on the already consumed body.
    """
    name = spooled.name
    return name[11:] if name.startswith("tmp") and len(name) > 11 else "upload"


class ReviewRequest(BaseModel):
    verdict: Verdict = Field(description="What the image shows, as a person judged it.")
    note: str | None = Field(None, max_length=2000)


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Who or what will use it.")
    roles: list[Role] = Field(min_length=1, description=f"Some of: {', '.join(ROLES)}.")


def _handled(handler, query: tuple[str, ...] = (), body: type[BaseModel] | None = None):
    """Client errors become their JSON answer; query parameters the route does not take are one.

    `handler(request)` (or `handler(request, asked)` with `body`: the JSON body, read and
    validated here first) is a plain function that reads files and SQLite, run in a worker
    thread so it never blocks the event loop; or a coroutine that awaits such work itself."""

    async def wrapped(request: Request):
        try:
            unknown = sorted(set(request.query_params) - set(query))
            if unknown:
                takes = f"it takes {', '.join(query)}" if query else "it takes none"
                raise InvalidRequest(f"unknown query parameter {unknown[0]!r}: {takes}")
            arguments = (request, await _json(request, body)) if body and request.method == "POST" else (request,)
            if inspect.iscoroutinefunction(handler):
                return await handler(*arguments)
            return await to_thread.run_sync(handler, *arguments)
        except PipelineError as error:
            return error_response(error)
        except ValidationError as error:
            fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            return error_response(InvalidRequest(fields))
        except Exception:  # Never a bare 500 or a stack trace to the client.
            return internal_error()

    return wrapped


async def _json(request: Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError:
        raise
    except ValueError as error:
        raise InvalidRequest(f"send a JSON body ({error})") from None


class JSONErrors:
    """ASGI middleware: an error answer that is not JSON (the framework's own 404, 405, 500 in
    plain text) is sent as `{"error": "<its text>"}`, so clients meet one error shape. Paths under
    `html_prefixes` (the web app, whose pages answer errors as pages) are left alone."""

    def __init__(self, app: ASGIApp, html_prefixes: tuple[str, ...] = ()) -> None:
        self.app, self.html_prefixes = app, html_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.html_prefixes):
            return await self.app(scope, receive, send)
        held: Message | None = None
        chunks: list[bytes] = []
        started = False

        async def rewrite(message: Message) -> None:
            nonlocal held, started
            if message["type"] == "http.response.start":
                started = True
                kind = Headers(raw=message.get("headers", [])).get("content-type", "")
                if message["status"] >= 400 and not kind.startswith("application/json"):
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                text = b"".join(chunks).decode("utf-8", "replace").strip() or "error"
                body = json.dumps({"error": text}).encode()
                kept = [
                    (k, v) for k, v in held.get("headers", []) if k.lower() not in (b"content-type", b"content-length")
                ]
                kept += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({**held, "headers": kept})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        try:
            await self.app(scope, receive, rewrite)
        except Exception as error:  # Raised before any answer: answer it here, never leave the client hanging.
            if started:
                raise
            response = error_response(error) if isinstance(error, PipelineError) else internal_error()
            await response(scope, receive, send)


class PathAliases:
    """ASGI middleware: a path that names the same resource as another is routed as that one
    (`/jobs` as `/jobs/`: a mounted app's root has a slash, and a 307 would lose a POST's body)."""

    def __init__(self, app: ASGIApp, aliases: dict[str, str]) -> None:
        self.app, self.aliases = app, aliases

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.aliases:
            scope = {**scope, "path": self.aliases[scope["path"]], "raw_path": self.aliases[scope["path"]].encode()}
        await self.app(scope, receive, send)


async def _not_routed(request: Request, error: Exception) -> JSONResponse:
    """Starlette's own 404 and 405 answers, as JSON like every other error."""
    status = getattr(error, "status_code", 404)
    message = "no such route" if status == 404 else f"{request.method} is not allowed here"
    headers = getattr(error, "headers", None)
    return JSONResponse({"error": f"{message}: {request.url.path}"}, status_code=status, headers=headers)


JSON_ERRORS = {404: _not_routed, 405: _not_routed}


def images_app(store: ImageStore, views: Views, access: AccessStore) -> Starlette:
    """Mounted under /images: the record, its renderings, the original (logged), reviews."""

    def found(request: Request) -> tuple[ImageRecord, Analysis]:
        image_id = check_id(request.path_params["image_id"])
        record = store.record(image_id)
        analysis = record.latest_analysis() if record else None
        if record is None or analysis is None:
            raise NotFound(f"no image with id {image_id}: POST it to /censor first")
        return record, analysis

    def margin_of(request: Request) -> float | None:
        raw = request.query_params.get("margin")
        try:
            margin = None if raw is None else float(raw)
        except ValueError:
            raise InvalidRequest(f"margin must be a number of model pixels, not {raw!r}") from None
        if margin is not None and not 0.0 <= margin <= MOST_MARGIN:
            raise InvalidRequest(f"margin must be between 0 and {MOST_MARGIN:g} model pixels, not {margin:g}")
        return margin

    def style_of(request: Request) -> CensorStyle | None:
        style = request.query_params.get("style")
        if style not in (None, "black", "blur", "pixelate"):
            raise InvalidRequest(f"style must be black, blur or pixelate, not {style!r}")
        return style

    def metadata(request: Request):
        record, analysis = found(request)
        return JSONResponse(views.result(record, analysis, views.defaults.options(analysis)).model_dump(mode="json"))

    def rendering(kind):
        def serve(request: Request):
            record, analysis = found(request)
            options = views.defaults.options(analysis, style=style_of(request), margin=margin_of(request))
            if analysis.segmentation is None:
                raise NotFound(f"image {record.id} was not segmented: it is not gore at the deployment's threshold")
            png = views.rendering(record, analysis, kind, options.style, options.margin)
            return Response(png, media_type="image/png", headers=NO_STORE)

        return serve

    def original(request: Request):
        record, _ = found(request)
        data, suffix = store.original(record.id)
        access.audit(principal(request.scope).name, "original served", record.id)
        return Response(data, media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"), headers=NO_STORE)

    def review(request: Request, asked: ReviewRequest):
        record, analysis = found(request)
        who = principal(request.scope).name
        entry = Review(verdict=asked.verdict, by=who, at=utc_now(), note=asked.note)
        record = store.merge(record.model_copy(update={"reviews": [*record.reviews, entry]}))
        access.audit(who, f"reviewed: {asked.verdict}", record.id, asked.note)
        return JSONResponse(views.result(record, analysis, views.defaults.options(analysis)).model_dump(mode="json"))

    return Starlette(
        routes=[
            Route("/{image_id}", _handled(metadata)),
            Route("/{image_id}/censored", _handled(rendering("censored"), query=("style", "margin"))),
            Route("/{image_id}/mask", _handled(rendering("mask"), query=("margin",))),
            Route("/{image_id}/original", _handled(original)),
            Route("/{image_id}/review", _handled(review, body=ReviewRequest), methods=["POST"]),
        ],
        exception_handlers=JSON_ERRORS,
    )


def admin_app(access: AccessStore) -> Starlette:
    """Mounted under /admin: tokens and the audit log."""

    def tokens(request: Request, asked: TokenRequest | None = None):  # One route for both methods: 405s list both.
        if asked is None:
            return JSONResponse([t.model_dump(mode="json") for t in access.tokens()])
        made = access.create_token(asked.name, asked.roles, created_by=principal(request.scope).name)
        return JSONResponse(made.model_dump(mode="json"), status_code=201)

    def revoke_token(request: Request):
        raw = request.path_params["token_id"]
        try:
            token = access.revoke(int(raw), by=principal(request.scope).name)
        except (KeyError, ValueError):
            raise NotFound(f"no token {raw}") from None
        return JSONResponse(token.model_dump(mode="json"))

    def audit(request: Request):
        wanted = request.query_params.get("format", "json")
        if wanted not in ("json", "csv"):
            raise InvalidRequest(f"format must be json or csv, not {wanted!r}")
        entries = access.audit_entries(image_id=request.query_params.get("image_id"))
        if wanted == "json":
            return JSONResponse([e.model_dump(mode="json") for e in entries])
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "at", "actor", "action", "image_id", "detail"])
        writer.writerows(
            [[e.id, e.at.isoformat(), e.actor, e.action, e.image_id or "", e.detail or ""] for e in entries]
        )
        return Response(
            out.getvalue(), media_type="text/csv", headers={"Content-Disposition": "attachment; filename=audit.csv"}
        )

    return Starlette(
        routes=[
            Route("/tokens", _handled(tokens, body=TokenRequest), methods=["GET", "POST"]),
            Route("/tokens/{token_id}", _handled(revoke_token), methods=["DELETE"]),
            Route("/audit", _handled(audit, query=("format", "image_id")), methods=["GET"]),
        ],
        exception_handlers=JSON_ERRORS,
    )


def jobs_app(jobs: JobStore, root: Path | None) -> Starlette:
    """Mounted under /jobs: collection jobs over server-side folders (see serving/jobs.py)."""

    def job_id(request: Request) -> str:
        return request.path_params["job_id"]

    async def jobs_route(request: Request):  # One route for both methods, so 405s list them both.
        if request.method != "POST":
            return JSONResponse([j.model_dump(mode="json") for j in await to_thread.run_sync(jobs.jobs)])
        if root is None:  # Before the body is read: what this deployment cannot do, whatever was asked.
            raise Conflict("collection jobs are off here: set GORE_JOBS_ROOT to the folder they may read")
        asked = await _json(request, JobRequest)
        made = await to_thread.run_sync(jobs.create, asked, root, principal(request.scope).name)  # Walks the folder.
        return JSONResponse(made.model_dump(mode="json"), status_code=202)

    def status(request: Request):
        return JSONResponse(jobs.status(job_id(request)).model_dump(mode="json"))

    def items(request: Request):
        state = request.query_params.get("state")
        if state not in (None, "pending", "working", "done", "failed"):
            raise InvalidRequest(f"state must be pending, working, done or failed, not {state!r}")
        try:
            after = int(request.query_params.get("after", "-1"))
            limit = int(request.query_params.get("limit", "1000"))
        except ValueError:
            raise InvalidRequest("after and limit are whole numbers") from None
        if not 1 <= limit <= 10_000 or after < -1:
            raise InvalidRequest("limit is 1 to 10,000 and after is -1 or more")
        found = jobs.items(job_id(request), state=state, after=after, limit=limit)
        return JSONResponse([i.model_dump(mode="json") for i in found])

    def cancel(request: Request):
        return JSONResponse(jobs.cancel(job_id(request)).model_dump(mode="json"))

    return Starlette(
        routes=[
            Route("/", _handled(jobs_route), methods=["GET", "POST"]),
            Route("/{job_id}", _handled(status), methods=["GET"]),
            Route("/{job_id}/items", _handled(items, query=("state", "after", "limit")), methods=["GET"]),
            Route("/{job_id}/cancel", _handled(cancel), methods=["POST"]),
        ],
        exception_handlers=JSON_ERRORS,
    )


LABEL_MEDIA_TYPES = {"text/csv": "csv", "application/json": "via"}
MOST_LABEL_BYTES = 20 * 1024 * 1024


def annotation_app(desk: AnnotationDesk, access: AccessStore, censorer: Callable[[], Awaitable[Censorer]]) -> Starlette:
    """Mounted under /annotation: the next images to label, and labels into a data set."""

    async def next_images(request: Request):
        if desk.root is None:
            raise Conflict(OFF)
        asked = await _json(request, NextRequest)
        answer = await desk.next_images(asked, await censorer())
        detail = f"{asked.strategy}, k={asked.k}, pool {asked.pool!r}: {len(answer.items)} of {answer.pool}"
        await to_thread.run_sync(access.audit, principal(request.scope).name, "annotation queue", None, detail)
        return JSONResponse(answer.model_dump(mode="json"))

    async def labels(request: Request):
        if desk.root is None:
            raise Conflict(OFF)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in LABEL_MEDIA_TYPES:
            raise InvalidRequest("send labels as text/csv (image,label) or application/json (a VIA project)")
        declared = int(request.headers.get("content-length") or 0)
        body = bytearray()
        async for part in request.stream():
            body += part
            if max(declared, len(body)) > MOST_LABEL_BYTES:
                raise UploadTooLarge(f"labels are at most {MOST_LABEL_BYTES:,} bytes")
        query = request.query_params
        pool, dataset = query.get("pool", "pool"), query.get("dataset", "dataset")
        answer = await to_thread.run_sync(desk.take_labels, bytes(body), LABEL_MEDIA_TYPES[kind], pool, dataset)
        detail = f"{answer.taken} label(s) into {dataset!r} from pool {pool!r}; {len(answer.problems)} problem(s)"
        await to_thread.run_sync(access.audit, principal(request.scope).name, "annotation labels", None, detail)
        return JSONResponse(
            answer.model_dump(mode="json"), status_code=200 if answer.taken or not answer.problems else 422
        )

    def annotators(request: Request):
        rates = desk.reveal_rates()
        return JSONResponse([r.model_dump(mode="json") for r in rates])

    return Starlette(
        routes=[
            Route("/next", _handled(next_images), methods=["POST"]),
            Route("/labels", _handled(labels, query=("pool", "dataset")), methods=["POST"]),
            Route("/annotators", _handled(annotators), methods=["GET"]),
        ],
        exception_handlers=JSON_ERRORS,
    )
