"""Videos in the web app: the list, and a video's page with its gore segments revealed in steps.

What a video's page shows, each step written to the audit log:
  1. the censored copy (its gore pixels masked), muted, blurred and greyed in the player until
     the person unblurs it, with a timeline bar of the gore segments (not counted: nothing of
     the original is in it);
  2. on request, one segment of the original, blurred and greyed (counted in seconds, once per
     session and reveal window);
  3. that segment sharp, only after a confirmed POST (.../reveal), counted in seconds of gore
     and refused past GORE_WEB_DAILY_GORE_SECONDS a day; GET .../original.mp4 refuses every
     session without that grant.
Before step 3 the page never names the original's URL. Segments are cut out and re-encoded
without sound when first asked (pipeline.video.clips) and kept beside the censored copy.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from pipeline.errors import Forbidden, InvalidRequest, NotFound
from pipeline.files.locks import flocked
from pipeline.known.videos import CensoredVideos
from pipeline.stores.people import Person
from pipeline.stores.video_records import GoreSegment, VideoRecord
from pipeline.video.clips import write_clip
from pipeline.video.decode import VideoLimits
from pipeline.web.app import Web, field_of, guarded
from pipeline.web.gallery import ANALYSTS, image_response
from pipeline.web.pictures import DETAIL_PX, MIN_REVEAL_BLUR, encode_jpeg, first_frame, fit, soften

SHOWN = "web: censored video shown"
BLURRED = "web: video segment shown blurred and greyed"
CONFIRMED = "web: video segment revealed (confirmed)"
SERVED = "web: video segment original served"
STEPS = ("censored", "blurred", "original")


def segment_span(record: VideoRecord, segment: GoreSegment) -> tuple[float, float]:
    """The stretch a segment's reveal shows: the masked (padded) span, inside the video."""
    assert record.result is not None
    return max(0.0, segment.padded_start_s), min(record.result.seconds, segment.padded_end_s)


def grant_key(video_id: str, number: int, step: str) -> str:
    """What a reveal grant is kept under (the people store keys grants by image id or this)."""
    return f"video:{video_id}:{number}:{step}"


