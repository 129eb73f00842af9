"""What every route beside the BentoML APIs shares: one JSON error shape, handlers run off the
event loop, query parameters checked against what a route takes, JSON bodies validated.

Everything graphic is sent with `Cache-Control: no-store`, so no browser or proxy keeps a copy.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from anyio import to_thread
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from pipeline.errors import InvalidRequest, PipelineError

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


def handled(handler, query: tuple[str, ...] = (), body: type[BaseModel] | None = None):
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
            arguments = (request, await read_json(request, body)) if body and request.method == "POST" else (request,)
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


async def read_json(request: Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError:
        raise
    except ValueError as error:
        raise InvalidRequest(f"send a JSON body ({error})") from None


async def _not_routed(request: Request, error: Exception) -> JSONResponse:
    """Starlette's own 404 and 405 answers, as JSON like every other error."""
    status = getattr(error, "status_code", 404)
    message = "no such route" if status == 404 else f"{request.method} is not allowed here"
    headers = getattr(error, "headers", None)
    return JSONResponse({"error": f"{message}: {request.url.path}"}, status_code=status, headers=headers)


JSON_ERRORS = {404: _not_routed, 405: _not_routed}
