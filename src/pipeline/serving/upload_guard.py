"""ASGI middleware in front of the routes: size caps on every body, a body that stops arriving
dropped (408 after GORE_BODY_IDLE_S), and the upload form checked before BentoML parses it.

Why: Starlette spools uploads of any size before our code sees them, and BentoML 1.4.39
answers 500 when a binary part arrives under a field name it does not expect (it tries
`json.loads` on it and does not catch UnicodeDecodeError). Both are client errors: 413 and 400.

The body streams through a spooled temporary file (in memory up to 1 MiB, on disk past it)
while a streaming multipart parser reads the part headers, so no request is ever held whole in
memory; then it is replayed to BentoML from that file, a chunk at a time.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.errors import RequestTimeout, UploadTooLarge
from pipeline.stores.images import disk_space

SPOOL_IN_MEMORY_BYTES = 1024 * 1024
REPLAY_CHUNK_BYTES = 256 * 1024
MOST_TEXT_BYTES = 64 * 1024  # A text field is a number or a word; anything longer is not ours.
OPTION_VALUE = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
FLAG_VALUES = ("true", "false")  # What the API description says: a boolean.


@dataclass(frozen=True)
class FormSpec:
    fields: dict[str, bool]
    """Field name -> whether it is a file field."""
    max_body_bytes: int
    flags: frozenset[str] = frozenset()
    """Text fields that say yes or no: true or false."""


async def arriving(receive: Receive, idle_s: float) -> Message:
    """The next message of a body still arriving, or RequestTimeout after `idle_s` without one: a
    client that stops sending (slowloris) must not hold a connection and a worker's slot."""
    try:
        async with asyncio.timeout(idle_s):
            return await receive()
    except TimeoutError:
        raise RequestTimeout(f"no bytes of the request body arrived for {idle_s:g} s; nothing was kept") from None


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size:,} bytes is over the limit of {limit:,} bytes"


@dataclass
class _FormChecker:
    """Fed the body chunk by chunk; remembers the first problem with the form's parts."""

    spec: FormSpec
    problem: str | None = None
    _header_field: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _disposition: bytes = b""
    _text: bytearray = field(default_factory=bytearray)
    _name: str = ""
    _is_file: bool = False

    def expected(self) -> str:
        return ", ".join(f"{name} ({'file' if is_file else 'text'})" for name, is_file in self.spec.fields.items())

    def callbacks(self) -> dict:
        def on_part_begin() -> None:
            self._disposition, self._text = b"", bytearray()

        def on_header_field(data: bytes, start: int, end: int) -> None:
            self._header_field += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            self._header_value += data[start:end]

        def on_header_end() -> None:
            if bytes(self._header_field).lower() == b"content-disposition":
                self._disposition = bytes(self._header_value)
            self._header_field, self._header_value = bytearray(), bytearray()

        def on_headers_finished() -> None:
            _, options = parse_options_header(self._disposition)
            self._name = options.get(b"name", b"").decode("latin-1")
            self._is_file = b"filename" in options or b"filename*" in options
            self._check_part()

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if not self._is_file and len(self._text) <= MOST_TEXT_BYTES:
                self._text += data[start:end]

        def on_part_end() -> None:
            if not self._is_file and self.problem is None:
                try:
                    text = bytes(self._text).decode("utf-8")
                except UnicodeDecodeError:
                    self.problem = f"form field {self._name!r} is not UTF-8 text"
                    return
                if self._name in self.spec.flags:
                    if text.strip() not in FLAG_VALUES:
                        self.problem = f"form field {self._name!r} is true or false, not {text[:40]!r}"
                elif not OPTION_VALUE.fullmatch(text.strip()) or text.strip() in ("true", "false", "null"):
                    # An option is a number or a word (JSON's true would pass as 1.0); left out, the default.
                    self.problem = (
                        f"form field {self._name!r} must be a number or a word, not {text[:40]!r}; "
                        "leave it out to use the deployment's setting"
                    )
                if len(self._text) > MOST_TEXT_BYTES:
                    self.problem = f"form field {self._name!r} is over {MOST_TEXT_BYTES:,} bytes of text"

        return {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        }

    def _check_part(self) -> None:
        if self.problem is not None:
            return
        fields = self.spec.fields
        if self._name not in fields:
            self.problem = f"unknown form field {self._name!r}; this endpoint takes: {self.expected()}"
        elif self._is_file != fields[self._name]:
            self.problem = f"form field {self._name!r} must be {'a file' if fields[self._name] else 'text, not a file'}"


