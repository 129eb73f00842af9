"""The work of the two BentoML APIs (`POST /censor`, `POST /censor/batch`) that service.py declares:
uploads through the pipeline of the models served now, every failure a JSON answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.responses import JSONResponse

from pipeline.config import CensorStyle
from pipeline.errors import InvalidRequest, PipelineError
from pipeline.serving.censorer import Censorer, Upload
from pipeline.serving.routes.handling import answered, error_response, upload_filename
from pipeline.serving.schemas import BatchItem, CensorResult

CurrentCensorer = Callable[[], Awaitable[Censorer]]


async def censor_one(
    current: CurrentCensorer,
    image: Path,
    threshold: float | None,
    style: CensorStyle | None,
    margin: float | None,
    uncertainty: bool = False,
    cascade: bool = False,
) -> CensorResult | JSONResponse:
    async def work() -> CensorResult | JSONResponse:
        censorer = await current()
        options = censorer.options(threshold, style, margin, uncertainty, cascade)
        [outcome] = await censorer.censor([Upload(image, upload_filename(image))], options)
        return error_response(outcome) if isinstance(outcome, PipelineError) else outcome

    return await answered(work())


async def censor_batch(
    current: CurrentCensorer,
    images: list[Path],
    most: int,
    threshold: float | None,
    style: CensorStyle | None,
    margin: float | None,
    uncertainty: bool = False,
    cascade: bool = False,
) -> list[BatchItem] | JSONResponse:
    async def work() -> list[BatchItem] | JSONResponse:
        if not 0 < len(images) <= most:
            raise InvalidRequest(f"send 1 to {most} files in field 'images', got {len(images)}")
        censorer = await current()
        uploads = [Upload(path, upload_filename(path)) for path in images]
        outcomes = await censorer.censor(uploads, censorer.options(threshold, style, margin, uncertainty, cascade))
        passing = [o for o in outcomes if isinstance(o, PipelineError) and o.retry_after_s]
        if len(passing) == len(outcomes):  # Nothing was done and all of it may be retried: say so once.
            return error_response(passing[0])
        return [
            BatchItem(filename=o.filename, status=200, result=o)
            if isinstance(o, CensorResult)
            else BatchItem(filename=u.filename, status=int(o.status), error=str(o), retry_after_s=o.retry_after_s)
            for u, o in zip(uploads, outcomes, strict=True)
        ]

    return await answered(work())
