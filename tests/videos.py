"""Synthetic videos, encoded for real with PyAV, whose gore pixels are known exactly.

The "wound" is a red disc the red-pixel test models see (tests/red_pixel_models.py): it appears,
moves across the frame and disappears, over a noisy background with no red in it. `wound_box`
says where it is in any frame, so a test can count every frame's visible gore pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import httpx
import numpy as np


@dataclass(frozen=True)
class Clip:
    width: int = 320
    height: int = 240
    fps: int = 30
    seconds: float = 6.0
    wound_from_s: float = 2.0
    wound_to_s: float = 4.0
    radius: int = 40
    audio: bool = True
    again: tuple[float, float] | None = None  # A second crossing (from, to seconds): a second gore segment.

    @property
    def frames(self) -> int:
        return int(round(self.seconds * self.fps))

    def wound_centre(self, index: int) -> tuple[int, int] | None:
        """Where the disc is in frame `index` (None: not there). It crosses from left to right."""
        t = index / self.fps
        crossings = [(self.wound_from_s, self.wound_to_s), *([self.again] if self.again else [])]
        span = next(((start, end) for start, end in crossings if start <= t < end), None)
        if span is None:
            return None
        share = (t - span[0]) / (span[1] - span[0])
        x = int(self.radius + share * (self.width - 2 * self.radius))
        return x, self.height // 2

    def wound_mask(self, index: int) -> np.ndarray:
        """H x W bool: the disc's pixels in frame `index`."""
        mask = np.zeros((self.height, self.width), np.uint8)
        centre = self.wound_centre(index)
        if centre is not None:
            cv2.circle(mask, centre, self.radius, 1, -1)
        return mask.astype(bool)

    def frame(self, index: int) -> np.ndarray:
        rng = np.random.default_rng(index)
        pixels = rng.integers(40, 90, (self.height, self.width, 3), dtype=np.uint8)
        pixels[..., 2] = np.minimum(pixels[..., 2] + 60, 255)  # Bluish: nothing red but the disc.
        pixels[self.wound_mask(index)] = (220, 20, 20)
        return pixels


def write_clip(path: Path, clip: Clip = Clip(), *, rotate: int = 0, codec: str = "libx264") -> Path:
    """Encode `clip` to `path` (MP4 or MKV by suffix), with a sine-tone AAC track when `clip.audio`."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=clip.fps)
        video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
        video.options = {"crf": "12", "preset": "ultrafast"} if codec == "libx264" else {}
        if rotate:
            video.metadata["rotate"] = str(rotate)
        audio = None
        if clip.audio:
            audio = out.add_stream("aac", rate=48000)
            audio.layout = "mono"
        for index in range(clip.frames):
            frame = av.VideoFrame.from_ndarray(clip.frame(index), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, clip.fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            samples = int(clip.seconds * 48000)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[start : start + 1024].reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))
    return path


def turn(path: Path, display_degrees_clockwise: int = 90) -> Path:
    """Mark an MP4's first track to be shown turned clockwise, as a phone held upright marks its
    video: the track header's display matrix (ISO 14496-12, 8.3.2), where FFmpeg reads rotation."""
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd")
    matrix_at = at + (56 if data[at + 4] == 1 else 44)
    one, minus_one, w = 0x00010000, 0xFFFF0000, 0x40000000
    matrices = {
        90: (0, one, 0, minus_one, 0, 0, 0, 0, w),
        180: (minus_one, 0, 0, 0, minus_one, 0, 0, 0, w),
        270: (0, minus_one, 0, one, 0, 0, 0, 0, w),
    }
    for i, value in enumerate(matrices[display_degrees_clockwise]):
        data[matrix_at + 4 * i : matrix_at + 4 * i + 4] = value.to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def write_sound_only(path: Path) -> Path:
    """An MP4 with one AAC frame of silence and no video stream."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def wait_done(url: str, headers: dict, video_id: str, timeout_s: float = 180) -> dict:
    """Poll a served video's record until it is done or failed."""
    ends = time.monotonic() + timeout_s
    while time.monotonic() < ends:
        record = httpx.get(f"{url}/videos/{video_id}", headers=headers, timeout=30).json()
        if record["state"] in ("done", "failed"):
            return record
        time.sleep(0.5)
    raise AssertionError(f"video {video_id} not done in {timeout_s} s: {record}")
