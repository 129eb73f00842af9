"""ASGI middleware in front of the upload routes: size cap and form check before BentoML parses.

Why: Starlette spools uploads of any size to disk before our code sees them, and BentoML 1.4.39
answers 500 when a binary part arrives under a field name it does not expect (it tries
`json.loads` on it and does not catch UnicodeDecodeError). Both are client errors: 413 and 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_NAME = re.compile(rb'name="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb"filename\*?=", re.IGNORECASE)


def multipart_parts(body: bytes, boundary: bytes) -> list[tuple[str, bool, bytes]]:
    """(field name, is a file, value) for each part; file values are left out (b"")."""
    delimiter = b"--" + boundary
    parts = []
    position = body.find(delimiter)
    while position != -1:
        start = position + len(delimiter)
        if body[start : start + 2] == b"--":
            break
        end = body.find(delimiter, start)
        header_end = body.find(b"\r\n\r\n", start, end if end != -1 else len(body))
        if header_end == -1:
            break
        headers = body[start:header_end]
        name = _NAME.search(headers)
        is_file = bool(_FILENAME.search(headers))
        value = b"" if is_file else body[header_end + 4 : (end if end != -1 else len(body)) - 2]
        parts.append((name.group(1).decode("latin-1") if name else "", is_file, value))
        position = end
    return parts


@dataclass(frozen=True)
class FormSpec:
    fields: dict[str, bool]
    """Field name -> whether it is a file field."""
    max_body_bytes: int


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size:,} bytes is over the limit of {limit:,} bytes"


class UploadGuard:
    def __init__(self, app: ASGIApp, routes: dict[str, FormSpec]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec = self.routes.get(scope.get("path", "")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if spec is None:
            return await self.app(scope, receive, send)
        limit = spec.max_body_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return await self._refuse(413, _too_large(int(declared), limit), scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await self._refuse(413, _too_large(size, limit), scope, receive, send)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = self._form_problem(headers.get("content-type", ""), body, spec.fields)
        if problem:
            return await self._refuse(400, problem, scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _form_problem(content_type: str, body: bytes, fields: dict[str, bool]) -> str | None:
        expected = ", ".join(f"{name} ({'file' if is_file else 'text'})" for name, is_file in fields.items())
        match = re.search(r'boundary="?([^";]+)"?', content_type)
        if not content_type.startswith("multipart/form-data") or not match:
            return f"send multipart/form-data with the fields: {expected}"
        for name, is_file, value in multipart_parts(body, match.group(1).encode("latin-1")):
            if name not in fields:
                return f"unknown form field {name!r}; this endpoint takes: {expected}"
            if is_file != fields[name]:
                return f"form field {name!r} must be {'a file' if fields[name] else 'text, not a file'}"
            if not is_file:
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    return f"form field {name!r} is not UTF-8 text"
        return None

    @staticmethod
    async def _refuse(status: int, error: str, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"error": error}, status_code=status)(scope, receive, send)
