"""The labelling page: the active-learning queue served to people (README: Active learning).

GET /label ranks the pool's unlabelled images with the annotation desk (a strategy, the first
QUEUE of them) and shows one: the first, or the one the page itself pinned (?image=, kept while
it is revealed in steps). Labelled images drop out of the queue: the data set holds them.
POST /label gives it a label (into the data set folder, and into annotation.db with whether the
annotator had to reveal the image to decide). /label/annotators shows the reveal rate per
annotator (admin); each annotator sees their own on the labelling page.

What the page shows, each step written to the audit log and counted as exposure as on an
image's page (gallery.py):
  1. the labelling view, made like a gore thumbnail: from the censored copy (black, the region
     widened) whenever the image was segmented, else from the image, then blurred and greyed
     (at least MIN_LABEL_BLUR, whatever the person's thumbnail setting); a censored image's
     areas can be revealed one at a time by press-and-hold (reveal.js);
  2. on request, the original blurred and greyed (GET .../blurred);
  3. the sharp original, only after a confirmed POST (.../reveal) granted it to this session.
Before step 3 the page never names the original's URL. These routes answer only for an image
shown to this person on the labelling page and not labelled by them since.

"Had to reveal" is decided here, never taken from the browser: an image is *shown* from its
first "shown for labelling" audit entry after this person's last label of it; the label counts
as revealed when the audit log holds any reveal step (blurred original, an area, the confirmed
reveal, the original served; here or on the image's page) by this person for this image since.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.active_learning.strategies import STRATEGIES
from pipeline.errors import Conflict, Forbidden, InvalidRequest, NotFound
from pipeline.files import FileRefused, read_inside
from pipeline.imaging.hashes import content_id
from pipeline.serving.annotation import OFF, NextAnswer, NextItem, NextRequest
from pipeline.stores.access import AccessStore
from pipeline.stores.images import check_id
from pipeline.stores.people import Person
from pipeline.stores.records import Analysis, ImageRecord
from pipeline.web.app import Web, field_of, guarded
from pipeline.web.gallery import BLURRED, CONFIRMED, REVEALS, SERVED, image_response, patch_answer
from pipeline.web.pictures import THUMB_MIN_MARGIN, encode_jpeg, first_frame, fit, placeholder, soften

ANNOTATORS = ("annotator",)
ADMINS = ("admin",)
QUEUE = 10  # Images ranked per page view; the first (or the pinned one) is shown.
LABEL_PX = 480  # Longer side of the labelling view.
MIN_LABEL_BLUR = 30  # The labelling view is blurred at least this much, whatever a person's thumbnail setting.
DEFAULTS = {"pool": "pool", "dataset": "dataset", "strategy": "gore_averse"}

SHOWN = "web: shown for labelling"
LABELLED = "web: label"


@dataclass(frozen=True)
class Queue:
    pool: str
    dataset: str
    strategy: str

    def query(self, **more: str) -> str:
        return urlencode({"pool": self.pool, "dataset": self.dataset, "strategy": self.strategy, **more})


@dataclass(frozen=True)
class Showing:
    """Where this person stands with one image on the labelling page."""

    since: int | None  # The audit entry that showed it (None: not shown since their last label of it).
    revealed: bool  # Some reveal step by them since.


def showing(access: AccessStore, actor: str, image_id: str) -> Showing:
    entries = access.audit_entries(image_id=image_id, actor=actor, limit=100_000)  # Newest first.
    since = None
    for entry in entries:
        if entry.action == LABELLED:
            break
        if entry.action == SHOWN:
            since = entry.id
    if since is None:
        return Showing(None, False)
    return Showing(since, any(entry.id > since and entry.action in REVEALS for entry in entries))


def _queue(get) -> Queue:
    values = {name: (get(name, default) or "").strip() or default for name, default in DEFAULTS.items()}
    if values["strategy"] not in STRATEGIES:
        raise InvalidRequest(f"strategy must be one of {', '.join(STRATEGIES)}, not {values['strategy']!r}")
    for name in ("pool", "dataset"):
        if len(values[name]) > 200 or any(c in values[name] for c in "\r\n\t\0"):
            raise InvalidRequest(f"a {name} is a folder name of at most 200 characters on one line")
    return Queue(**values)


def _view_size(record: ImageRecord) -> tuple[int, int]:
    scale = min(1.0, LABEL_PX / max(record.width, record.height))
    return max(1, round(record.width * scale)), max(1, round(record.height * scale))


def routes(web: Web) -> list[Route]:
    pictures, people, access, views = web.pictures, web.people, web.stores.access, web.views
    desk = web.annotation

    def strength(person: Person) -> int:
        own = person.user.blur_strength
        return max(web.settings.web_blur_strength if own is None else own, MIN_LABEL_BLUR)

    def mine(person: Person) -> dict:
        rates = desk.reveal_rates(person.user.actor)
        return {"mine": rates[0] if rates else None, "recent": desk.decisions(person.user.actor, limit=10)}

    def shown_to(person: Person, image_id: str) -> tuple[ImageRecord, Analysis]:
        """The image, when it is on this person's labelling page; else refused."""
        if showing(access, person.user.actor, check_id(image_id)).since is None:  # Before saying whether it exists.
            raise Forbidden("this image is not on your labelling page: open it from there")
        return pictures.found(image_id)

    # ---- the page ----

    def show_item(person: Person, queue: Queue, item: NextItem, show: str) -> dict:
        record, analysis = pictures.found(item.id)
        seen = showing(access, person.user.actor, record.id)
        if seen.since is None:
            detail = f"{item.file!r} of pool {queue.pool!r}, rank {item.rank} by {queue.strategy}"
            web.audit(person, SHOWN, record.id, detail)
        if show == "original" and not people.revealed(person.session_id, record.id):
            show = "view"  # The grant ran out (or was never made): back to the first step.
        width, height = _view_size(record)
        return {
            "record": record,
            "treatment": pictures.treatment(record, analysis),
            "show": show,
            "revealed": seen.revealed,
            "view_width": width,
            "view_height": height,
        }

    async def page(request: Request, person: Person, form) -> Response:
        queue = _queue(request.query_params.get)
        show = request.query_params.get("show", "view")
        if show not in ("view", "blurred", "original"):
            raise InvalidRequest(f"show must be view, blurred or original, not {show!r}")
        pinned = request.query_params.get("image", "")
        context = {
            "queue": queue,
            "queue_query": queue.query(),
            "strategies": STRATEGIES,
            "saved": request.query_params.get("saved") == "1",
            "off": None,
            "problem": None,
            "answer": None,
            "item": None,
            **await run_in_threadpool(mine, person),
        }
        if desk.root is None:
            return web.render(request, "label.html", person, **{**context, "off": OFF})
        censorer = await web.censorer()  # Unavailable (503) while the service starts.
        try:
            asked = NextRequest(pool=queue.pool, dataset=queue.dataset, strategy=queue.strategy, k=QUEUE)
        except ValidationError as error:
            raise InvalidRequest(str(error.errors()[0]["msg"])) from None
        try:
            answer: NextAnswer = await desk.next_images(asked, censorer)
        except (NotFound, InvalidRequest) as error:  # A pool that is not there: say so beside the form.
            return web.render(
                request, "label.html", person, status=int(error.status), **{**context, "problem": str(error)}
            )
        context["answer"] = answer
        item = next((i for i in answer.items if i.id == pinned), answer.items[0] if answer.items else None)
        if item is not None and item.id != pinned:
            show = "view"  # A step asked for another image (labelled meanwhile): this one starts at the first.
        if item is not None:
            context["item"] = item
            context.update(await run_in_threadpool(show_item, person, queue, item, show))
        return web.render(request, "label.html", person, **context)

    def label(request: Request, person: Person, form) -> Response:
        if desk.root is None:
            raise Conflict(OFF)
        queue = _queue(lambda name, default: field_of(form, name, default))
        verdict = field_of(form, "label")
        if verdict not in ("gore", "not_gore"):
            raise InvalidRequest("label must be gore or not_gore")
        image_id, file = check_id(field_of(form, "image_id")), field_of(form, "file")
        folder = desk.folder(queue.pool, must_exist=True)
        if not file or Path(file).name != file:
            raise NotFound(f"no image {file!r} in pool {queue.pool!r}")
        try:  # A regular file inside the pool only: no link followed, no pipe opened.
            data = read_inside(folder, file, web.settings.max_upload_bytes)
        except FileRefused:
            raise NotFound(f"no image {file!r} in pool {queue.pool!r}") from None
        if content_id(data) != image_id:
            raise InvalidRequest(f"{file!r} in pool {queue.pool!r} is not the image shown: reload the page")
        seen = showing(access, person.user.actor, image_id)
        if seen.since is None:
            raise InvalidRequest("this image was not shown to you on the labelling page (or you labelled it already)")
        decision = desk.label_one(
            person.user.actor, image_id, file, queue.pool, queue.dataset, verdict == "gore", seen.revealed
        )
        revealed = "yes" if decision.revealed else "no"
        detail = f"{verdict}: {file!r} of pool {queue.pool!r} into {queue.dataset!r}; revealed to decide: {revealed}"
        web.audit(person, LABELLED, image_id, detail)
        return web.redirect(f"/label?{queue.query(saved='1')}")

    def annotators(request: Request, person: Person, form) -> Response:
        return web.render(
            request,
            "label_annotators.html",
            person,
            rates=desk.reveal_rates(),
            decisions=desk.decisions(limit=200),
            off=OFF if desk.root is None else None,
        )

    # ---- the image in steps ----

    def labelling_view(request: Request, person: Person, form) -> Response:
        record, analysis = shown_to(person, request.path_params["image_id"])
        how = pictures.treatment(record, analysis)
        if analysis.segmentation is not None:  # Whatever the segmenter found is censored, clean or not.
            margin = max(views.defaults.margin, THUMB_MIN_MARGIN)
            pixels = first_frame(views.rendering(record, analysis, "censored", "black", margin))
        elif how == "clean":
            data, _ = views.store.original(record.id)
            pixels = views.limits.decode(data, record.filename).frames[0]
        else:  # Likely gore and never segmented: nothing of it.
            return image_response(encode_jpeg(placeholder(LABEL_PX)), "image/jpeg")
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
        return image_response(encode_jpeg(soften(fit(pixels[..., :3], LABEL_PX), strength(person))), "image/jpeg")

    def blurred(request: Request, person: Person, form) -> Response:
        record, analysis = shown_to(person, request.path_params["image_id"])
        data = pictures.blurred(record, strength(person))
        web.audit(person, BLURRED, record.id, "on the labelling page")
        if pictures.treatment(record, analysis) != "clean":
            people.count_exposure(person.user.id, blurred=1)
        return image_response(data, "image/jpeg")

    def patch(request: Request, person: Person, form) -> Response:
        record, analysis = shown_to(person, request.path_params["image_id"])
        return patch_answer(web, person, record, analysis, request, "; on the labelling page")

    def reveal(request: Request, person: Person, form) -> Response:
        record, analysis = shown_to(person, request.path_params["image_id"])
        if field_of(form, "confirm") != "yes":
            raise InvalidRequest("tick the box to confirm that you want to see the original")
        queue = _queue(lambda name, default: field_of(form, name, default))
        gore = pictures.gore_pixels(record, analysis) if pictures.treatment(record, analysis) != "clean" else 0
        people.grant_reveal(person.session_id, record.id, web.settings.web_reveal_minutes)
        web.audit(person, CONFIRMED, record.id, f"{gore} px censored in it; on the labelling page")
        people.count_exposure(person.user.id, originals=1, gore_pixels=gore)
        return web.redirect(f"/label?{queue.query(image=record.id, show='original')}")

    def original(request: Request, person: Person, form) -> Response:
        record, _ = shown_to(person, request.path_params["image_id"])
        if not people.revealed(person.session_id, record.id):
            raise Forbidden("confirm the reveal on the labelling page first")
        web.audit(person, SERVED, record.id, "on the labelling page")
        return image_response(pictures.original(record))

    return [
        Route("/label", guarded(web, page, ANNOTATORS)),
        Route("/label", guarded(web, label, ANNOTATORS), methods=["POST"]),
        Route("/label/annotators", guarded(web, annotators, ADMINS)),
        Route("/label/images/{image_id}/view", guarded(web, labelling_view, ANNOTATORS, "data")),
        Route("/label/images/{image_id}/blurred", guarded(web, blurred, ANNOTATORS, "data")),
        Route("/label/images/{image_id}/patch", guarded(web, patch, ANNOTATORS, "data"), methods=["POST"]),
        Route("/label/images/{image_id}/reveal", guarded(web, reveal, ANNOTATORS), methods=["POST"]),
        Route("/label/images/{image_id}/original", guarded(web, original, ANNOTATORS, "data")),
    ]
