"""Who may do what over HTTP: every route's roles, and the middleware that checks a request's
bearer token against them (the tokens themselves: pipeline.stores.access).

Every route needs a token except the probes, the metrics (unless GORE_METRICS_OPEN is false) and
the API description; a route nobody listed needs `admin` (deny by default).
"""

from __future__ import annotations

import re

from anyio import to_thread
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.errors import Forbidden, PipelineError, Unauthorized
from pipeline.stores.access import AccessStore, Role, Token

MOST_SECRET_CHARS = 200  # Ours are 46; a longer one is not worth a lookup.

# (method or "*", path pattern, roles any of which may); first match wins; None: open to all.
# Admin may everything. A route nobody listed needs admin: deny by default.
RULES: list[tuple[str, re.Pattern[str], tuple[Role, ...] | None]] = [
    (method, re.compile(pattern), roles)
    for method, pattern, roles in [
        ("*", r"/(readyz|livez|healthz|metrics|docs\.json)", None),  # Other methods: 405 from the route.
        ("*", r"/(docs)?|/static_content/.+", None),  # BentoML's API page: the description, no data.
        ("*", r"/app(/.*)?", None),  # The web app: people sign in there; it refuses signed-out visitors itself.
        ("POST", r"/censor(/batch)?", ("ingest",)),
        ("GET", r"/images/[^/]+(/(censored|mask|original))?", ("analyst",)),
        ("POST", r"/images/[^/]+/review", ("analyst",)),
        ("POST", r"/jobs/?|/jobs/[^/]+/cancel", ("ingest",)),
        ("GET", r"/jobs/?|/jobs/[^/]+(/items)?", ("ingest", "analyst")),
        ("POST", r"/videos/?", ("ingest",)),
        ("GET", r"/videos/?|/videos/[^/]+", ("ingest", "analyst")),
        ("GET", r"/videos/[^/]+/(censored\.mp4|strip\.png|masks\.jsonl|markers\.edl)", ("analyst",)),
        ("POST", r"/annotation/(next|labels)", ("annotator",)),  # Reveal rates per annotator: admin.
        ("*", r"/admin(/.*)?", ("admin",)),
    ]
]


def allowed_roles(method: str, path: str, metrics_open: bool = True) -> tuple[Role, ...] | None:
    """The roles that may make this request (admin always may); None: anyone, without a token."""
    if path == "/metrics" and not metrics_open:
        return ("metrics",)
    for rule_method, pattern, roles in RULES:
        if rule_method in ("*", method) and pattern.fullmatch(path):
            return roles
    return ("admin",)


def principal(scope: Scope) -> Token:
    """The token a request came with (set by `AccessGuard`)."""
    return scope["state"]["principal"]


class AccessGuard:
    """ASGI middleware: 401 without a known token, 403 without the route's role."""

    def __init__(self, app: ASGIApp, store: AccessStore, metrics_open: bool = True) -> None:
        self.app, self.store, self.metrics_open = app, store, metrics_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        roles = allowed_roles(scope["method"], scope["path"], self.metrics_open)
        if roles is None:
            return await self.app(scope, receive, send)
        scheme, _, secret = Headers(scope=scope).get("authorization", "").partition(" ")
        secret = secret.strip()
        token = None
        if scheme.lower() == "bearer" and secret and len(secret) <= MOST_SECRET_CHARS:
            token = await to_thread.run_sync(self.store.authenticate, secret)  # SQLite: off the event loop.
        if token is None:
            refusal = Unauthorized("send a valid API token: `Authorization: Bearer <token>` (see docs: access control)")
            return await _answer(refusal, scope, receive, send)
        if not set(roles) & set(token.roles) and "admin" not in token.roles:
            wanted = " or ".join(repr(role) for role in roles)
            refusal = Forbidden(f"this needs the {wanted} role; token {token.name!r} has {', '.join(token.roles)}")
            return await _answer(refusal, scope, receive, send)
        scope.setdefault("state", {})["principal"] = token
        await self.app(scope, receive, send)


async def _answer(error: PipelineError, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"error": str(error)}, status_code=int(error.status), headers=error.headers())
    await response(scope, receive, send)
