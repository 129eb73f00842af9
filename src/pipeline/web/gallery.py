"""The gallery, an image's page with its reveal in steps, and reviews.

Reveal steps on an image's page, each written to the audit log and counted as exposure:
  1. the censored copy (what the page shows first; not counted);
  2. on request, the original blurred and greyed (GET .../blurred);
  3. the sharp original, only after a confirmed POST (.../reveal) grants it to this session for
     a few minutes; GET .../original refuses every session without that grant.
Partial reveal: press-and-hold on the censored copy asks (POST .../patch) for one square of
the original; its censored pixels count as revealed gore area. Before step 3, the page never
names the original's URL: no preload, no hidden image.

Known content: an image on a hash list (or near one this team reviewed) says so in the gallery
and on its page, and its review can be taken from the match (POST .../review-known) with nothing
revealed; each such review counts as a reveal avoided.
"""

from __future__ import annotations

import math
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.errors import Conflict, Forbidden, InvalidRequest
from pipeline.known.matcher import known_gore, verdict_of
from pipeline.known.reviews import remember
from pipeline.stores.gallery import FILTERS, Filter
from pipeline.stores.people import Person
from pipeline.stores.records import Review, utc_now
from pipeline.web.app import Web, field_of, guarded

ANALYSTS = ("analyst",)
KNOWN_REVIEW = "reviewed from a known match"
# The reveal steps, as the audit log names them (the labelling page reads them back).
BLURRED = "web: original shown blurred and greyed"
AREA = "web: area revealed"
CONFIRMED = "web: original revealed (confirmed)"
SERVED = "web: original served"
REVEALS = frozenset({BLURRED, AREA, CONFIRMED, SERVED})


def _filter(request: Request) -> tuple[Filter, str]:
    kind = request.query_params.get("filter", "all")
    if kind not in FILTERS:
        raise InvalidRequest(f"filter must be one of {', '.join(FILTERS)}, not {kind!r}")
    search = request.query_params.get("q", "").strip()
    if len(search) > 200:
        raise InvalidRequest("search for at most 200 characters of a file name")
    return kind, search


def image_response(data: bytes, media_type: str = "image/png", headers: dict[str, str] | None = None) -> Response:
    return Response(data, media_type=media_type, headers={"Cache-Control": "no-store", **(headers or {})})


def patch_answer(web: Web, person: Person, record, analysis, request: Request, where: str = "") -> Response:
    """One area of the original at the point asked (press-and-hold), audited and counted as exposure.

    Without a confirmed reveal, the areas one person uncovers of one image are capped together at
    GORE_WEB_PATCH_BUDGET of its first frame: enough patches would rebuild the original, and the
    original is shown only after the confirmation. Past the cap the answer is 403 and the page
    asks for that confirmation."""
    try:
        x, y = float(request.query_params["x"]), float(request.query_params["y"])
    except (KeyError, ValueError):
        raise InvalidRequest("send the point as ?x=<pixels>&y=<pixels> in the original's pixels") from None
    if not math.isfinite(x) or not math.isfinite(y):
        raise InvalidRequest("send the point as finite numbers of the original's pixels")
    box = web.pictures.patch_box(record, analysis, x, y)
    budget = int(web.settings.web_patch_budget * record.width * record.height)
    confirmed = web.people.revealed(person.session_id, record.id)
    if not confirmed and not web.people.take_patch(person.user.id, record.id, box, budget):
        share = web.people.patched_area(person.user.id, record.id) / (record.width * record.height)
        web.audit(person, "web: area refused (patch budget)", record.id, f"{share:.0%} uncovered{where}")
        raise Forbidden(
            f"You have uncovered {share:.0%} of this image area by area; areas stop at "
            f"{web.settings.web_patch_budget:.0%}. To see more, confirm the reveal of the original."
        )
    piece = web.pictures.patch(record, analysis, x, y)
    web.audit(person, AREA, record.id, f"at ({piece.left}, {piece.top}); {piece.gore_pixels} px{where}")
    web.people.count_exposure(person.user.id, patches=1, gore_pixels=piece.gore_pixels)
    headers = {
        "X-Patch-Left": str(piece.left),
        "X-Patch-Top": str(piece.top),
        "X-Patch-Width": str(piece.width),
        "X-Patch-Height": str(piece.height),
        "X-Patch-Gore-Pixels": str(piece.gore_pixels),
    }
    return image_response(piece.png, headers=headers)


