"""The gore segments as an edit decision list (CMX 3600, the plain-text EDL every editor imports),
so a video editor sees where the gore is on their timeline: one event per padded gore segment,
source and record timecodes the same (the segments of the video as it is), a comment with its
peak probability.

Timecode is non-drop-frame at the nominal rate (29.97 fps counts as 30 frames a second), frames
counted from the video's start. The file name, which the sender chose, is written only as
printable ASCII (no line break can start a new event).
"""

from __future__ import annotations

import re

from pipeline.stores.video_records import GoreSegment

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def timecode(seconds: float, fps: float) -> str:
    nominal = max(1, round(fps))
    frames = max(0, round(seconds * fps))
    hours, rest = divmod(frames, nominal * 3600)
    minutes, rest = divmod(rest, nominal * 60)
    secs, frame = divmod(rest, nominal)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}:{frame:02d}"


def gore_edl(filename: str, fps: float, seconds: float, segments: list[GoreSegment]) -> str:
    name = _UNPRINTABLE.sub("?", filename)[:80]
    rate = fps or 30.0
    lines = [f"TITLE: gore segments of {name}", "FCM: NON-DROP FRAME", ""]
    for number, segment in enumerate(segments, start=1):
        start = timecode(max(0.0, segment.padded_start_s), rate)
        end = timecode(min(seconds, segment.padded_end_s), rate)
        lines += [
            f"{number:03d}  AX       V     C        {start} {end} {start} {end}",
            f"* FROM CLIP NAME: {name}",
            f"* COMMENT: GORE SEGMENT {number}, PEAK {segment.peak_probability:.2f}, "
            f"DETECTED {segment.start_s:.2f}-{segment.end_s:.2f} S, MASKED IN THE CENSORED COPY",
            "",
        ]
    return "\n".join(lines)
