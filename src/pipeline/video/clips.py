"""A stretch of a video cut out and re-encoded (H.264 in MP4, no sound), each frame changed on
the way if asked: the web app's steps 2 and 3 for one gore segment (the original blurred and
greyed, then sharp). Sound is left out: a reveal is of pictures, and the censored copy keeps it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.errors import NotFound
from pipeline.video.decode import VideoLimits, VideoReader
from pipeline.video.encode import VideoWriter

Change = Callable[[np.ndarray], np.ndarray]


def write_clip(
    source: Path, limits: VideoLimits, start_s: float, end_s: float, out: Path, change: Change | None = None
) -> float:
    """Frames of `source` shown from `start_s` to `end_s` written to `out` (atomically: a reader
    never sees half a clip), timed from 0, each through `change`. Returns the seconds written."""
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=".clip-", suffix=".mp4")
    os.close(fd)
    made = Path(name)
    writer: VideoWriter | None = None
    try:
        with VideoReader(source, limits) as reader:
            reader.seek(start_s)
            first = last = 0.0
            for frame in reader.frames():
                if frame.time_s < start_s - 1e-6:
                    continue
                if frame.time_s >= end_s:
                    break
                pixels = change(frame.pixels) if change else frame.pixels
                if writer is None:
                    height, width = pixels.shape[:2]
                    writer = VideoWriter(made, reader.info.fps, width, height, audio=None)
                    first = frame.time_s
                writer.write(pixels, frame.time_s - first)
                last = frame.time_s
            if writer is None:
                raise NotFound(f"no frame of the video lies between {start_s:.2f} s and {end_s:.2f} s")
            writer.close()
            writer = None
            frame_s = 1.0 / (reader.info.fps or 30)
        os.replace(made, out)
        return last - first + frame_s
    finally:
        if writer is not None:  # Failed part way: the half-written file is let go and removed.
            writer.output.close()
        made.unlink(missing_ok=True)
