"""The censored video: H.264 in MP4 through PyAV, the input's audio packets copied untouched.

Frames keep their source timestamps, so a variable frame rate stays in step with the sound.
H.264 with 4:2:0 chroma wants even sides: an odd row or column is added, black, at the edge.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ENCODERS = ("libx264", "h264", "libopenh264", "mpeg4")
"""Tried in order: FFmpeg builds differ in which H.264 encoder they carry."""
COPIED_AUDIO = {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}
"""Audio codecs MP4 holds as they are; another is dropped, and the answer says so."""


class VideoWriter:
    def __init__(self, path: Path, fps: float, width: int, height: int, audio: av.audio.stream.AudioStream | None):
        self.path = path
        self.output = av.open(str(path), "w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30)
        self.video = self._video_stream(rate, width + width % 2, height + height % 2)
        self.audio_dropped: str | None = None
        self.audio = None
        if audio is not None:
            if audio.codec_context.name in COPIED_AUDIO:
                self.audio = self.output.add_stream_from_template(audio)
            else:
                self.audio_dropped = f"{audio.codec_context.name} audio cannot be copied into MP4; it was left out"
        self.frames = 0
        self._last_pts = -1
        self.encode_s = 0.0
        """Seconds spent encoding and writing frames."""

    def _video_stream(self, rate: Fraction, width: int, height: int):
        for name in ENCODERS:
            if name in av.codecs_available:
                stream = self.output.add_stream(name, rate=rate)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                if name == "libx264":
                    stream.options = {"crf": "20", "preset": "veryfast"}
                self.codec = name
                return stream
        raise RuntimeError("this FFmpeg build has no H.264 or MPEG-4 encoder")

    def write(self, pixels: np.ndarray, time_s: float) -> None:
        height, width = self.video.height, self.video.width
        if pixels.shape[:2] != (height, width):
            padded = np.zeros((height, width, 3), np.uint8)
            padded[: pixels.shape[0], : pixels.shape[1]] = pixels
            pixels = padded
        started = time.perf_counter()
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.time_base = Fraction(1, 90_000)
        frame.pts = max(round(time_s * 90_000), self._last_pts + 1)
        self._last_pts = frame.pts
        self.output.mux(self.video.encode(frame))
        self.frames += 1
        self.encode_s += time.perf_counter() - started

    def copy_audio(self, packets: list) -> None:
        """Mux demuxed audio packets as they are (the caller drains its list)."""
        if self.audio is None:
            packets.clear()
            return
        for packet in packets:
            packet.stream = self.audio
            self.output.mux(packet)
        packets.clear()

    def close(self) -> None:
        self.output.mux(self.video.encode(None))
        self.output.close()
