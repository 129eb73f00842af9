"""The admin's pages: users (create, disable, enable), API tokens (create, revoke), everyone's
exposure, and the audit log (with its CSV export, the same columns as `GET /admin/audit`)."""

from __future__ import annotations

import csv
import io

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.errors import InvalidRequest, NotFound
from pipeline.stores.access import ROLES
from pipeline.stores.people import Person
from pipeline.web.app import Web, field_of, guarded

ADMINS = ("admin",)


def _roles(form) -> list[str]:
    roles = [r for r in form.getlist("role") if r in ROLES] if form is not None else []
    if not roles:
        raise InvalidRequest(f"choose at least one role: {', '.join(ROLES)}")
    return roles


def routes(web: Web) -> list[Route]:
    people, access = web.people, web.stores.access

    def users(request: Request, person: Person, form) -> Response:
        if request.method == "POST":
            name, password = field_of(form, "name"), field_of(form, "password")
            try:
                made = people.create_user(name, _roles(form), password, created_by=person.user.actor)
            except ValueError as error:
                raise InvalidRequest(str(error)) from None
            web.audit(person, "user created", detail=f"{made.name!r}: {', '.join(made.roles)}")
            return web.redirect("/admin/users?done=created")
        return web.render(request, "admin_users.html", person, users=people.users(), roles=ROLES)

    def set_disabled(disabled: bool):
        def change(request: Request, person: Person, form) -> Response:
            raw = request.path_params["user_id"]
            try:
                user = people.set_disabled(int(raw), disabled)
            except (KeyError, ValueError):
                raise NotFound(f"no user {raw}") from None
            web.audit(person, "user disabled" if disabled else "user enabled", detail=repr(user.name))
            return web.redirect("/admin/users")

        return change

    def tokens(request: Request, person: Person, form) -> Response:
        made = None
        if request.method == "POST":
            name = field_of(form, "name").strip()
            if not 1 <= len(name) <= 200:
                raise InvalidRequest("a token's name is 1 to 200 characters")
            made = access.create_token(name, _roles(form), created_by=person.user.actor)
        return web.render(request, "admin_tokens.html", person, tokens=access.tokens(), roles=ROLES, made=made)

    def revoke(request: Request, person: Person, form) -> Response:
        raw = request.path_params["token_id"]
        try:
            access.revoke(int(raw), by=person.user.actor)
        except (KeyError, ValueError):
            raise NotFound(f"no token {raw}") from None
        return web.redirect("/admin/tokens")

    def exposure(request: Request, person: Person, form) -> Response:
        days = people.exposure(None, days=30)
        totals: dict[str, dict[str, float]] = {}
        keys = ("blurred", "originals", "patches", "gore_pixels", "blurred_seconds", "gore_seconds", "avoided")
        for day in days:
            total = totals.setdefault(day.user, dict.fromkeys(keys, 0))
            for key in total:
                total[key] += getattr(day, key)
        return web.render(request, "admin_exposure.html", person, days=days, totals=totals)

    def audit(request: Request, person: Person, form) -> Response:
        return web.render(request, "admin_audit.html", person, entries=access.audit_entries(limit=500))

    def audit_csv(request: Request, person: Person, form) -> Response:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "at", "actor", "action", "image_id", "detail"])
        for e in access.audit_entries(limit=1_000_000):
            writer.writerow([e.id, e.at.isoformat(), e.actor, e.action, e.image_id or "", e.detail or ""])
        web.audit(person, "audit log exported")
        headers = {"Content-Disposition": "attachment; filename=audit.csv"}
        return Response(out.getvalue(), media_type="text/csv", headers=headers)

    return [
        Route("/admin/users", guarded(web, users, ADMINS), methods=["GET", "POST"]),
        Route("/admin/users/{user_id}/disable", guarded(web, set_disabled(True), ADMINS), methods=["POST"]),
        Route("/admin/users/{user_id}/enable", guarded(web, set_disabled(False), ADMINS), methods=["POST"]),
        Route("/admin/tokens", guarded(web, tokens, ADMINS), methods=["GET", "POST"]),
        Route("/admin/tokens/{token_id}/revoke", guarded(web, revoke, ADMINS), methods=["POST"]),
        Route("/admin/exposure", guarded(web, exposure, ADMINS)),
        Route("/admin/audit", guarded(web, audit, ADMINS)),
        Route("/admin/audit.csv", guarded(web, audit_csv, ADMINS, "data")),
    ]
