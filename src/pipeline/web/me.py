"""A person's own pages: what they have seen (exposure, per day, with their audit entries) and
their settings (thumbnail blur strength, password)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.errors import InvalidRequest
from pipeline.stores.access import ROLES
from pipeline.stores.people import Person
from pipeline.web.app import Web, field_of, guarded


def routes(web: Web) -> list[Route]:
    people = web.people

    def exposure(request: Request, person: Person, form) -> Response:
        days = people.exposure(person.user.id, days=30)
        mine = web.stores.access.audit_entries(actor=person.user.actor, limit=100)
        return web.render(request, "exposure.html", person, days=days, audit=mine)

    def settings_page(request: Request, person: Person, form) -> Response:
        if request.method == "POST":
            what = field_of(form, "what")
            if what == "blur":
                raw = field_of(form, "blur_strength")
                if not raw.isdigit() or not 0 <= int(raw) <= 100:
                    raise InvalidRequest("blur strength is a whole number from 0 to 100")
                people.set_blur_strength(person.user.id, int(raw))
                web.audit(person, "web: blur strength set", detail=raw)
                return web.redirect("/settings?saved=blur")
            if what == "password":
                if not people.check_password(person.user.id, field_of(form, "current")):
                    raise InvalidRequest("the current password is not right")
                new = field_of(form, "new")
                if new != field_of(form, "again"):
                    raise InvalidRequest("the new password and its repetition differ")
                try:
                    people.set_password(person.user.id, new)
                except ValueError as error:
                    raise InvalidRequest(str(error)) from None
                web.audit(person, "web: password changed")
                return web.redirect("/signin")  # Every session of theirs ended, this one too.
            raise InvalidRequest("nothing to change")
        saved = request.query_params.get("saved")
        strength = person.user.blur_strength
        default = web.settings.web_blur_strength
        return web.render(
            request,
            "settings.html",
            person,
            strength=default if strength is None else strength,
            default=default,
            saved=saved,
        )

    return [
        Route("/exposure", guarded(web, exposure, ROLES)),
        Route("/settings", guarded(web, settings_page, ROLES), methods=["GET", "POST"]),
    ]
