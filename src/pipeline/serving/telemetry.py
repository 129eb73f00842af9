"""`/metrics` safe to expose: requests counted by route template, never by raw path.

BentoML's traffic metrics label each request with its raw path, so `/images/<id>` made one
time series per image id: unbounded memory in every worker, and image ids readable by anyone who
can reach `/metrics`. Here the traffic middleware sees the route's template instead
(`/images/{image_id}`; an unknown path is `/{unrouted}`), found by matching the path against the
services' own routes (their APIs and the Starlette apps mounted beside them), so the label set
is as small as the route table. The routes below it see the real path again.

Installed by replacing BentoML's middleware class with a subclass before the service's app is
built (`install`, from service.py): BentoML looks the class up when it builds that app.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

UNROUTED = "/{unrouted}"
SYSTEM_ROUTES = frozenset({"/", "/readyz", "/livez", "/healthz", "/metrics", "/docs", "/docs.json"})
_REAL_PATH = "gore.real_path"


class RouteTemplates:
    """Path -> the template of the route that answers it."""

    def __init__(self) -> None:
        self.fixed: set[str] = set(SYSTEM_ROUTES)
        self.mounted: list[tuple[str, Any]] = []

    def learn(self, *services: Any) -> None:
        """The routes of BentoML services: their API routes and their mounted Starlette apps."""
        for service in services:
            self.fixed.update(api.route for api in service.apis.values())
            for app, path, _ in service.mount_apps:
                self.mounted.append(("/" + path.strip("/"), app))
        self.mounted.sort(key=lambda item: -len(item[0]))  # The longest prefix first.

    def __call__(self, path: str) -> str:
        if path in self.fixed:
            return path
        if path.startswith("/static_content/"):  # BentoML's API page assets.
            return "/static_content/{file}"
        for prefix, app in self.mounted:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix + _template(app, path[len(prefix) :] or "/")
        return UNROUTED


def _template(app: Any, path: str) -> str:
    scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    for route in getattr(app, "routes", ()):
        match, _ = route.matches(scope)
        if match != Match.NONE:
            return route.path + ("/{path}" if isinstance(route, Mount) else "")
    return UNROUTED


ROUTES = RouteTemplates()


class _RealPath:
    """Inside the metrics middleware: the request goes on with its real path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _REAL_PATH in scope:
            path, raw_path = scope[_REAL_PATH]
            scope = {key: value for key, value in scope.items() if key != _REAL_PATH}
            scope.update(path=path, raw_path=raw_path)
        await self.app(scope, receive, send)


def install(*services: Any) -> None:
    """Count the traffic of these services by route template (call once, at import of service.py)."""
    from bentoml._internal.server.http import instruments

    ROUTES.learn(*services)
    original = getattr(instruments.RunnerTrafficMetricsMiddleware, "_gore_original", None)
    base = original or instruments.RunnerTrafficMetricsMiddleware

    class TemplatedTrafficMetrics(base):  # type: ignore[misc, valid-type]
        _gore_original = base

        def __init__(self, app: ASGIApp, **options: Any) -> None:
            super().__init__(_RealPath(app), **options)

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                template = ROUTES(scope["path"])
                if template != scope["path"]:
                    real = (scope["path"], scope.get("raw_path"))
                    scope = {**scope, "path": template, "raw_path": template.encode(), _REAL_PATH: real}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = TemplatedTrafficMetrics