def routes(web: Web) -> list[Route]:
    videos, people = web.stores.videos, web.people
    limits = VideoLimits.from_settings(web.settings)

    def strength(person: Person) -> int:
        own = person.user.blur_strength
        return web.settings.web_blur_strength if own is None else own

    checked = CensoredVideos(videos, web.views.matcher)

    def done(video_id: str) -> VideoRecord:
        """Done, and checked against the hash lists as they are now (else 409: being censored again)."""
        return checked.done(video_id)

    def segment(record: VideoRecord, raw: str) -> tuple[int, GoreSegment]:
        assert record.result is not None
        found = record.result.segments
        if not raw.isdigit() or not 1 <= int(raw) <= len(found):
            raise NotFound(f"this video has {len(found)} gore segment(s); there is no segment {raw!r}")
        return int(raw), found[int(raw) - 1]

    def clip(record: VideoRecord, number: int, part: GoreSegment, name: str, change=None) -> Path:
        """The segment cut out (made once, under a lock so parallel range requests wait for it)."""
        path = videos.clip(record.id, name)
        with flocked(path.with_suffix(".lock")):
            if not path.exists():
                start, end = segment_span(record, part)
                write_clip(videos.original(record.id), limits, start, end, path, change)
        return path

    def video_file(path: Path) -> Response:
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "no-store"})

    def listing(request: Request, person: Person, form) -> Response:
        size = web.settings.web_page_size
        found = videos.summaries(size + 1, request.query_params.get("after") or None)
        older = found[size - 1].id if len(found) > size else None
        return web.render(request, "videos.html", person, videos=found[:size], older=older)

    def page(request: Request, person: Person, form) -> Response:
        record = videos.get(request.path_params["video_id"])
        show = request.query_params.get("show", "censored")
        if show not in STEPS:
            raise InvalidRequest(f"show must be one of {', '.join(STEPS)}, not {show!r}")
        number, part = None, None
        if record.state == "done" and "segment" in request.query_params:
            number, part = segment(record, request.query_params["segment"])
        granted = number is not None and people.revealed(person.session_id, grant_key(record.id, number, "original"))
        if part is None or (show == "original" and not granted):
            show = "censored"  # No segment chosen, or its grant ran out (or was never made).
        if record.state == "done" and show == "censored":
            web.audit(person, SHOWN, record.id)
        return web.render(
            request,
            "video.html",
            person,
            record=record,
            result=record.result,
            show=show,
            number=number,
            part=part,
            span=segment_span(record, part) if part else None,
            audit=web.stores.access.audit_entries(image_id=record.id, limit=20),
        )

    def strip(request: Request, person: Person, form) -> Response:
        """The censored thumbnails; blurred and greyed too when the video has gore."""
        record = done(request.path_params["video_id"])
        pixels = first_frame(videos.output(record.id, "strip").read_bytes())
        if record.result and record.result.gore:
            pixels = soften(pixels, strength(person))
        return image_response(encode_jpeg(pixels), "image/jpeg")

    def censored(request: Request, person: Person, form) -> Response:
        return video_file(videos.output(done(request.path_params["video_id"]).id, "video"))

    def blurred(request: Request, person: Person, form) -> Response:
        record = done(request.path_params["video_id"])
        number, part = segment(record, request.path_params["number"])
        amount = max(strength(person), MIN_REVEAL_BLUR)
        path = clip(
            record, number, part, f"segment-{number}-blurred-{amount}.mp4", lambda p: soften(fit(p, DETAIL_PX), amount)
        )
        key = grant_key(record.id, number, "blurred")
        if not people.revealed(person.session_id, key):  # Counted once a window, not per range request.
            start, end = segment_span(record, part)
            people.grant_reveal(person.session_id, key, web.settings.web_reveal_minutes)
            people.count_blurred_seconds(person.user.id, end - start)
            web.audit(person, BLURRED, record.id, f"segment {number}: {start:.1f}-{end:.1f} s")
        return video_file(path)

    def reveal(request: Request, person: Person, form) -> Response:
        record = done(request.path_params["video_id"])
        number, part = segment(record, request.path_params["number"])
        if field_of(form, "confirm") != "yes":
            raise InvalidRequest("tick the box to confirm that you want to see the original segment")
        key = grant_key(record.id, number, "original")
        if not people.revealed(person.session_id, key):  # A reload inside the window costs nothing more.
            start, end = segment_span(record, part)
            limit = web.settings.web_daily_gore_seconds or None
            spent = people.take_gore_seconds(person.user.id, end - start, limit)
            if spent is not None:
                web.audit(person, "web: video segment refused (daily limit)", record.id, f"segment {number}")
                raise Forbidden(
                    f"You have revealed {spent:.1f} s of video gore today; this segment is {end - start:.1f} s "
                    f"and the daily limit is {limit:g} s. Its censored copy and blurred view stay available."
                )
            people.grant_reveal(person.session_id, key, web.settings.web_reveal_minutes)
            web.audit(person, CONFIRMED, record.id, f"segment {number}: {start:.1f}-{end:.1f} s, {end - start:.1f} s")
        return web.redirect(f"/videos/{record.id}?segment={number}&show=original")

    def original(request: Request, person: Person, form) -> Response:
        record = done(request.path_params["video_id"])
        number, part = segment(record, request.path_params["number"])
        if not people.revealed(person.session_id, grant_key(record.id, number, "original")):
            raise Forbidden("confirm the reveal of this segment on the video's page first")
        path = clip(record, number, part, f"segment-{number}-original.mp4")
        # Every request for the original is logged, each range a player asks for included.
        web.audit(person, SERVED, record.id, f"segment {number}, {request.headers.get('range', 'whole')}")
        return video_file(path)

    base = "/videos/{video_id}"
    return [
        Route("/videos", guarded(web, listing, ANALYSTS)),
        Route(base, guarded(web, page, ANALYSTS)),
        Route(f"{base}/strip.jpg", guarded(web, strip, ANALYSTS, "data")),
        Route(f"{base}/censored.mp4", guarded(web, censored, ANALYSTS, "data")),
        Route(f"{base}/segments/{{number}}/blurred.mp4", guarded(web, blurred, ANALYSTS, "data")),
        Route(f"{base}/segments/{{number}}/reveal", guarded(web, reveal, ANALYSTS), methods=["POST"]),
        Route(f"{base}/segments/{{number}}/original.mp4", guarded(web, original, ANALYSTS, "data")),
    ]