def routes(web: Web) -> list[Route]:
    pictures, people, index = web.pictures, web.people, web.index

    def strength(person: Person) -> int:
        own = person.user.blur_strength
        return web.settings.web_blur_strength if own is None else own

    def gallery(request: Request, person: Person, form) -> Response:
        if not web.caught_up:  # Records written by other programs (the offline command), once per process.
            index.catch_up(web.stores.images)
            web.caught_up = True
        kind, search = _filter(request)
        after, before = request.query_params.get("after"), request.query_params.get("before")
        page = index.page(kind, search, after=after, before=before, size=web.settings.web_page_size)
        known = {row.id: web.views.known_hash(row.id, row.pdq) for row in page.rows if row.pdq}
        return web.render(
            request,
            "gallery.html",
            person,
            page=page,
            known={k: known_gore(v) or v[0] for k, v in known.items() if v},  # The badge says gore when any does.
            kind=kind,
            search=search,
            filters=FILTERS,
            total=index.count(),
        )

    def thumbnail(request: Request, person: Person, form) -> Response:
        record, analysis = pictures.found(request.path_params["image_id"])
        return image_response(pictures.thumbnail(record, analysis, strength(person)), "image/jpeg")

    def detail(request: Request, person: Person, form) -> Response:
        record, analysis = pictures.found(request.path_params["image_id"])
        kind, search = _filter(request)
        show = request.query_params.get("show", "censored")
        if show not in ("censored", "blurred", "original"):
            raise InvalidRequest(f"show must be censored, blurred or original, not {show!r}")
        if show == "original" and not people.revealed(person.session_id, record.id):
            show = "censored"  # The grant ran out (or was never made): back to the censored copy.
        views = web.views
        result = views.result(record, analysis, views.defaults.options(analysis))
        near = index.near_duplicates(record, web.settings.web_duplicate_distance, web.settings.known_distance)
        duplicates = [i for i in near if i != record.id]
        return web.render(
            request,
            "detail.html",
            person,
            record=record,
            result=result,
            treatment=pictures.treatment(record, analysis),
            decided=verdict_of(result.known),
            show=show,
            kind=kind,
            search=search,
            older=index.neighbour(record.id, kind, search, older=True),
            newer=index.neighbour(record.id, kind, search, older=False),
            duplicates=duplicates[:24],
            duplicate_count=len(duplicates),
            audit=web.stores.access.audit_entries(image_id=record.id, limit=20),
        )

    def view(request: Request, person: Person, form) -> Response:
        record, analysis = pictures.found(request.path_params["image_id"])
        data = pictures.view(record, analysis)
        if pictures.treatment(record, analysis) == "censored":  # Step 1 of the reveal: logged like the others.
            web.audit(person, "web: censored copy shown", record.id)
        return image_response(data)

    def blurred(request: Request, person: Person, form) -> Response:
        record, analysis = pictures.found(request.path_params["image_id"])
        data = pictures.blurred(record, strength(person))
        if pictures.treatment(record, analysis) != "clean":
            web.audit(person, BLURRED, record.id)
            people.count_exposure(person.user.id, blurred=1)
        return image_response(data, "image/jpeg")

    def patch(request: Request, person: Person, form) -> Response:
        record, analysis = pictures.found(request.path_params["image_id"])
        return patch_answer(web, person, record, analysis, request)

    def reveal(request: Request, person: Person, form) -> Response:
        record, analysis = pictures.found(request.path_params["image_id"])
        if field_of(form, "confirm") != "yes":
            raise InvalidRequest("tick the box to confirm that you want to see the original")
        gore = pictures.gore_pixels(record, analysis) if pictures.treatment(record, analysis) != "clean" else 0
        people.grant_reveal(person.session_id, record.id, web.settings.web_reveal_minutes)
        web.audit(person, CONFIRMED, record.id, f"{gore} px censored in it")
        people.count_exposure(person.user.id, originals=1, gore_pixels=gore)
        back = _back(field_of(form, "filter"), field_of(form, "q"))
        return web.redirect(f"/images/{record.id}?show=original{back}")

    def original(request: Request, person: Person, form) -> Response:
        record, _ = pictures.found(request.path_params["image_id"])
        if not people.revealed(person.session_id, record.id):
            raise Forbidden("confirm the reveal on the image's page first")
        web.audit(person, SERVED, record.id)
        return image_response(pictures.original(record))

    def review(request: Request, person: Person, form) -> Response:
        record, analysis = pictures.found(request.path_params["image_id"])
        verdict = field_of(form, "verdict")
        if verdict not in ("gore", "not_gore"):
            raise InvalidRequest("verdict must be gore or not_gore")
        note = field_of(form, "note").strip()[:2000] or None
        ids = [record.id]
        if field_of(form, "group") == "yes":
            near = index.near_duplicates(record, web.settings.web_duplicate_distance, web.settings.known_distance)
            ids += [i for i in near if i != record.id]
        entry = Review(verdict=verdict, by=person.user.actor, at=utc_now(), note=note)
        for image_id in ids:
            found = web.stores.images.record(image_id)
            if found is None:
                continue
            web.stores.images.merge(found.model_copy(update={"reviews": [*found.reviews, entry]}))
            detail = (
                note if image_id == record.id else f"as a near-duplicate of {record.id}" + (f": {note}" if note else "")
            )
            web.audit(person, f"reviewed: {verdict}", image_id, detail)
        remember(web.stores.hash_lists, record, entry)
        return following_image(record.id, form)

    def review_known(request: Request, person: Person, form) -> Response:
        """The verdict of the nearest match that has one, applied without revealing anything."""
        record, _ = pictures.found(request.path_params["image_id"])
        decided = verdict_of(web.views.known(record))
        verdict = field_of(form, "verdict")
        if decided is None or decided.label != verdict:
            raise Conflict("the hash lists no longer say that of this image: reload the page and decide again")
        note = f"from a known match: {decided.says}, {decided.distance} bits apart (list {decided.list_name})"
        entry = Review(verdict=verdict, by=person.user.actor, at=utc_now(), note=note)
        web.stores.images.merge(record.model_copy(update={"reviews": [*record.reviews, entry]}))
        revealed = people.revealed(person.session_id, record.id)
        web.audit(person, f"{KNOWN_REVIEW}: {verdict}", record.id, note)
        if not revealed:  # Decided without seeing it: a reveal this person did not need.
            people.count_exposure(person.user.id, avoided=1)
        remember(web.stores.hash_lists, record, entry)
        return following_image(record.id, form)

    def following_image(image_id: str, form) -> Response:
        kind, search = field_of(form, "filter", "all"), field_of(form, "q")
        kind = kind if kind in FILTERS else "all"
        following = index.neighbour(image_id, kind, search, older=True)
        query = _back(kind, search).replace("&", "?", 1)
        return web.redirect(f"/images/{following}{query}" if following else f"/gallery{query}")

    return [
        Route("/gallery", guarded(web, gallery, ANALYSTS)),
        Route("/thumbs/{image_id}", guarded(web, thumbnail, ANALYSTS, "data")),
        Route("/images/{image_id}", guarded(web, detail, ANALYSTS)),
        Route("/images/{image_id}/view", guarded(web, view, ANALYSTS, "data")),
        Route("/images/{image_id}/blurred", guarded(web, blurred, ANALYSTS, "data")),
        Route("/images/{image_id}/patch", guarded(web, patch, ANALYSTS, "data"), methods=["POST"]),
        Route("/images/{image_id}/reveal", guarded(web, reveal, ANALYSTS), methods=["POST"]),
        Route("/images/{image_id}/original", guarded(web, original, ANALYSTS, "data")),
        Route("/images/{image_id}/review", guarded(web, review, ANALYSTS), methods=["POST"]),
        Route("/images/{image_id}/review-known", guarded(web, review_known, ANALYSTS), methods=["POST"]),
    ]


def _back(kind: str, search: str) -> str:
    """The gallery's filter and search, as query parameters to carry along ('&...' or '')."""
    params = {k: v for k, v in (("filter", kind), ("q", search)) if v and v != "all"}
    return "&" + urlencode(params) if params else ""
