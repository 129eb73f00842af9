"""Mounted under /annotation: the next images to label, labels into a data set, reveal rates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipeline.errors import Conflict, InvalidRequest, UploadTooLarge
from pipeline.serving.access import principal
from pipeline.serving.annotation import OFF, AnnotationDesk, LabelsAnswer, NextAnswer, NextRequest
from pipeline.serving.censorer import Censorer
from pipeline.serving.openapi import json_answer, operation, ref
from pipeline.serving.routes.handling import JSON_ERRORS, handled, read_json
from pipeline.stores.access import AccessStore
from pipeline.stores.labels import AnnotatorStats

LABEL_MEDIA_TYPES = {"text/csv": "csv", "application/json": "via"}
MOST_LABEL_BYTES = 20 * 1024 * 1024


def annotation_app(desk: AnnotationDesk, access: AccessStore, censorer: Callable[[], Awaitable[Censorer]]) -> Starlette:
    async def next_images(request: Request):
        if desk.root is None:
            raise Conflict(OFF)
        asked = await read_json(request, NextRequest)
        answer = await desk.next_images(asked, await censorer())
        detail = f"{asked.strategy}, k={asked.k}, pool {asked.pool!r}: {len(answer.items)} of {answer.pool}"
        await to_thread.run_sync(access.audit, principal(request.scope).name, "annotation queue", None, detail)
        return JSONResponse(answer.model_dump(mode="json"))

    async def labels(request: Request):
        if desk.root is None:
            raise Conflict(OFF)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in LABEL_MEDIA_TYPES:
            raise InvalidRequest("send labels as text/csv (image,label) or application/json (a VIA project)")
        declared = int(request.headers.get("content-length") or 0)
        body = bytearray()
        async for part in request.stream():
            body += part
            if max(declared, len(body)) > MOST_LABEL_BYTES:
                raise UploadTooLarge(f"labels are at most {MOST_LABEL_BYTES:,} bytes")
        query = request.query_params
        pool, dataset = query.get("pool", "pool"), query.get("dataset", "dataset")
        answer = await to_thread.run_sync(desk.take_labels, bytes(body), LABEL_MEDIA_TYPES[kind], pool, dataset)
        detail = f"{answer.taken} label(s) into {dataset!r} from pool {pool!r}; {len(answer.problems)} problem(s)"
        await to_thread.run_sync(access.audit, principal(request.scope).name, "annotation labels", None, detail)
        return JSONResponse(
            answer.model_dump(mode="json"), status_code=200 if answer.taken or not answer.problems else 422
        )

    def annotators(request: Request):
        rates = desk.reveal_rates()
        return JSONResponse([r.model_dump(mode="json") for r in rates])

    return Starlette(
        routes=[
            Route("/next", handled(next_images), methods=["POST"]),
            Route("/labels", handled(labels, query=("pool", "dataset")), methods=["POST"]),
            Route("/annotators", handled(annotators), methods=["GET"]),
        ],
        exception_handlers=JSON_ERRORS,
    )


SCHEMAS = (NextRequest, NextAnswer, LabelsAnswer, AnnotatorStats)
PATHS: dict[str, Any] = {
    "/annotation/next": {
        "post": operation(
            "Rank a pool of unlabelled images (under GORE_ANNOTATION_ROOT) and return the next k to label.",
            json_answer(ref(NextAnswer), "The queue, best first."),
            body=NextRequest,
            errors=("400", "401", "403", "404", "409", "507"),
        )
    },
    "/annotation/labels": {
        "post": {
            **operation(
                "Labels (CSV `image,label`, or a VIA project) for images of a pool, into a data set folder.",
                json_answer(ref(LabelsAnswer), "What the data set holds now."),
                parameters=[
                    {"name": "pool", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "dataset", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                errors=("400", "401", "403", "404", "409", "413", "422"),
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
        }
    },
    "/annotation/annotators": {
        "get": operation(
            "Each annotator's labels on the labelling page and how often they had to reveal the image.",
            json_answer({"type": "array", "items": ref(AnnotatorStats)}, "Reveal rates."),
            errors=("401", "403"),
        )
    },
}
