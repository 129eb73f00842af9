"""A video censored frame by frame: classify sampled frames, find the gore segments, mask only
their gore pixels, and write the censored copy with its sound, a timeline and the masks.

Two passes over the file, each decoding one frame at a time, so memory does not grow with the
video: the first classifies sampled frames (pipeline.video.timeline), the second segments frames
inside the padded gore segments, masks every frame there from its neighbours' masks
(pipeline.video.masks) and encodes (pipeline.video.encode). Frames outside every segment are
written as decoded. Model calls are injected, as for images (pipeline.serving.censorer).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np
from anyio import to_thread

from pipeline.config import CensorStyle, Settings
from pipeline.errors import InvalidImage, PipelineError, UploadTooLarge
from pipeline.files import open_inside
from pipeline.files.reading import CHUNK_BYTES
from pipeline.imaging.mask import apply_mask, full_size_mask, keep_mask
from pipeline.imaging.model_input import model_input
from pipeline.known.pdq import pdq_of
from pipeline.model_store.metadata import ModelInfo
from pipeline.stores.hash_lists import KnownMatch
from pipeline.stores.records import Pdq
from pipeline.stores.video_records import GoreSegment, SampledFrame, VideoResult
from pipeline.video.decode import Frame, VideoLimits, VideoReader
from pipeline.video.encode import VideoWriter
from pipeline.video.markers import gore_edl
from pipeline.video.masks import FrameMask, HeldMasks
from pipeline.video.timeline import Sampler, inside, inside_known, segments

ModelCall = Callable[[np.ndarray], Awaitable[np.ndarray]]
Known = Callable[[Pdq], list[KnownMatch]]
"""A PDQ hash -> the enabled hash lists' matches (pipeline.known.matcher.Matcher.match); blocks."""
Progress = Callable[[str, float, float | None], None]
"""(phase: "analyse" or "mask", seconds of video done, seconds in all when known): called as work goes on."""
CHUNK_PIXELS = 100_000_000
"""Most decoded pixels held at once between decoding and the models (about 100 frames of 720p)."""
STRIP_FRAMES, STRIP_WIDTH = 8, 160


@dataclass(frozen=True)
class VideoModels:
    classify: ModelCall
    segment: ModelCall
    classifier_size: int
    segmenter_size: int
    classifier: str
    segmenter: str
    demo: bool
    batch: int = 8

    @classmethod
    def of(
        cls, classify: ModelCall, segment: ModelCall, classifier: ModelInfo, segmenter: ModelInfo, batch: int = 8
    ) -> VideoModels:
        """The two model calls with what their models' metadata says (input sizes, tags, demo)."""
        return cls(
            classify=classify,
            segment=segment,
            classifier_size=classifier.input_size,
            segmenter_size=segmenter.input_size,
            classifier=classifier.tag,
            segmenter=segmenter.tag,
            demo=classifier.demo or segmenter.demo,
            batch=batch,
        )


@dataclass(frozen=True)
class VideoOptions:
    threshold: float
    seg_threshold: float
    style: CensorStyle = "black"
    margin: float = 1.0
    sample_fps: float = 2.0
    segment_fps: float = 10.0
    pad_s: float = 1.0
    mute: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, threshold: float, seg_threshold: float, mute: bool = False):
        return cls(
            threshold=settings.threshold if settings.threshold is not None else threshold,
            seg_threshold=settings.seg_threshold if settings.seg_threshold is not None else seg_threshold,
            style=settings.style,
            margin=settings.margin,
            sample_fps=settings.video_sample_fps,
            segment_fps=settings.video_segment_fps,
            pad_s=settings.video_pad_s,
            mute=mute,
        )


