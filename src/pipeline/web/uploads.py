"""Uploading images from the browser, and following collection jobs.

The upload page sends each dropped file as its own request (raw bytes, the name in the query),
so every file has its own progress bar and its own result or error. Each goes through the same
pipeline as `POST /censor`, in this Censor worker, with the deployment's options.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.errors import Forbidden, InvalidRequest, PipelineError, UploadTooLarge
from pipeline.serving.censorer import Upload
from pipeline.stores.jobs import JobRequest
from pipeline.stores.people import Person
from pipeline.web.app import Web, field_of, guarded


class UploadResult(BaseModel):
    id: str
    filename: str
    verdict: str
    gore: bool
    gore_probability: float
    page: str | None = Field(description="The image's page, for those who may open it.")
    notice: str | None = None


class JobProgress(BaseModel):
    state: str
    total: int
    done: int
    failed: int
    remaining: int
    images_per_s: float | None
    eta_s: float | None


def _filename(raw: str) -> str:
    name = PurePosixPath(raw.replace("\\", "/")).name.strip()
    if not name or len(name) > 255 or any(ord(c) < 32 for c in name):
        raise InvalidRequest("send the file's name as ?name=<file name> (one line, at most 255 characters)")
    return name


def routes(web: Web) -> list[Route]:
    limit = web.settings.max_upload_bytes

    def upload_page(request: Request, person: Person, form) -> Response:
        return web.render(request, "upload.html", person, limit=limit)

    async def upload(request: Request, person: Person, form) -> Response:
        filename = _filename(request.query_params.get("name", ""))
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise UploadTooLarge(f"{filename}: {int(declared):,} bytes is over the upload limit of {limit:,} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise UploadTooLarge(f"{filename}: over the upload limit of {limit:,} bytes")
        censorer = await web.censorer()  # Unavailable (503) while the service starts.
        [outcome] = await censorer.censor([Upload(bytes(data), filename)], censorer.options())
        if isinstance(outcome, PipelineError):
            raise outcome
        await run_in_threadpool(web.audit, person, "web: uploaded", outcome.id, filename)  # SQLite: off the loop.
        result = UploadResult(
            id=outcome.id,
            filename=filename,
            verdict=outcome.verdict,
            gore=outcome.gore,
            gore_probability=outcome.gore_probability,
            page=web.url(f"/images/{outcome.id}") if person.user.may("analyst") else None,
            notice=outcome.notice,
        )
        return JSONResponse(result.model_dump(mode="json"))

    def jobs_page(request: Request, person: Person, form) -> Response:
        return web.render(
            request, "jobs.html", person, jobs=web.stores.jobs.jobs(), jobs_on=web.settings.jobs_root is not None
        )

    def create_job(request: Request, person: Person, form) -> Response:
        if not person.user.may("ingest"):
            raise Forbidden("starting a job needs the ingest role")
        root = web.settings.jobs_root
        if root is None:
            raise Forbidden("collection jobs are off here: set GORE_JOBS_ROOT to the folder they may read")
        try:
            asked = JobRequest(folder=field_of(form, "folder").strip())
        except ValueError:
            raise InvalidRequest(
                "name a folder under the jobs root, relative to it (no '..', no hidden folders)"
            ) from None
        made = web.stores.jobs.create(asked, root, by=person.user.actor)
        return web.redirect(f"/jobs/{made.id}")

    def job_page(request: Request, person: Person, form) -> Response:
        job = web.stores.jobs.status(request.path_params["job_id"])
        failed = web.stores.jobs.items(job.id, state="failed", limit=200)
        videos = [
            (item, web.stores.videos.summary(item.video_id))
            for item in web.stores.jobs.items(job.id, videos=True, limit=200)
            if item.video_id
        ]
        return web.render(request, "job.html", person, job=job, failed=failed, videos=videos)

    def job_progress(request: Request, person: Person, form) -> Response:
        job = web.stores.jobs.status(request.path_params["job_id"])
        progress = JobProgress(**job.model_dump(include=set(JobProgress.model_fields)))
        return JSONResponse(progress.model_dump(mode="json"))

    return [
        Route("/upload", guarded(web, upload_page, ("ingest",))),
        Route("/upload/file", guarded(web, upload, ("ingest",), "data"), methods=["POST"]),
        Route("/jobs", guarded(web, jobs_page, ("ingest", "analyst"))),
        Route("/jobs/new", guarded(web, create_job, ("ingest",)), methods=["POST"]),
        Route("/jobs/{job_id}", guarded(web, job_page, ("ingest", "analyst"))),
        Route("/jobs/{job_id}/progress", guarded(web, job_progress, ("ingest", "analyst"), "data")),
    ]
