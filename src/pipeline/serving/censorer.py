"""The censoring pipeline (SPEC section 1), shared by the HTTP service and the offline command.

Model calls are injected as async callables, so the service can route them to its BentoML
model services (adaptive batching) and the command line to models loaded in-process.

For each upload: its id is the SHA-256 of its bytes, known before decoding; what the serving
models already said about it is reused. Otherwise every frame is classified; when the highest
probability reaches the request's or the deployment's threshold, every frame is segmented, so
the deployment's view of a gore image always has its segmentation (fail closed). The analysis
is merged into the image's record, and the answer is the record seen through the request's
options: they change that answer only.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from anyio import to_thread

from pipeline.config import CensorStyle, Settings
from pipeline.errors import Conflict, PipelineError, UploadTooLarge
from pipeline.files import read_inside, read_regular
from pipeline.imaging.decode import DecodedImage, declared_pixels
from pipeline.imaging.hashes import content_id, perceptual_hash
from pipeline.imaging.model_input import model_input
from pipeline.known.matcher import Matcher, known_gore
from pipeline.known.pdq import image_pdq
from pipeline.metrics import DROPOUT_PASSES
from pipeline.model_store.metadata import ModelInfo
from pipeline.serving.resilience import Admission, with_retries
from pipeline.serving.schemas import CensorOptions, CensorResult
from pipeline.serving.views import Defaults, Limits, Views
from pipeline.stores import Shared, image_store
from pipeline.stores.hash_lists import HashLists, KnownMatch
from pipeline.stores.images import ImageStore
from pipeline.stores.records import Analysis, ImageRecord, Pdq, Segmentation, analysis_key, utc_now
from pipeline.uncertainty.served import ClassifierSample, UncertaintyResult, cascade_refusal, summarise

# (N, S, S, 3) uint8 -> (N,) gore probabilities / (N, S, S) pixel probabilities.
ModelCall = Callable[[np.ndarray], Awaitable[np.ndarray]]
# (N, S, S, 3) uint8, passes -> the members' inference-dropout draws (a `ClassifierSample` or its JSON).
SampleCall = Callable[[np.ndarray, int], Awaitable[Any]]
NO_SAMPLING = "uncertainty needs the Classifier service's inference-dropout passes, which this pipeline lacks"
PDQ_SIDE = 512  # A JPEG decoded at reduced scale keeps at least this side for its PDQ hash (pipeline.known.pdq).


@dataclass(frozen=True)
class Upload:
    source: Path | bytes
    """A spooled upload on disk, bytes in memory, or a file relative to `root`."""
    filename: str
    root: Path | None = None
    """Set for files from a server-side folder (jobs, annotation pools): `source` is relative to it
    and is read only as a regular file inside it, no link followed (pipeline.files)."""

    def read(self, max_bytes: int) -> bytes:
        """The bytes, unless there are too many: a huge file is refused, never read whole. Blocks on
        disk: call it in a worker thread."""
        if isinstance(self.source, bytes):
            if len(self.source) > max_bytes:
                raise UploadTooLarge(
                    f"{self.filename}: {len(self.source):,} bytes is over the upload limit of {max_bytes:,} bytes"
                )
            return self.source
        if self.root is not None:
            return read_inside(self.root, self.source.as_posix(), max_bytes, self.filename, "upload limit")
        return read_regular(self.source, max_bytes, self.filename, "upload limit")


@dataclass
class _Job:
    """One distinct image of a request, on its way through the models."""

    id: str
    data: bytes
    filename: str
    record: ImageRecord | None
    analysis: Analysis | None
    decoded: DecodedImage | None = None
    timings: dict[str, float] = field(default_factory=dict)
    maps: np.ndarray | None = None
    inputs: dict[int, np.ndarray] = field(default_factory=dict)
    """Model input size -> the frames resized to it, made once for both models when sizes match."""
    phash: str = ""
    pdq: Pdq | None = None
    known: list[KnownMatch] = field(default_factory=list)
    """What the enabled hash lists know of this image (pipeline.known)."""
    uncertainty: UncertaintyResult | None = None


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


@dataclass(frozen=True)
class Capacity:
    """How much work the pipeline holds at once, and how long it waits for its model services."""

    chunk_images: int
    """Images read, decoded and sent to the models together; a batch is worked through in chunks."""
    retry_deadline_s: float
    admission: Admission

    @classmethod
    def from_settings(cls, settings: Settings) -> Capacity:
        admission = Admission(settings.max_images_in_flight, settings.max_pixels_in_flight, settings.admission_wait_s)
        return cls(settings.max_batch_size, settings.model_retry_deadline_s, admission)


@dataclass
class Censorer:
    store: ImageStore
    classify: ModelCall
    segment: ModelCall
    classifier: ModelInfo
    segmenter: ModelInfo
    views: Views
    capacity: Capacity
    render: bool = False
    """Make every censored copy and mask at once (the offline command); the service makes them on request."""
    sample: SampleCall | None = None
    """The classifier's inference-dropout passes, for the `uncertainty` and `cascade` options."""
    passes: int = DROPOUT_PASSES
    """How many passes (GORE_UNCERTAINTY_PASSES; thesis 5.2.5: 30)."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        classify: ModelCall,
        segment: ModelCall,
        classifier: ModelInfo,
        segmenter: ModelInfo,
        data_dir: Path | None = None,
        render: bool = False,
        sample: SampleCall | None = None,
    ) -> Censorer:
        # Indexed as the service indexes, in the stores the service uses, matched against its hash lists.
        shared = Shared.of(settings)
        store = image_store(data_dir or settings.data_dir, settings.threshold, shared)
        lists = HashLists.open(data_dir or settings.data_dir, shared.database_url if shared else None)
        matcher = Matcher(lists, settings.known_refresh_s, settings.known_distance)
        views = Views(store, Defaults.from_settings(settings), Limits.from_settings(settings), matcher)
        capacity = Capacity.from_settings(settings)
        passes = settings.uncertainty_passes
        return cls(store, classify, segment, classifier, segmenter, views, capacity, render, sample, passes)

    @property
    def key(self) -> str:
        return analysis_key(self.classifier.tag, self.segmenter.tag)

    @property
    def threshold(self) -> float:
        """The deployment's gore threshold for the models served now."""
        defaults = self.views.defaults
        return self.classifier.threshold if defaults.threshold is None else defaults.threshold

    def options(
        self,
        threshold: float | None = None,
        style: CensorStyle | None = None,
        margin: float | None = None,
        uncertainty: bool | None = None,
        cascade: bool | None = None,
    ) -> CensorOptions:
        """A request's options: what it asked for, the deployment's for the rest."""
        defaults = self.views.defaults
        return CensorOptions(
            threshold=self.threshold if threshold is None else threshold,
            style=style or defaults.style,
            margin=defaults.margin if margin is None else margin,
            uncertainty=bool(uncertainty or cascade),
            cascade=bool(cascade),
        )

    async def censor(self, uploads: Sequence[Upload], options: CensorOptions) -> list[CensorResult | PipelineError]:
        """Censor each upload, a chunk at a time; an upload that fails gets its own error, the others go on.

        A chunk holds up to `chunk_images` distinct images whose declared pixels (x frames) fit the
        process' pixel bound, one image at least; only a chunk's bytes and pixels are held at once.
        Two chunks overlap when the bound allows: one decodes and stores while the other is in the
        models.
        """
        outcomes: list[CensorResult | PipelineError | None] = [None] * len(uploads)
        running: list[asyncio.Task] = []

        async def start(chunk: dict[str, _Job], slots: dict[str, list[int]], pixels: int) -> None:
            while running and (len(running) >= 2 or not self.capacity.admission.fits_now(len(chunk), pixels)):
                await running.pop(0)  # Wait for our own earlier chunk rather than for admission.
            running.append(asyncio.create_task(self._chunk(chunk, slots, pixels, uploads, options, outcomes)))

        chunk: dict[str, _Job] = {}
        slots: dict[str, list[int]] = {}
        pixels = 0
        for index, upload in enumerate(uploads):
            try:  # Reading, hashing and counting a file's pixels block: in a worker thread, not the event loop.
                data, image_id, size = await to_thread.run_sync(self._read, upload)
            except PipelineError as error:
                outcomes[index] = error
                continue
            if image_id in chunk:  # The same bytes twice in one chunk: work once.
                slots[image_id].append(index)
                continue
            full = len(chunk) >= self.capacity.chunk_images or pixels + size > self.capacity.admission.max_pixels
            if chunk and full:
                await start(chunk, slots, pixels)
                chunk, slots, pixels = {}, {}, 0
            record = await to_thread.run_sync(self.store.record, image_id)
            analysis = record.analyses.get(self.key) if record else None
            chunk[image_id] = _Job(image_id, data, upload.filename, record, analysis)
            slots[image_id], pixels = [index], pixels + size
        if chunk:
            await start(chunk, slots, pixels)
        await asyncio.gather(*running)
        return [outcome for outcome in outcomes if outcome is not None]

    def _read(self, upload: Upload) -> tuple[bytes, str, int]:
        """The bytes, their id (known before decoding: the store may know the image) and the pixels
        decoding them may hold, from their headers (an upper bound: decoding refuses any more)."""
        limits = self.views.limits
        data = upload.read(limits.max_bytes)
        return data, content_id(data), declared_pixels(data, limits.max_frames)

    async def _chunk(
        self,
        jobs: dict[str, _Job],
        slots: dict[str, list[int]],
        pixels: int,
        uploads: Sequence[Upload],
        options: CensorOptions,
        outcomes: list[CensorResult | PipelineError | None],
    ) -> None:
        try:
            await self.capacity.admission.acquire(len(jobs), pixels)
        except PipelineError as busy:
            for index in (i for ids in slots.values() for i in ids):
                outcomes[index] = busy
            return
        try:
            failed = await self._analyse(list(jobs.values()), options)
            for job in jobs.values():
                for index in slots[job.id]:
                    if job.id in failed:
                        outcomes[index] = failed[job.id]
                        continue
                    try:
                        outcomes[index] = await to_thread.run_sync(self._answer, job, options, uploads[index].filename)
                    except PipelineError as error:
                        outcomes[index] = error
        finally:
            await self.capacity.admission.release(len(jobs), pixels)

    # ---- the models ----

    def _needs_segmentation(self, probability: float, options: CensorOptions) -> bool:
        return probability >= min(options.threshold, self.threshold)

    async def _analyse(self, jobs: list[_Job], options: CensorOptions) -> dict[str, PipelineError]:
        failed: dict[str, PipelineError] = {}
        fresh = [job for job in jobs if job.analysis is None]
        decoded = await asyncio.gather(*(self._decode(job) for job in fresh))  # In threads, side by side.
        failed.update({job.id: error for job, error in zip(fresh, decoded, strict=True) if error is not None})
        fresh = [job for job in fresh if job.id not in failed]
        if fresh:
            try:
                await self._classify(fresh)
            except PipelineError as error:  # The model service stayed down: every image of the call fails alike.
                failed.update(dict.fromkeys((job.id for job in fresh), error))
                fresh = []
        if options.uncertainty:
            await self._uncertainty([job for job in jobs if job.id not in failed], options, failed)
        hashed = await self._known([job for job in jobs if job.id not in failed], failed)
        unsegmented = [
            job
            for job in jobs
            if job.id not in failed
            and job.analysis is not None
            and job.analysis.segmentation is None
            and (
                self._needs_segmentation(job.analysis.gore_probability, options)
                or (job.uncertainty is not None and job.uncertainty.censors)
                or known_gore(job.known) is not None
            )
        ]
        for job in unsegmented:
            if job.decoded is None:  # Known image, first time it needs a segmentation.
                error = await self._decode(job, from_store=True)
                if error is not None:
                    failed[job.id] = error
        unsegmented = [job for job in unsegmented if job.id not in failed]
        if unsegmented:
            try:
                await self._segment(unsegmented)
            except PipelineError as error:
                failed.update(dict.fromkeys((job.id for job in unsegmented), error))
                unsegmented = []
        changed = {job.id for job in fresh} | {job.id for job in unsegmented} | hashed
        stored = [job for job in jobs if job.id in changed and job.id not in failed]
        outcomes = await asyncio.gather(*(to_thread.run_sync(self._stored, job) for job in stored))
        failed.update({job.id: error for job, error in zip(stored, outcomes, strict=True) if error is not None})
        return failed

    async def _known(self, jobs: list[_Job], failed: dict[str, PipelineError]) -> set[str]:
        """Each job's matches on the enabled hash lists, from its PDQ hash: made now for a new image,
        stored for a known one (an image stored before PDQ is decoded again once for it). Returns
        the ids whose record gains its PDQ hash here."""
        hashed: set[str] = set()
        for job in jobs:
            if job.pdq is None and job.record is not None:
                job.pdq = job.record.pdq
            if job.pdq is None and job.decoded is None:
                error = await self._decode(job, from_store=True)
                if error is not None:
                    failed[job.id] = error
                    continue
            if job.record is not None and job.record.pdq is None:
                hashed.add(job.id)
        matcher = self.views.matcher
        for job in jobs:
            if matcher is not None and job.id not in failed:
                job.known = await to_thread.run_sync(matcher.match, job.pdq)
        return hashed

    async def _decode(self, job: _Job, from_store: bool = False) -> PipelineError | None:
        """Decode, make the models' inputs and the perceptual hash, in a worker thread."""
        started = time.perf_counter()
        try:
            data = (await to_thread.run_sync(self.store.original, job.id))[0] if from_store else job.data
            await to_thread.run_sync(self._prepare, job, data)
        except PipelineError as error:
            return error
        job.timings["decode"] = _ms(started)
        return None

    def _prepare(self, job: _Job, data: bytes) -> None:
        sizes = {self.classifier.input_size, self.segmenter.input_size}
        # Only the models' copies are needed unless copies are rendered now: a JPEG decodes at reduced scale.
        at_least = None if self.render else max(*sizes, PDQ_SIDE)
        job.decoded = decoded = self.views.limits.decode(data, job.filename, at_least)
        for size in sizes:  # One resize when sizes match.
            job.inputs[size] = np.stack([model_input(frame, size) for frame in decoded.frames])
        job.phash = perceptual_hash(job.inputs[self.classifier.input_size][0])  # From the small copy.
        job.pdq = image_pdq(decoded.frames)

    def _stored(self, job: _Job) -> PipelineError | None:
        try:
            self._store(job)
        except PipelineError as error:  # A full disk: nothing partial was stored.
            return error
        return None

    async def _classify(self, jobs: list[_Job]) -> None:
        """Every frame of every job in one model call; an image's probability is its highest frame's."""
        started = time.perf_counter()
        batch = np.concatenate([job.inputs[self.classifier.input_size] for job in jobs])
        deadline = self.capacity.retry_deadline_s
        answer = await with_retries(lambda: self.classify(batch), stage="classify", deadline_s=deadline)
        probabilities = np.clip(np.asarray(answer, dtype=np.float64).reshape(-1), 0.0, 1.0)
        classify_ms = _ms(started)
        position = 0
        for job in jobs:
            frames = [round(float(p), 6) for p in probabilities[position : position + len(job.decoded.frames)]]
            position += len(frames)
            job.timings["classify"] = classify_ms
            job.analysis = Analysis(
                classifier=self.classifier.tag,
                segmenter=self.segmenter.tag,
                classifier_threshold=self.classifier.threshold,
                segmenter_threshold=self.segmenter.threshold,
                profile=self.classifier.profile,
                demo=self.classifier.demo or self.segmenter.demo,
                dry_run=not (self.classifier.trained and self.segmenter.trained),
                gore_probability=max(frames),
                frame_probabilities=frames,
                classified_at=utc_now(),
                timings_ms=dict(job.timings),
            )

    async def _uncertainty(self, jobs: list[_Job], options: CensorOptions, failed: dict[str, PipelineError]) -> None:
        """The classifier's inference-dropout passes over every frame of every job, in one call."""
        for job in jobs:
            if job.decoded is None:  # A known image: its frames are needed again.
                error = await self._decode(job, from_store=True)
                if error is not None:
                    failed[job.id] = error
        jobs = [job for job in jobs if job.id not in failed]
        if not jobs:
            return
        try:
            if self.sample is None:
                raise Conflict(NO_SAMPLING)
            started = time.perf_counter()
            batch = np.concatenate([job.inputs[self.classifier.input_size] for job in jobs])
            deadline = self.capacity.retry_deadline_s
            answer = await with_retries(
                lambda: self.sample(batch, self.passes), stage="uncertainty", deadline_s=deadline
            )
            sample = ClassifierSample.model_validate(answer)  # In process: the model; over HTTP: its JSON.
            refusal = sample.refusal or (cascade_refusal(sample) if options.cascade else None)
            if refusal:
                raise Conflict(refusal)
            frames = [len(job.decoded.frames) for job in jobs]
            results = summarise(sample, frames, options.threshold, options.cascade)
        except PipelineError as error:  # Asked for and not had: the answer is refused, not given without it.
            failed.update(dict.fromkeys((job.id for job in jobs), error))
            return
        took = _ms(started)
        for job, result in zip(jobs, results, strict=True):
            job.uncertainty = result
            job.timings["uncertainty"] = took

    async def _segment(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        size = self.segmenter.input_size
        batch = np.concatenate([job.inputs[size] for job in jobs])
        deadline = self.capacity.retry_deadline_s
        answer = await with_retries(lambda: self.segment(batch), stage="segment", deadline_s=deadline)
        maps = np.asarray(answer, dtype=np.float32).reshape(-1, size, size)
        segment_ms = _ms(started)
        position = 0
        for job in jobs:
            count = len(job.decoded.frames)
            job.maps = np.round(np.clip(maps[position : position + count], 0.0, 1.0) * 255).astype(np.uint8)
            position += count
            job.timings["segment"] = segment_ms
            segmentation = Segmentation(maps=maps_name(self.key), size=size, segmented_at=utc_now())
            job.analysis = job.analysis.model_copy(
                update={"segmentation": segmentation, "timings_ms": {**job.analysis.timings_ms, "segment": segment_ms}}
            )

    def _store(self, job: _Job) -> None:
        """Files first, then the record that names them, merged with what others stored meanwhile."""
        decoded = job.decoded
        assert decoded is not None and job.analysis is not None
        self.store.put_original(job.id, decoded.suffix, job.data)
        if job.maps is not None:
            self.store.put_maps(job.id, job.analysis.segmentation.maps, job.maps)
        record = job.record or ImageRecord(
            id=job.id,
            filename=job.filename,
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            frames=len(decoded.frames),
            durations_ms=decoded.durations_ms,
            loop=decoded.loop,
            phash=job.phash,
            pdq=job.pdq,
            first_seen=utc_now(),
        )
        changes = {"analyses": {**record.analyses, self.key: job.analysis}, "pdq": record.pdq or job.pdq}
        update = record.model_copy(update=changes)
        job.record = self.store.merge(update)
        job.analysis = job.record.analyses[self.key]

    # ---- the answer ----

    def _answer(self, job: _Job, options: CensorOptions, filename: str) -> CensorResult:
        """The answer; the censored copy and mask it links are made when first asked for (or here,
        with `render`, for the offline command), from the stored maps."""
        assert job.record is not None and job.analysis is not None
        started = time.perf_counter()
        timings = dict(job.timings or job.analysis.timings_ms)
        result = self.views.result(
            job.record,
            job.analysis,
            options,
            filename=filename,
            timings_ms=timings,
            maps=job.maps,
            uncertainty=job.uncertainty,
            known=job.known,
        )
        if result.gore and self.render:
            for kind in ("censored", "mask"):
                self.views.rendering(job.record, job.analysis, kind, options.style, options.margin, job.decoded)
        if result.gore:
            result.timings_ms["censor"] = _ms(started)
        return result


def maps_name(key: str) -> str:
    """The file of an analysis' segmentation maps, named by its models."""
    return f"maps-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
