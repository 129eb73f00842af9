"""The web app's frame: who is asking, what they may do, CSRF, security headers, error pages.

Mounted by service.py under /app (the access middleware lets /app through: this app refuses
signed-out visitors itself). A signed-out visitor asking for a page is sent to the sign-in page;
one asking for an image or data gets 401. Every POST carries the session's CSRF token (a form
field, or the `X-CSRF-Token` header for scripts) and, when the browser says where it comes from,
an Origin of this host. Every answer carries a strict Content-Security-Policy (no inline script
or style anywhere), refuses framing, and is `no-store`, graphic or not.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.config import Settings
from pipeline.errors import Forbidden, PipelineError
from pipeline.serving.annotation import AnnotationDesk
from pipeline.serving.censorer import Censorer
from pipeline.serving.views import Views
from pipeline.stores import Stores
from pipeline.stores.access import Role
from pipeline.stores.gallery import GalleryIndex
from pipeline.stores.people import People, Person
from pipeline.web.pictures import Pictures

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "gc_session"
SIGNIN_COOKIE = "gc_signin"
INTERNAL = "internal error: the service logged it; try again"
CSP = (
    "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # Not no-referrer: then browsers send `Origin: null` on forms.
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
Kind = Literal["page", "data"]
log = logging.getLogger(__name__)


class SecurityHeaders:
    """ASGI middleware: the security headers on every answer of the web app; `no-store` on all
    but the static CSS and scripts (which hold no data)."""

    def __init__(self, app: ASGIApp, static_prefix: str) -> None:
        self.app, self.static_prefix = app, static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith(self.static_prefix)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                headers["Cache-Control"] = "no-cache" if static else "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass
class Web:
    """What every route of the web app shares: the service's settings, its stores, how it shows an
    image, its annotation desk, and its pipeline (`censorer()`: raises Unavailable while starting)."""

    settings: Settings
    stores: Stores
    views: Views
    annotation: AnnotationDesk
    censorer: Callable[[], Awaitable[Censorer]]
    pictures: Pictures
    prefix: str
    templates: Environment = field(init=False)
    caught_up: bool = field(default=False, init=False)

    @property
    def people(self) -> People:
        return self.stores.people

    @property
    def index(self) -> GalleryIndex:
        return self.stores.gallery

    def __post_init__(self) -> None:
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True)
        )
        self.templates.globals["url"] = self.url
        self.templates.filters["quote"] = lambda value: quote(str(value), safe="")

    def url(self, path: str = "/") -> str:
        return self.prefix + path

    # ---- answers ----

    def render(self, request: Request, template: str, person: Person | None, status: int = 200, **context) -> Response:
        try:
            today = self.people.today(person.user.id) if person else None
        except Exception:  # The header's count must not take the page down (a full disk, a locked database).
            log.exception("cannot read today's exposure")
            today = None
        limit = self.settings.web_daily_reveal_limit
        html = self.templates.get_template(template).render(
            person=person,
            today=today,
            # Areas count too: each image uncovered in part is one more reveal that day.
            break_suggested=bool(limit and today and today.originals + today.patched_images >= limit),
            daily_limit=limit,
            gore_seconds_limit=self.settings.web_daily_gore_seconds,
            request=request,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def error(
        self,
        request: Request,
        kind: Kind,
        status: int,
        message: str,
        person: Person | None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if kind == "data":
            return JSONResponse({"error": message}, status_code=status, headers=headers)
        page = self.render(request, "error.html", person, status=status, status_code=status, message=message)
        page.headers.update(headers or {})
        return page

    def redirect(self, path: str) -> Response:
        return RedirectResponse(self.url(path), status_code=303)

    def audit(self, person: Person, action: str, image_id: str | None = None, detail: str | None = None) -> None:
        self.stores.access.audit(person.user.actor, action, image_id, detail)

    # ---- who is asking ----

    def person(self, request: Request) -> Person | None:
        return self.people.person(request.cookies.get(SESSION_COOKIE, ""))

    def secure(self, request: Request) -> bool:
        configured = self.settings.web_secure_cookies
        return request.url.scheme == "https" if configured is None else configured

    def signed_out(self, request: Request, kind: Kind) -> Response:
        if kind == "data":
            return self.error(request, kind, 401, "sign in first (the web app's sign-in page)", None)
        if request.method != "GET":  # A form sent signed out is not sent again after signing in.
            return RedirectResponse(self.url("/signin"), status_code=303)
        path = request.url.path
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(self.url(f"/signin?next={quote(target, safe='')}"), status_code=303)


def same_origin(request: Request) -> bool:
    """A browser's Origin (when it sends one) names this host; a cross-site form fails here too."""
    origin = request.headers.get("origin")
    if origin is None:  # Not sent (older browsers on same-origin forms): the CSRF token decides.
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def read_form(request: Request) -> FormData | None:
    if request.method != "POST":
        return None
    kind = request.headers.get("content-type", "")
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return await request.form(max_files=0, max_fields=50, max_part_size=64 * 1024)
    return None


Handler = Callable[..., Response | Awaitable[Response]]


def guarded(web: Web, handler: Handler, roles: tuple[Role, ...], kind: Kind = "page") -> Callable:
    """An endpoint that answers only a signed-in person with one of `roles` (admin: always), checks
    CSRF on POST, and answers every failure as a page (or JSON for `data`), never a stack trace.
    `handler(request, person, form)` may be sync (run in a thread: it may touch disk and SQLite)."""

    async def endpoint(request: Request) -> Response:
        person: Person | None = None
        try:
            person = await run_in_threadpool(web.person, request)
            if person is None:
                return web.signed_out(request, kind)
            if not person.user.may(*roles):
                wanted = " or ".join(roles)
                raise Forbidden(f"this needs the {wanted} role; you have {', '.join(person.user.roles)}")
            form = await read_form(request)
            if request.method == "POST":
                sent = request.headers.get("x-csrf-token") or (str(form.get("csrf", "")) if form else "")
                if not (sent and hmac.compare_digest(sent.encode(), person.csrf.encode()) and same_origin(request)):
                    raise Forbidden("this form has expired or came from another site: reload the page and try again")
            if inspect.iscoroutinefunction(handler):
                return await handler(request, person, form)
            return await run_in_threadpool(handler, request, person, form)
        except PipelineError as error:
            return web.error(request, kind, int(error.status), str(error), person, error.headers())
        except HTTPException as error:  # A form the parser refused (too many fields, a file where none goes).
            return web.error(request, kind, error.status_code, str(error.detail), person)
        except Exception:  # Never a stack trace to the visitor.
            log.exception("web app error")
            return web.error(request, kind, 500, INTERNAL, person)

    return endpoint


def field_of(form: FormData | None, name: str, default: str = "") -> str:
    value = form.get(name, default) if form is not None else default
    return value if isinstance(value, str) else default


def safe_next(web: Web, target: str) -> str:
    """Only a path inside the web app: never another site (`//evil`, `https://...`)."""
    if target.startswith(web.prefix + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return web.url("/gallery")
