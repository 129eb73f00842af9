"""HTTP pieces beside the BentoML APIs: the image and admin routes, and JSON error answers.

Everything graphic is sent with `Cache-Control: no-store`, so no browser or proxy keeps a copy.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.config import CensorStyle
from pipeline.errors import InvalidRequest, NotFound, PipelineError
from pipeline.serving.access import ROLES, AccessStore, Role, principal
from pipeline.serving.image_store import ImageStore, check_id
from pipeline.serving.records import Analysis, ImageRecord, Review, Verdict, utc_now
from pipeline.serving.views import Views

NO_STORE = {"Cache-Control": "no-store"}
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".avif": "image/avif",
}


def error_response(error: PipelineError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=int(error.status))


def upload_filename(spooled: Path) -> str:
    """The client's file name of a BentoML `Path` upload.

    BentoML spools each file to `NamedTemporaryFile(suffix=<client name>)`, named "tmp", eight
    random characters, then the suffix. Re-reading the form instead would wait forever: BentoML's
    context holds a second Request on the already consumed body.
    """
    name = spooled.name
    return name[11:] if name.startswith("tmp") and len(name) > 11 else "upload"


class ReviewRequest(BaseModel):
    verdict: Verdict = Field(description="What the image shows, as a person judged it.")
    note: str | None = Field(None, max_length=2000)


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Who or what will use it.")
    roles: list[Role] = Field(min_length=1, description=f"Some of: {', '.join(ROLES)}.")


def _handled(handler):
    """Client errors become their JSON answer."""

    async def wrapped(request: Request):
        try:
            return await handler(request)
        except PipelineError as error:
            return error_response(error)
        except ValidationError as error:
            return error_response(
                InvalidRequest("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()))
            )

    return wrapped


async def _json(request: Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError:
        raise
    except ValueError as error:
        raise InvalidRequest(f"send a JSON body ({error})") from None


def images_app(store: ImageStore, views: Views, access: AccessStore) -> Starlette:
    """Mounted under /images: the record, its renderings, the original (logged), reviews."""

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
        if margin is not None and not 0.0 <= margin <= 8.0:
            raise InvalidRequest(f"margin must be between 0 and 8 model pixels, not {margin:g}")
        return margin

    def style_of(request: Request) -> CensorStyle | None:
        style = request.query_params.get("style")
        if style not in (None, "black", "blur", "pixelate"):
            raise InvalidRequest(f"style must be black, blur or pixelate, not {style!r}")
        return style

    async def metadata(request: Request):
        record, analysis = found(request)
        return JSONResponse(views.result(record, analysis, views.defaults.options(analysis)).model_dump(mode="json"))

    def rendering(kind):
        async def serve(request: Request):
            record, analysis = found(request)
            options = views.defaults.options(analysis, style=style_of(request), margin=margin_of(request))
            if analysis.segmentation is None:
                raise NotFound(f"image {record.id} was not segmented: it is not gore at the deployment's threshold")
            png = views.rendering(record, analysis, kind, options.style, options.margin)
            return Response(png, media_type="image/png", headers=NO_STORE)

        return serve

    async def original(request: Request):
        record, _ = found(request)
        data, suffix = store.original(record.id)
        access.audit(principal(request.scope).name, "original served", record.id)
        return Response(data, media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"), headers=NO_STORE)

    async def review(request: Request):
        record, analysis = found(request)
        asked = await _json(request, ReviewRequest)
        who = principal(request.scope).name
        entry = Review(verdict=asked.verdict, by=who, at=utc_now(), note=asked.note)
        record = store.merge(record.model_copy(update={"reviews": [*record.reviews, entry]}))
        access.audit(who, f"reviewed: {asked.verdict}", record.id, asked.note)
        return JSONResponse(views.result(record, analysis, views.defaults.options(analysis)).model_dump(mode="json"))

    return Starlette(
        routes=[
            Route("/{image_id}", _handled(metadata)),
            Route("/{image_id}/censored", _handled(rendering("censored"))),
            Route("/{image_id}/mask", _handled(rendering("mask"))),
            Route("/{image_id}/original", _handled(original)),
            Route("/{image_id}/review", _handled(review), methods=["POST"]),
        ]
    )


def admin_app(access: AccessStore) -> Starlette:
    """Mounted under /admin: tokens and the audit log."""

    async def list_tokens(request: Request):
        return JSONResponse([t.model_dump(mode="json") for t in access.tokens()])

    async def create_token(request: Request):
        asked = await _json(request, TokenRequest)
        made = access.create_token(asked.name, asked.roles, created_by=principal(request.scope).name)
        return JSONResponse(made.model_dump(mode="json"), status_code=201)

    async def revoke_token(request: Request):
        raw = request.path_params["token_id"]
        try:
            token = access.revoke(int(raw), by=principal(request.scope).name)
        except (KeyError, ValueError):
            raise NotFound(f"no token {raw}") from None
        return JSONResponse(token.model_dump(mode="json"))

    async def audit(request: Request):
        entries = access.audit_entries(image_id=request.query_params.get("image_id"))
        if request.query_params.get("format") != "csv":
            return JSONResponse([e.model_dump(mode="json") for e in entries])
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "at", "actor", "action", "image_id", "detail"])
        writer.writerows(
            [[e.id, e.at.isoformat(), e.actor, e.action, e.image_id or "", e.detail or ""] for e in entries]
        )
        return Response(
            out.getvalue(), media_type="text/csv", headers={"Content-Disposition": "attachment; filename=audit.csv"}
        )

    return Starlette(
        routes=[
            Route("/tokens", _handled(list_tokens), methods=["GET"]),
            Route("/tokens", _handled(create_token), methods=["POST"]),
            Route("/tokens/{token_id}", _handled(revoke_token), methods=["DELETE"]),
            Route("/audit", _handled(audit), methods=["GET"]),
        ]
    )
