"""HTTP pieces beside the BentoML APIs: the image routes and JSON error answers."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.errors import NotFound, PipelineError
from pipeline.serving.image_store import ImageStore, check_id


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


def images_app(store: ImageStore) -> Starlette:
    """GET /images/{id}, /images/{id}/censored, /images/{id}/mask (mounted under /images)."""

    async def metadata(request: Request):
        try:
            image_id = check_id(request.path_params["image_id"])
            result = store.get_metadata(image_id)
            if result is None:
                raise NotFound(f"no image with id {image_id}: POST it to /censor first")
        except PipelineError as error:
            return error_response(error)
        return JSONResponse(result.model_dump(mode="json"))

    def artifact(kind: str):
        async def serve(request: Request):
            try:
                png = store.get_artifact(check_id(request.path_params["image_id"]), kind)
            except PipelineError as error:
                return error_response(error)
            return Response(png, media_type="image/png")

        return serve

    return Starlette(
        routes=[
            Route("/{image_id}", metadata),
            Route("/{image_id}/censored", artifact("censored")),
            Route("/{image_id}/mask", artifact("mask")),
        ]
    )
