"""Signing in and out. The sign-in form is protected by its own CSRF token, a random value in a
short-lived cookie and in the form (the visitor has no session yet)."""

from __future__ import annotations

import hmac
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.errors import PipelineError
from pipeline.stores.access import ROLES
from pipeline.stores.people import Person
from pipeline.web.app import SESSION_COOKIE, SIGNIN_COOKIE, Web, field_of, guarded, read_form, safe_next
from pipeline.web.throttle import RateLimit


def routes(web: Web) -> list[Route]:
    cookie_path = web.url("/")
    throttle = RateLimit(web.settings.web_signin_per_minute)

    def form_page(request: Request, error: str | None = None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        target = safe_next(web, request.query_params.get("next", ""))
        response = web.render(request, "signin.html", None, status=status, csrf=token, next=target, error=error)
        response.set_cookie(
            SIGNIN_COOKIE,
            token,
            max_age=3600,
            path=web.url("/signin"),
            httponly=True,
            samesite="strict",
            secure=web.secure(request),
        )
        return response

    async def signin(request: Request) -> Response:
        if request.method == "GET":
            if await _signed_in(request):
                return web.redirect("/gallery")
            return form_page(request)
        wait = throttle.take(request.client.host if request.client else "unknown")
        if wait:  # Before the form is even read: an address guessing fast gets no answer about passwords.
            page = form_page(request, f"Too many sign-in attempts from your address; try again in {wait:.0f} s.", 429)
            page.headers["Retry-After"] = str(max(1, round(wait)))
            return page
        try:
            form = await read_form(request)
        except PipelineError as error:  # A body over the limit.
            return form_page(request, str(error), int(error.status))
        sent, expected = field_of(form, "csrf"), request.cookies.get(SIGNIN_COOKIE, "")
        if not (sent and expected and hmac.compare_digest(sent.encode(), expected.encode())):
            return form_page(request, "The sign-in form expired; please try again.", 403)
        name, password = field_of(form, "name"), field_of(form, "password")
        signed = await _run(web.people.sign_in, name, password, web.settings.web_session_hours)
        if signed is None:
            await _run(web.stores.access.audit, f"web:{name[:100]}", "sign-in failed")
            return form_page(request, "That name and password do not match an enabled user.", 401)
        secret, user = signed
        await _run(web.stores.access.audit, user.actor, "signed in")
        target = safe_next(web, field_of(form, "next"))
        if target == web.url("/gallery") and not user.may("analyst"):  # Start where their roles may go.
            target = web.url(user.start_page)
        response = Response(status_code=303, headers={"Location": target})
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(web.settings.web_session_hours * 3600),
            path=cookie_path,
            httponly=True,
            samesite="strict",
            secure=web.secure(request),
        )
        response.delete_cookie(SIGNIN_COOKIE, path=web.url("/signin"))
        return response

    async def _signed_in(request: Request) -> bool:
        return await _run(web.person, request) is not None

    def signout(request: Request, person: Person, form) -> Response:
        web.people.sign_out(person.session_id)
        web.audit(person, "signed out")
        response = web.redirect("/signin")
        response.delete_cookie(SESSION_COOKIE, path=cookie_path, httponly=True, samesite="strict")
        return response

    async def home(request: Request) -> Response:
        person = await _run(web.person, request)
        if person is None:
            return web.redirect("/signin")
        return web.redirect(person.user.start_page)

    return [
        Route("/", home),
        Route("/signin", signin, methods=["GET", "POST"]),
        Route("/signout", guarded(web, signout, ROLES), methods=["POST"]),
    ]


async def _run(function, *args):
    return await run_in_threadpool(function, *args)