class UploadGuard:
    def __init__(self, app: ASGIApp, routes: dict[str, FormSpec], idle_s: float = 30.0) -> None:
        self.app = app
        self.routes = routes
        self.idle_s = idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec = self.routes.get(scope.get("path", "")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if spec is None:
            return await self.app(scope, receive, send)
        limit = spec.max_body_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return await self._refuse(413, _too_large(int(declared), limit), scope, receive, send)
        checker = _FormChecker(spec)
        content_type, options = parse_options_header(headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            return await self._refuse(
                400, f"send multipart/form-data with the fields: {checker.expected()}", scope, receive, send
            )
        parser = MultipartParser(boundary, checker.callbacks())
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
            size = 0
            while True:
                try:
                    message = await arriving(receive, self.idle_s)
                except RequestTimeout as error:
                    return await self._refuse(408, str(error), scope, receive, send)
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return await self._refuse(413, _too_large(size, limit), scope, receive, send)
                with disk_space():  # A full temporary directory is a 507, like a full data directory.
                    spool.write(chunk)
                try:
                    parser.write(chunk)
                except MultipartParseError as error:
                    checker.problem = checker.problem or f"the multipart body is malformed ({error})"
                if checker.problem:
                    return await self._refuse(400, checker.problem, scope, receive, send)
                if not message.get("more_body", False):
                    break
            spool.seek(0)
            await self.app(scope, self._replay(spool, size, receive), send)

    @staticmethod
    def _replay(spool, size: int, receive: Receive) -> Receive:
        """The body again, from the spool, a chunk per message; then the client's own messages."""
        done = False

        async def replay() -> Message:
            nonlocal done
            if done:
                return await receive()
            chunk = spool.read(REPLAY_CHUNK_BYTES)
            done = spool.tell() >= size
            return {"type": "http.request", "body": chunk, "more_body": not done}

        return replay

    @staticmethod
    async def _refuse(status: int, error: str, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"error": error}, status_code=status)(scope, receive, send)


class BodyLimit:
    """ASGI middleware: every request body is bounded before it is read.

    A declared `Content-Length` over the route's limit is answered 413 at once, nothing read; a
    body that streams past it (chunked, or lying about its length) stops the reading there: the
    route's `receive` raises `UploadTooLarge`, which every route answers as 413 JSON (or the web
    app's page). `limits` maps a path to its own limit; `skip` holds the routes `UploadGuard`
    bounds itself (the multipart uploads)."""

    def __init__(
        self, app: ASGIApp, default: int, limits: dict[str, int], skip: frozenset[str], idle_s: float = 30.0
    ) -> None:
        self.app, self.default, self.limits, self.skip, self.idle_s = app, default, limits, skip, idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"], self.default)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await JSONResponse({"error": _too_large(int(declared), limit)}, status_code=413)(
                scope, receive, send
            )
        seen, ended = 0, False

        async def bounded() -> Message:
            nonlocal seen, ended
            # While the body arrives, each piece is awaited at most idle_s; after its end, a route
            # waiting for the client to go (http.disconnect) may wait as long as it likes.
            message = await (receive() if ended else arriving(receive, self.idle_s))
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                ended = not message.get("more_body", False)
                if seen > limit:
                    raise UploadTooLarge(_too_large(seen, limit))
            return message

        await self.app(scope, bounded, send)
