"""The Censor service's own ASGI middleware: one JSON error shape for every answer, and path aliases.

(The others live with what they guard: `access.AccessGuard`, `upload_guard.BodyLimit` and
`UploadGuard`, `resilience.Probes`, `openapi.OpenAPIExtension`, `telemetry`.)
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.errors import PipelineError
from pipeline.serving.routes.handling import error_response, internal_error


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