@dataclass
class _Pass2:
    """The second pass' state: frames waiting for their neighbours' masks, and what was written."""

    held: HeldMasks
    pending: deque[Frame] = field(default_factory=deque)
    keys: list[Frame] = field(default_factory=list)
    next_key_s: float = -1.0
    was_inside: bool = False
    last_frame: Frame | None = None
    last_key: Frame | None = None
    masks: TextIO | None = None
    """The masks file, a line written per masked frame as it goes (none held in memory)."""
    hidden: list[int] = field(default_factory=list)
    strip: list[np.ndarray] = field(default_factory=list)
    segmented: int = 0
    masked: int = 0
    segment_s: float = 0.0
    emitted_s: float = 0.0


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def file_id(path: Path, max_bytes: int, filename: str) -> str:
    """SHA-256 of a regular file (no link followed), read at most to `max_bytes`."""
    digest, total = hashlib.sha256(), 0
    with os.fdopen(open_inside(path.parent, path.name, filename), "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            total += len(chunk)
            if total > max_bytes:
                raise UploadTooLarge(f"{filename}: over the video limit of {max_bytes:,} bytes")
            digest.update(chunk)
    return digest.hexdigest()


class VideoCensorer:
    def __init__(self, models: VideoModels, limits: VideoLimits, known: Known | None = None):
        """`known`: the hash lists, matched with every sampled frame's PDQ hash (None: no lists)."""
        self.models, self.limits, self.known = models, limits, known

    async def censor(
        self,
        path: Path,
        out_dir: Path,
        options: VideoOptions,
        filename: str | None = None,
        progress: Progress | None = None,
    ) -> VideoResult:
        """Censor the video at `path` into `out_dir` (<stem>.censored.mp4, .json, .masks.jsonl, .strip.png,
        .gore.edl)."""
        filename = filename or path.name
        progress = progress or _no_progress
        started = time.perf_counter()
        video_id = await to_thread.run_sync(file_id, path, self.limits.max_bytes, filename)
        samples, seconds, classify_s = await self._sample(path, filename, options, progress)
        matches = await to_thread.run_sync(self._match, samples)
        timings = {"analyse": _ms(started), "classify": round(classify_s * 1000, 1)}
        period = 1.0 / options.sample_fps
        found = segments(samples, options.threshold, options.pad_s, gap_s=2.5 * period)
        stem = Path(filename).stem or "video"
        await to_thread.run_sync(lambda: out_dir.mkdir(parents=True, exist_ok=True))
        names = {
            "video": f"{stem}.censored.mp4",
            "timeline": f"{stem}.json",
            "masks": f"{stem}.masks.jsonl",
            "strip": f"{stem}.strip.png",
            "markers": f"{stem}.gore.edl",
        }
        started = time.perf_counter()
        with (out_dir / names["masks"]).open("w") as masks:
            state, reader, writer = await self._write(
                path, filename, out_dir / names["video"], found, seconds, options, masks, progress
            )
        timings["mask_and_encode"] = _ms(started)
        timings["segment"] = round(state.segment_s * 1000, 1)
        timings["encode"] = round(writer.encode_s * 1000, 1)
        await to_thread.run_sync(self._side_files, out_dir, names, state)
        info = reader.info
        audio, note = ("none", None)
        if info.audio_codec is not None:
            audio, note = ("muted", None) if options.mute else ("copied", None)
            if writer.audio_dropped:
                audio, note = "dropped", writer.audio_dropped
        result = VideoResult(
            id=video_id,
            filename=filename,
            container=info.container,
            codec=info.codec,
            width=writer.video.width,
            height=writer.video.height,
            rotation=info.rotation,
            fps=round(info.fps, 3),
            seconds=round(seconds, 3),
            frames=writer.frames,
            stopped=f"at {reader.stopped.at_s:.2f} s: {reader.stopped.reason}" if reader.stopped else None,
            audio=audio,
            audio_note=note,
            demo=self.models.demo,
            classifier=self.models.classifier,
            segmenter=self.models.segmenter,
            threshold=options.threshold,
            gore=bool(found),
            known=matches,
            gore_seconds=round(sum(min(s.padded_end_s, seconds) - s.padded_start_s for s in found), 3),
            segments=found,
            sampled=samples,
            segmented_frames=state.segmented,
            masked_frames=state.masked,
            hidden_frames=state.hidden,
            outputs=names,
            timings_ms=timings,
        )
        markers = gore_edl(filename, info.fps, seconds, found)
        await to_thread.run_sync((out_dir / names["markers"]).write_text, markers)
        await to_thread.run_sync((out_dir / names["timeline"]).write_text, result.model_dump_json(indent=1))
        return result

    # ---- pass 1: classify sampled frames ----

    async def _sample(
        self, path: Path, filename: str, options: VideoOptions, progress: Progress
    ) -> tuple[list[SampledFrame], float, float]:
        """The sampled frames with their probabilities, the seconds decoded, the seconds in the classifier."""
        samples: list[SampledFrame] = []
        classify_s = 0.0
        sampler = Sampler(options.sample_fps)
        size = self.models.classifier_size
        with await to_thread.run_sync(VideoReader, path, self.limits, filename) as reader:
            frames = reader.frames()
            last = [0.0, 0.0]  # Time of the last frame decoded, and of one frame later.

            def take() -> tuple[list[tuple[int, float, bool]], np.ndarray | None]:
                wanted, inputs = [], []
                for frame in frames:
                    last[:] = [frame.time_s, frame.time_s + 1.0 / (reader.info.fps or 30)]
                    classify, cut = sampler.wants(frame.time_s, frame.pixels)
                    if classify:
                        wanted.append((frame.index, frame.time_s, cut, pdq_of(frame.pixels)))
                        inputs.append(model_input(frame.pixels, size))
                        if len(inputs) >= self.models.batch:
                            break
                return wanted, (np.stack(inputs) if inputs else None)

            while True:
                wanted, inputs = await to_thread.run_sync(take)
                if inputs is None:
                    break
                started = time.perf_counter()
                answer = await self.models.classify(inputs)
                classify_s += time.perf_counter() - started
                probabilities = np.clip(np.asarray(answer, np.float64).reshape(-1), 0, 1)
                progress("analyse", last[0], reader.info.declared_seconds)
                samples += [
                    SampledFrame(index=i, time_s=round(t, 6), probability=round(float(p), 6), scene_cut=cut, pdq=pdq)
                    for (i, t, cut, pdq), p in zip(wanted, probabilities, strict=True)
                ]
        if not samples:
            raise _no_frames(filename, reader)
        return samples, last[1], classify_s

    def _match(self, samples: list[SampledFrame]) -> list[KnownMatch]:
        """Each sampled frame's hash against the lists: a gore match marks the frame (it is gore);
        the nearest match per list is returned. Blocks: in a worker thread."""
        nearest: dict[str, KnownMatch] = {}
        if self.known is None:
            return []
        for sample in samples:
            matches = self.known(sample.pdq) if sample.pdq is not None else []
            sample.known = next((m for m in matches if m.label == "gore"), None)
            for match in matches:
                if match.list_name not in nearest or match.distance < nearest[match.list_name].distance:
                    nearest[match.list_name] = match
        return sorted(nearest.values(), key=lambda m: (m.distance, m.label != "gore", m.list_name))

    # ---- pass 2: segment, mask, encode ----

    async def _write(
        self,
        path: Path,
        filename: str,
        out: Path,
        found: list[GoreSegment],
        seconds: float,
        options: VideoOptions,
        masks: TextIO,
        progress: Progress,
    ) -> tuple[_Pass2, VideoReader, VideoWriter]:
        state = _Pass2(HeldMasks(hold_s=1.0 / options.segment_fps), masks=masks)
        strip_times = deque(seconds * (i + 0.5) / STRIP_FRAMES for i in range(STRIP_FRAMES))
        packets: list = []
        with await to_thread.run_sync(VideoReader, path, self.limits, filename) as reader:
            audio = None if options.mute or not reader.container.streams.audio else reader.container.streams.audio[0]
            frames = reader.frames(packets if audio is not None else None)
            first: Frame | None = await to_thread.run_sync(next, frames, None)
            if first is None:
                raise _no_frames(filename, reader)
            height, width = first.pixels.shape[:2]
            writer = VideoWriter(out, reader.info.fps, width, height, audio)
            chain = _chain(first, frames)
            ended = False
            try:
                while not ended:
                    ended = await to_thread.run_sync(self._pull, chain, state, found, options)
                    await self._segment_keys(state, options)
                    await to_thread.run_sync(self._emit, state, found, options, writer, packets, strip_times, ended)
                    progress("mask", seconds if ended else state.emitted_s, seconds)
            finally:
                await to_thread.run_sync(writer.close)
        return state, reader, writer

    def _pull(self, frames: Iterator[Frame], state: _Pass2, found: list[GoreSegment], options: VideoOptions) -> bool:
        """Decode into `pending` until a batch of frames to segment or CHUNK_PIXELS; True at the end.

        Inside a segment a frame is segmented every 1/segment_fps s, and so is its last frame (where
        the segment or the video ends), so every frame there lies between two segmented ones."""
        pixels = 0
        for frame in frames:
            now_inside = inside(frame.time_s, found)
            if state.was_inside and not now_inside:
                _segment_last(state)
            state.pending.append(frame)
            pixels += frame.pixels.shape[0] * frame.pixels.shape[1]
            if now_inside and (not state.was_inside or frame.time_s + 1e-6 >= state.next_key_s):
                state.keys.append(frame)
                state.last_key = frame
                state.next_key_s = frame.time_s + 1.0 / options.segment_fps
            state.was_inside, state.last_frame = now_inside, frame
            if len(state.keys) >= self.models.batch or pixels >= CHUNK_PIXELS:
                return False
        if state.was_inside:
            _segment_last(state)
        return True

    async def _segment_keys(self, state: _Pass2, options: VideoOptions) -> None:
        keys, state.keys = state.keys, []
        if not keys:
            return
        size = self.models.segmenter_size
        batch = await to_thread.run_sync(lambda: np.stack([model_input(frame.pixels, size) for frame in keys]))
        started = time.perf_counter()
        try:
            maps = np.asarray(await self.models.segment(batch), np.float32).reshape(-1, size, size)
            state.segment_s += time.perf_counter() - started
        except PipelineError:  # Not segmented: every frame near these is hidden whole (fail closed).
            for frame in keys:
                state.held.add(frame.time_s, None)
            return

        def hold() -> None:  # Cleaning and resizing each mask to the frame: off the event loop.
            for frame, probabilities in zip(keys, maps, strict=True):
                height, width = frame.pixels.shape[:2]
                keep = full_size_mask(keep_mask(probabilities, options.seg_threshold), height, width, options.margin)
                state.held.add(frame.time_s, None if frame.corrupt else keep)
                state.segmented += 1

        await to_thread.run_sync(hold)

    def _emit(
        self,
        state: _Pass2,
        found: list[GoreSegment],
        options: VideoOptions,
        writer: VideoWriter,
        packets: list,
        strip_times: deque[float],
        ended: bool,
    ) -> None:
        """Write every pending frame whose neighbours' masks are all known."""
        latest = state.pending[-1].time_s if state.pending else 0.0
        while state.pending and (ended or state.pending[0].time_s + state.held.hold_s < latest):
            frame = state.pending.popleft()
            pixels = frame.pixels
            if inside(frame.time_s, found):
                shape = pixels.shape[:2]
                keep = np.zeros(shape, np.uint8) if frame.corrupt else state.held.keep_for(frame.time_s, shape)
                if keep.all() and inside_known(frame.time_s, found):  # Listed gore, nothing segmented: all of it.
                    keep = np.zeros(shape, np.uint8)
                if not keep.any():
                    state.hidden.append(frame.index)
                if not keep.all():
                    pixels = apply_mask(pixels, keep, options.style if keep.any() else "black")
                    if state.masks is not None:
                        state.masks.write(FrameMask.of(frame.index, frame.time_s, keep).model_dump_json() + "\n")
                    state.masked += 1
            writer.write(pixels, frame.time_s)
            state.emitted_s = frame.time_s
            writer.copy_audio(packets)
            while strip_times and frame.time_s + 1e-6 >= strip_times[0]:
                strip_times.popleft()
                small_height = max(1, round(pixels.shape[0] * STRIP_WIDTH / pixels.shape[1]))
                state.strip.append(cv2.resize(pixels, (STRIP_WIDTH, small_height), interpolation=cv2.INTER_AREA))
        state.held.forget_before(state.pending[0].time_s if state.pending else latest)
        if ended:
            writer.copy_audio(packets)

    @staticmethod
    def _side_files(out_dir: Path, names: dict[str, str], state: _Pass2) -> None:
        if state.strip:
            height = max(image.shape[0] for image in state.strip)
            tiles = [np.pad(image, ((0, height - image.shape[0]), (0, 0), (0, 0))) for image in state.strip]
            cv2.imwrite(str(out_dir / names["strip"]), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))


def _no_progress(phase: str, done_s: float, total_s: float | None) -> None:
    pass


def _segment_last(state: _Pass2) -> None:
    """The last frame of a segment is segmented too, unless it was already."""
    if state.last_frame is not None and state.last_frame is not state.last_key:
        state.keys.append(state.last_frame)
        state.last_key = state.last_frame


def _chain(first: Frame, rest: Iterator[Frame]) -> Iterator[Frame]:
    yield first
    yield from rest


def _no_frames(filename: str, reader: VideoReader) -> PipelineError:
    why = f": {reader.stopped.reason}" if reader.stopped else ""
    return InvalidImage(f"{filename}: no frame of the video could be decoded{why}")
