"""Mounted under /images: an image's record, its renderings, its original (audited), reviews."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.config import MOST_MARGIN, CensorStyle
from pipeline.errors import InvalidRequest, NotFound
from pipeline.known.reviews import remember
from pipeline.serving.access import principal
from pipeline.serving.openapi import IMAGE_ID, MARGIN, STYLE, json_answer, operation, png, ref
from pipeline.serving.routes.handling import JSON_ERRORS, MEDIA_TYPES, NO_STORE, handled
from pipeline.serving.schemas import CensorResult
from pipeline.serving.views import Views
from pipeline.stores.access import AccessStore
from pipeline.stores.hash_lists import HashLists
from pipeline.stores.images import ImageStore, check_id
from pipeline.stores.records import Analysis, ImageRecord, Review, Verdict, utc_now


class ReviewRequest(BaseModel):
    verdict: Verdict = Field(description="What the image shows, as a person judged it.")
    note: str | None = Field(None, max_length=2000)


def images_app(store: ImageStore, views: Views, access: AccessStore, lists: HashLists) -> Starlette:
    def found(request: Request) -> tuple[ImageRecord, Analysis]:
        image_id = check_id(request.path_params["image_id"])
        record = store.record(image_id)
        analysis = record.latest_analysis() if record else None
        if record is None or analysis is None:
            raise NotFound(f"no image with id {image_id}: POST it to /censor first")
        return record, analysis

    def margin_of(request: Request) -> float | None:
        raw = request.query_params.get("margin")
        try:
            margin = None if raw is None else float(raw)
        except ValueError:
            raise InvalidRequest(f"margin must be a number of model pixels, not {raw!r}") from None
        if margin is not None and not 0.0 <= margin <= MOST_MARGIN:
            raise InvalidRequest(f"margin must be between 0 and {MOST_MARGIN:g} model pixels, not {margin:g}")
        return margin

    def style_of(request: Request) -> CensorStyle | None:
        style = request.query_params.get("style")
        if style not in (None, "black", "blur", "pixelate"):
            raise InvalidRequest(f"style must be black, blur or pixelate, not {style!r}")
        return style

    def metadata(request: Request):
        record, analysis = found(request)
        return JSONResponse(views.result(record, analysis, views.defaults.options(analysis)).model_dump(mode="json"))

    def rendering(kind):
        def serve(request: Request):
            record, analysis = found(request)
            options = views.defaults.options(analysis, style=style_of(request), margin=margin_of(request))
            if analysis.segmentation is None:
                raise NotFound(f"image {record.id} was not segmented: withhold it if its record says gore")
            png = views.rendering(record, analysis, kind, options.style, options.margin)
            return Response(png, media_type="image/png", headers=NO_STORE)

        return serve

    def original(request: Request):
        record, _ = found(request)
        data, suffix = store.original(record.id)
        access.audit(principal(request.scope).name, "original served", record.id)
        return Response(data, media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"), headers=NO_STORE)

    def review(request: Request, asked: ReviewRequest):
        record, analysis = found(request)
        who = principal(request.scope).name
        entry = Review(verdict=asked.verdict, by=who, at=utc_now(), note=asked.note)
        record = store.merge(record.model_copy(update={"reviews": [*record.reviews, entry]}))
        access.audit(who, f"reviewed: {asked.verdict}", record.id, asked.note)
        remember(lists, record, entry)
        return JSONResponse(views.result(record, analysis, views.defaults.options(analysis)).model_dump(mode="json"))

    return Starlette(
        routes=[
            Route("/{image_id}", handled(metadata)),
            Route("/{image_id}/censored", handled(rendering("censored"), query=("style", "margin"))),
            Route("/{image_id}/mask", handled(rendering("mask"), query=("margin",))),
            Route("/{image_id}/original", handled(original)),
            Route("/{image_id}/review", handled(review, body=ReviewRequest), methods=["POST"]),
        ],
        exception_handlers=JSON_ERRORS,
    )


SCHEMAS = (ReviewRequest,)
RECORD = json_answer(ref(CensorResult), "The image as the deployment shows it.")
ORIGINAL = {
    "description": "The file as uploaded, with its format's media type.",
    "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in MEDIA_TYPES.values()},
}
PATHS: dict[str, Any] = {
    "/images/{image_id}": {
        "get": operation("The image's record, seen with the deployment's options.", RECORD, parameters=[IMAGE_ID])
    },
    "/images/{image_id}/censored": {
        "get": operation(
            "The censored copy (PNG; APNG for several frames), made on demand.",
            png("The censored copy."),
            parameters=[IMAGE_ID, STYLE, MARGIN],
        )
    },
    "/images/{image_id}/mask": {
        "get": operation("The gore mask (255 = censored).", png("The mask."), parameters=[IMAGE_ID, MARGIN])
    },
    "/images/{image_id}/original": {
        "get": operation(
            "The original file: an explicit reveal, written to the audit log.", ORIGINAL, parameters=[IMAGE_ID]
        )
    },
    "/images/{image_id}/review": {
        "post": operation(
            "A person's verdict, stored beside the analysis and audited.",
            RECORD,
            parameters=[IMAGE_ID],
            body=ReviewRequest,
        )
    },
}
