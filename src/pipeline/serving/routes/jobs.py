"""Mounted under /jobs: collection jobs over server-side folders (the runner: serving/jobs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipeline.errors import Conflict, InvalidRequest
from pipeline.serving.access import principal
from pipeline.serving.openapi import json_answer, operation, ref
from pipeline.serving.routes.handling import JSON_ERRORS, handled, read_json
from pipeline.stores.jobs import JobItem, JobRequest, JobStatus, JobStore


def jobs_app(jobs: JobStore, root: Path | None) -> Starlette:
    def job_id(request: Request) -> str:
        return request.path_params["job_id"]

    async def jobs_route(request: Request):  # One route for both methods, so 405s list them both.
        if request.method != "POST":
            return JSONResponse([j.model_dump(mode="json") for j in await to_thread.run_sync(jobs.jobs)])
        if root is None:  # Before the body is read: what this deployment cannot do, whatever was asked.
            raise Conflict("collection jobs are off here: set GORE_JOBS_ROOT to the folder they may read")
        asked = await read_json(request, JobRequest)
        made = await to_thread.run_sync(jobs.create, asked, root, principal(request.scope).name)  # Walks the folder.
        return JSONResponse(made.model_dump(mode="json"), status_code=202)

    def status(request: Request):
        return JSONResponse(jobs.status(job_id(request)).model_dump(mode="json"))

    def items(request: Request):
        state = request.query_params.get("state")
        if state not in (None, "pending", "working", "done", "failed"):
            raise InvalidRequest(f"state must be pending, working, done or failed, not {state!r}")
        try:
            after = int(request.query_params.get("after", "-1"))
            limit = int(request.query_params.get("limit", "1000"))
        except ValueError:
            raise InvalidRequest("after and limit are whole numbers") from None
        if not 1 <= limit <= 10_000 or after < -1:
            raise InvalidRequest("limit is 1 to 10,000 and after is -1 or more")
        found = jobs.items(job_id(request), state=state, after=after, limit=limit)
        return JSONResponse([i.model_dump(mode="json") for i in found])

    def cancel(request: Request):
        return JSONResponse(jobs.cancel(job_id(request)).model_dump(mode="json"))

    return Starlette(
        routes=[
            Route("/", handled(jobs_route), methods=["GET", "POST"]),
            Route("/{job_id}", handled(status), methods=["GET"]),
            Route("/{job_id}/items", handled(items, query=("state", "after", "limit")), methods=["GET"]),
            Route("/{job_id}/cancel", handled(cancel), methods=["POST"]),
        ],
        exception_handlers=JSON_ERRORS,
    )


SCHEMAS = (JobRequest, JobStatus, JobItem)
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PATHS: dict[str, Any] = {
    "/jobs": {
        "get": operation(
            "Every collection job, newest first.",
            json_answer({"type": "array", "items": ref(JobStatus)}, "Jobs."),
            errors=("401", "403"),
        ),
        "post": operation(
            "A collection job over a folder or files under GORE_JOBS_ROOT; works in the background.",
            json_answer(ref(JobStatus), "The job, queued."),
            body=JobRequest,
            ok_status="202",
            errors=("400", "401", "403", "404", "409"),
        ),
    },
    "/jobs/{job_id}": {
        "get": operation(
            "A job's progress: done, failed, remaining, images/s, ETA.",
            json_answer(ref(JobStatus), "The job."),
            parameters=[JOB_ID],
        )
    },
    "/jobs/{job_id}/items": {
        "get": operation(
            "A job's files and what became of each, in order; page with `after`.",
            json_answer({"type": "array", "items": ref(JobItem)}, "Items."),
            parameters=[
                JOB_ID,
                _query("state", {"enum": ["pending", "working", "done", "failed"]}),
                _query("after", {"type": "integer", "minimum": -1}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}),
            ],
        )
    },
    "/jobs/{job_id}/cancel": {
        "post": operation(
            "Cancel a job: its pending files are left alone.",
            json_answer(ref(JobStatus), "The job."),
            parameters=[JOB_ID],
        )
    },
}
