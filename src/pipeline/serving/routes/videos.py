"""Mounted under /videos: a video sent as the request body, censored in the background (the
runner: serving/videos.py; stored: stores/videos.py). The original is never served."""

from __future__ import annotations

import hashlib
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from pipeline.errors import InvalidRequest, UnsupportedImage, UploadTooLarge
from pipeline.files.kinds import VIDEO_NAMES, video_container
from pipeline.known.matcher import Matcher
from pipeline.known.videos import CensoredVideos
from pipeline.serving.access import principal
from pipeline.serving.openapi import json_answer, operation, ref
from pipeline.serving.routes.handling import JSON_ERRORS, NO_STORE, handled
from pipeline.stores.images import disk_space
from pipeline.stores.video_records import VideoRecord, VideoSummary
from pipeline.stores.videos import SUFFIXES, VideoStore

WRITE_BYTES = 4 * 1024 * 1024  # The body is written in pieces this big, each in a worker thread.
MOST_LISTED = 1000
OUTPUT_TYPES = {"censored.mp4": ("video", "video/mp4"), "strip.png": ("strip", "image/png")}
OUTPUT_TYPES["masks.jsonl"] = ("masks", "application/x-ndjson")
OUTPUT_TYPES["markers.edl"] = ("markers", "text/plain; charset=us-ascii")


def videos_app(videos: VideoStore, max_bytes: int, matcher: Matcher | None = None) -> Starlette:
    checked = CensoredVideos(videos, matcher)  # Outputs made before a gore list knew the video: made again.

    async def upload(request: Request):
        """The body to a private spool file, counted as it arrives: past `max_bytes` it stops (a body
        that stops arriving is a 408 from BodyLimit, before this sees it end)."""
        filename = request.query_params.get("filename", "video")[:200]
        spooled = await to_thread.run_sync(videos.spool)
        digest, received, pending, head = hashlib.sha256(), 0, bytearray(), b""
        try:
            with disk_space(), spooled.open("wb") as file:  # A full disk: 507, nothing kept.
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > max_bytes:
                        raise UploadTooLarge(f"{filename}: over the video limit of {max_bytes:,} bytes")
                    if len(head) < 12:
                        head = (head + chunk)[:12]
                        if len(head) == 12 and video_container(head) is None:
                            raise UnsupportedImage(f"{filename}: not a video this service reads ({VIDEO_NAMES})")
                    pending += chunk
                    if len(pending) >= WRITE_BYTES:
                        await to_thread.run_sync(_write, file, digest, bytes(pending))
                        pending.clear()
                await to_thread.run_sync(_write, file, digest, bytes(pending))
            kind = video_container(head)
            if kind is None:
                raise UnsupportedImage(f"{filename}: not a video this service reads ({VIDEO_NAMES})")
            by = principal(request.scope).name
            record = await to_thread.run_sync(videos.add, spooled, digest.hexdigest(), SUFFIXES[kind], filename, by)
        finally:
            spooled.unlink(missing_ok=True)  # Moved into place when stored; otherwise nothing is kept.
        answer = {"video": record.model_dump(mode="json"), "status_url": f"/videos/{record.id}"}
        return JSONResponse(answer, status_code=202 if record.state != "done" else 200)

    def listing(request: Request):
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= MOST_LISTED:
            raise InvalidRequest(f"limit is a whole number from 1 to {MOST_LISTED}, not {raw!r}")
        found = videos.summaries(int(raw), request.query_params.get("after") or None)
        return JSONResponse([summary.model_dump(mode="json") for summary in found])

    def one(request: Request):
        return JSONResponse(videos.get(request.path_params["video_id"]).model_dump(mode="json"))

    def output(request: Request):
        kind, media_type = OUTPUT_TYPES[request.url.path.rsplit("/", 1)[-1]]
        path = videos.output(checked.done(request.path_params["video_id"]).id, kind)
        return FileResponse(path, media_type=media_type, headers=NO_STORE)

    async def videos_route(request: Request):  # One route for both methods, so 405s list them both.
        return await upload(request) if request.method == "POST" else await to_thread.run_sync(listing, request)

    routes = [
        Route("/", handled(videos_route, query=("filename", "limit", "after")), methods=["GET", "POST"]),
        Route("/{video_id}", handled(one), methods=["GET"]),
    ]
    routes += [Route(f"/{{video_id}}/{name}", handled(output), methods=["GET"]) for name in OUTPUT_TYPES]
    return Starlette(routes=routes, exception_handlers=JSON_ERRORS)


def _write(file, digest, data: bytes) -> None:
    file.write(data)
    digest.update(data)


SCHEMAS = (VideoRecord, VideoSummary)
VIDEO_ID = {"name": "video_id", "in": "path", "required": True, "schema": {"type": "string"}}
_UPLOAD = operation(
    "A video (MP4, MOV, MKV or WebM) as the request body, censored in the background; poll its status URL.",
    json_answer({"type": "object"}, "The video, stored and queued."),
    parameters=[{"name": "filename", "in": "query", "required": False, "schema": {"type": "string"}}],
    ok_status="202",
    errors=("400", "401", "403", "408", "413", "415"),
)
_UPLOAD["responses"]["200"] = json_answer({"type": "object"}, "The same bytes were sent before: the stored video.")
# "video": binary that is a video (tests/schemathesis_hooks.py makes real ones).
_UPLOAD["requestBody"] = {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "video"}}},
}
PATHS: dict[str, Any] = {
    "/videos": {
        "post": _UPLOAD,
        "get": operation(
            "The videos sent, newest first, a page at a time: state, and what was found (no timelines).",
            json_answer({"type": "array", "items": ref(VideoSummary)}, "Videos."),
            parameters=[
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": MOST_LISTED},
                },
                {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            errors=("400", "401", "403", "404"),
        ),
    },
    "/videos/{video_id}": {
        "get": operation(
            "A video's state and, once censored, its timeline: sampled frames, gore segments, frames masked.",
            json_answer(ref(VideoRecord), "The video."),
            parameters=[VIDEO_ID],
        )
    },
}
for _name, (_kind, _type) in OUTPUT_TYPES.items():
    _binary = {"description": f"The {_kind}.", "content": {_type: {"schema": {"type": "string", "format": "binary"}}}}
    PATHS[f"/videos/{{video_id}}/{_name}"] = {
        "get": operation(
            f"Once censored: the {_kind} ({_type}); 409 while it is queued or working, or when it failed.",
            _binary,
            parameters=[VIDEO_ID],
            errors=("400", "401", "403", "404", "409"),
        )
    }
