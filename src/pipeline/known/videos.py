"""Videos censored before a hash list knew them. An image is matched again each time it is shown;
a video's outputs are made once, so a video whose sampled frames a gore list now knows, outside
the segments it hid, is censored again before anything of it is shown (fail closed)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.errors import Conflict
from pipeline.known.matcher import Matcher, known_gore
from pipeline.stores.hash_lists import KnownMatch
from pipeline.stores.records import Pdq
from pipeline.stores.video_records import VideoRecord, VideoResult
from pipeline.stores.videos import VideoStore


def uncovered_gore(result: VideoResult, match: Callable[[Pdq], list[KnownMatch]]) -> list[float]:
    """Times of the sampled frames a gore list knows that lie outside every gore segment."""
    spans = [(s.padded_start_s, s.padded_end_s) for s in result.segments]
    return [
        frame.time_s
        for frame in result.sampled
        if frame.pdq is not None
        and not any(start <= frame.time_s <= end for start, end in spans)
        and known_gore(match(frame.pdq)) is not None
    ]


@dataclass
class CensoredVideos:
    """What may be shown of a video: a done one, checked against the lists as they are now (once
    per change of the lists). Blocks: call it in a thread."""

    videos: VideoStore
    matcher: Matcher | None
    _checked: dict[str, int] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def done(self, video_id: str) -> VideoRecord:
        """The video's record; a Conflict (409) when it is not done, or has just been queued to be
        censored again."""
        record = self.videos.get(video_id)
        if record.state != "done" or record.result is None:
            raise Conflict(f"video {video_id} is {record.state}: nothing of it can be shown until it is done")
        if self.matcher is None:
            return record
        generation = self.matcher.generation()
        with self._lock:
            if self._checked.get(video_id) == generation:
                return record
        times = uncovered_gore(record.result, self.matcher.match)
        if times:
            self.videos.censor_again(video_id)
            at = ", ".join(f"{t:.1f} s" for t in times[:5])
            raise Conflict(
                f"video {video_id}: frames at {at} are on a gore hash list enabled since it was censored; "
                "it is being censored again, nothing of it is shown until it is done"
            )
        with self._lock:
            self._checked[video_id] = generation
        return record
