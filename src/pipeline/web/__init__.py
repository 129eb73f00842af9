"""The analysts' web app: sign-in, gallery, reveal in steps, review, videos, labelling, exposure, upload and jobs.

`web_app(...)` builds the Starlette app that service.py mounts under /app (WEB_PREFIX), beside the API.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles

from pipeline.config import WEB_PREFIX, Settings
from pipeline.errors import PipelineError
from pipeline.serving.annotation import AnnotationDesk
from pipeline.serving.censorer import Censorer
from pipeline.serving.views import Views
from pipeline.stores import Stores
from pipeline.web import admin, gallery, labelling, me, signin, uploads, videos
from pipeline.web.app import HERE, INTERNAL, SecurityHeaders, Web
from pipeline.web.pictures import Pictures

log = logging.getLogger(__name__)


def web_app(
    settings: Settings,
    stores: Stores,
    views: Views,
    annotation: AnnotationDesk,
    censorer: Callable[[], Awaitable[Censorer]],
    prefix: str = WEB_PREFIX,
) -> Starlette:
    pictures = Pictures(views, settings.web_thumbnail_px, settings.web_patch_fraction)
    web = Web(settings, stores, views, annotation, censorer, pictures, prefix)

    async def refused(request: Request, error: Exception):
        """Starlette's own answers (no such route, wrong method, a form it cannot parse) as pages."""
        if isinstance(error, PipelineError):  # Raised outside a guarded route: a body over its limit.
            return web.error(request, "page", int(error.status), str(error), await _person(web, request))
        status = getattr(error, "status_code", 500)
        messages = {404: "no such page", 405: f"{request.method} is not allowed here", 500: INTERNAL}
        message = messages.get(status, str(getattr(error, "detail", "")) or "that request cannot be answered")
        if status == 500:
            log.error("web app error", exc_info=error)
        return web.error(request, "page", status, message, await _person(web, request))

    routes = [
        *signin.routes(web),
        *gallery.routes(web),
        *videos.routes(web),
        *uploads.routes(web),
        *labelling.routes(web),
        *me.routes(web),
        *admin.routes(web),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def unrouted(request: Request):
        """Last route: BentoML hands a mounted app only paths one of its routes matches, so every
        other path under /app ends here, to be answered as a page with the app's headers."""
        wrong_method = any(route.matches(request.scope)[0] == Match.PARTIAL for route in routes)
        status = 405 if wrong_method else 404
        return await refused(request, HTTPException(status))

    routes.append(Route("/{rest:path}", unrouted, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]))
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders, static_prefix=prefix + "/static/")],
        exception_handlers={HTTPException: refused, PipelineError: refused, Exception: refused},
    )


async def _person(web: Web, request: Request):
    try:
        return await run_in_threadpool(web.person, request)
    except Exception:  # An error page must not fail for want of its header.
        return None


__all__ = ["web_app"]
