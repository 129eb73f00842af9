"""A video read one frame at a time, its limits enforced on what is decoded (PyAV, FFmpeg inside).

The file is hostile. Only two container families are accepted, recognised by their first bytes
(ISO BMFF: MP4, MOV; Matroska: MKV, WebM) and opened with that demuxer named, from a Python file
object: FFmpeg never probes (no playlist or concat demuxer, which read other files or URLs) and
no protocol is involved. Headers are read only to refuse early; the bounds that hold are counted
on the decoded frames: each frame's pixels, the video time reached, frames per second of video
time, and all pixels decoded in one pass. A stream that breaks part way ends the frames there,
and `stopped` says where and why: the caller decides what a partial video may show.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from pipeline.errors import InvalidImage, UnsupportedImage, UploadTooLarge
from pipeline.files import open_inside
from pipeline.files.kinds import VIDEO_NAMES, video_container

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int
    max_seconds: float
    max_frame_pixels: int
    max_fps: float
    max_decoded_pixels: int

    @classmethod
    def from_settings(cls, settings) -> VideoLimits:
        return cls(
            settings.video_max_bytes,
            settings.video_max_seconds,
            settings.video_max_frame_pixels,
            settings.video_max_fps,
            settings.video_max_decoded_pixels,
        )

    @property
    def max_frames(self) -> int:
        return int(self.max_seconds * self.max_fps) + 1


@dataclass(frozen=True)
class Frame:
    index: int
    time_s: float
    pixels: np.ndarray
    """H x W x 3 RGB uint8, upright (the container's rotation applied)."""
    corrupt: bool = False
    """The decoder said the frame is damaged (concealed errors): shown only where nothing is hidden."""


@dataclass
class Stopped:
    at_s: float
    reason: str


@dataclass
class VideoInfo:
    container: str
    codec: str
    width: int
    height: int
    rotation: int
    """Degrees the frames were turned to be shown upright."""
    fps: float
    declared_seconds: float | None
    audio_codec: str | None


@dataclass
class VideoReader:
    """One pass over a video's frames: `info` from the headers, `frames()` decoded one by one."""

    path: Path
    limits: VideoLimits
    filename: str = ""
    info: VideoInfo = field(init=False)
    stopped: Stopped | None = field(init=False, default=None)
    decoded_pixels: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        """Opens the file (a regular file, no link followed) and reads its headers: blocks, so
        callers make a reader in a worker thread."""
        self.filename = self.filename or self.path.name
        self._file: BinaryIO = os.fdopen(open_inside(self.path.parent, self.path.name, self.filename), "rb")
        try:
            size = os.fstat(self._file.fileno()).st_size  # Of what was opened, not of a name.
            if size > self.limits.max_bytes:
                raise UploadTooLarge(
                    f"{self.filename}: {size:,} bytes is over the video limit of {self.limits.max_bytes:,}"
                )
            self.container = self._open()
            self.info = self._info()
        except BaseException:
            self.close()
            raise

    def _open(self) -> av.container.InputContainer:
        demuxer = video_container(self._file.read(12))
        self._file.seek(0)
        if demuxer is None:
            raise UnsupportedImage(f"{self.filename}: not a video this service reads ({VIDEO_NAMES})")
        try:
            return av.open(self._file, "r", format=demuxer, options={"enable_drefs": "0"})
        except av.error.FFmpegError as error:
            raise InvalidImage(f"{self.filename}: not a readable video ({_reason(error)})") from None

    def _info(self) -> VideoInfo:
        if not self.container.streams.video:
            raise UnsupportedImage(f"{self.filename}: the file has no video stream")
        stream = self.container.streams.video[0]
        context = stream.codec_context
        width, height = context.width or 0, context.height or 0
        if width * height > self.limits.max_frame_pixels:
            raise UploadTooLarge(
                f"{self.filename}: {width} x {height} frames are over the limit of "
                f"{self.limits.max_frame_pixels:,} pixels a frame"
            )
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        if float(rate) > self.limits.max_fps:
            raise UploadTooLarge(
                f"{self.filename}: {float(rate):g} frames a second is over the limit of {self.limits.max_fps:g}"
            )
        declared = float(self.container.duration) / av.time_base if self.container.duration else None
        if declared is not None and declared > self.limits.max_seconds + 1:
            raise UploadTooLarge(
                f"{self.filename}: {declared:.0f} s of video is over the limit of {self.limits.max_seconds:g} s"
            )
        audio = self.container.streams.audio
        return VideoInfo(
            container="MKV/WebM" if self.container.format.name.startswith("matroska") else "MP4/MOV",
            codec=context.name,
            width=width,
            height=height,
            rotation=0,
            fps=float(rate) if rate else 0.0,
            declared_seconds=declared,
            audio_codec=audio[0].codec_context.name if audio else None,
        )

    @property
    def stream(self) -> av.video.stream.VideoStream:
        return self.container.streams.video[0]

    def seek(self, time_s: float) -> None:
        """Start the next `frames()` at the key frame at or before `time_s` (frames before
        `time_s` may still come: the caller skips them). Frame indexes then count from there."""
        if time_s > 0:
            try:
                self.container.seek(int(time_s * av.time_base), backward=True, any_frame=False)
            except av.error.FFmpegError as error:
                raise InvalidImage(f"{self.filename}: cannot seek to {time_s:.2f} s ({_reason(error)})") from None

    def frames(self, packets: list | None = None) -> Iterator[Frame]:
        """Decoded frames in order; refused (an error) past a limit; ended early, with `stopped`
        set, where the stream breaks. `packets`: when given, every demuxed packet of other
        streams (audio) is appended to it as met, for copying."""
        stream = self.stream
        stream.thread_type = "AUTO"
        streams = [stream, *(self.container.streams.audio[:1] if packets is not None else [])]
        index, time_s = 0, 0.0
        try:
            for packet in self.container.demux(*streams):
                if packet.stream.type != "video":
                    if packet.dts is not None and packets is not None:
                        packets.append(packet)
                    continue
                for decoded in packet.decode():
                    frame = self._frame(decoded, index, time_s)
                    time_s, index = frame.time_s, index + 1
                    yield frame
        except av.error.FFmpegError as error:
            self.stopped = Stopped(at_s=time_s, reason=_reason(error))
        else:
            declared, frame_s = self.info.declared_seconds, 1.0 / (self.info.fps or 30)
            if declared is not None and index and time_s + 1.5 * frame_s < declared:
                self.stopped = Stopped(at_s=time_s, reason=f"the file ends before the {declared:.2f} s it declares")
        if self.stopped is not None:
            log.warning("%s: decoding stopped at %.2f s: %s", self.filename, time_s, self.stopped.reason)

    def _frame(self, decoded: av.VideoFrame, index: int, previous_s: float) -> Frame:
        pixels = decoded.width * decoded.height
        if pixels > self.limits.max_frame_pixels:
            raise UploadTooLarge(
                f"{self.filename}: frame {index} is {decoded.width} x {decoded.height}, over the limit of "
                f"{self.limits.max_frame_pixels:,} pixels a frame"
            )
        self.decoded_pixels += pixels
        if self.decoded_pixels > self.limits.max_decoded_pixels:
            raise UploadTooLarge(
                f"{self.filename}: over {self.limits.max_decoded_pixels:,} decoded pixels at frame {index}; "
                "the video is too long at this size"
            )
        time_s = decoded.time if decoded.time is not None else previous_s + 1 / (self.info.fps or 30)
        if time_s > self.limits.max_seconds:
            raise UploadTooLarge(f"{self.filename}: over the limit of {self.limits.max_seconds:g} s of video")
        if index + 1 > self.limits.max_fps * max(time_s, 1.0) + 1:
            raise UploadTooLarge(
                f"{self.filename}: {index + 1} frames in {time_s:.2f} s is over the limit of "
                f"{self.limits.max_fps:g} frames a second"
            )
        rgb = decoded.to_ndarray(format="rgb24")
        rotation = round((decoded.rotation or 0) / 90) % 4 * 90
        if rotation:
            # The display matrix turns the stored picture counter-clockwise by this angle to show it.
            rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
            self.info.rotation = rotation
        return Frame(index=index, time_s=float(time_s), pixels=rgb, corrupt=bool(decoded.is_corrupt))

    def close(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            container.close()
        self._file.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(error: av.error.FFmpegError) -> str:
    return getattr(error, "strerror", None) or type(error).__name__
