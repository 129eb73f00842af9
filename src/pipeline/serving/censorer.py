"""The censoring pipeline (SPEC section 1), shared by the HTTP service and the offline command.

Model calls are injected as async callables, so the service can route them to its BentoML
model services (adaptive batching) and the command line to models loaded in-process.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from anyio import to_thread

from pipeline.config import CensorStyle, Settings
from pipeline.errors import PipelineError, UploadTooLarge
from pipeline.imaging.decode import DecodedImage, decode_upload
from pipeline.imaging.encode import encode_png
from pipeline.imaging.hashes import perceptual_hash
from pipeline.imaging.mask import censor_image
from pipeline.imaging.model_input import model_input
from pipeline.model_store.metadata import ModelInfo
from pipeline.serving.image_store import FileSystemStore, ImageStore
from pipeline.serving.schemas import DEMO_NOTICE, DRY_RUN_NOTICE, CensorOptions, CensorResult, ModelTags

# (N, S, S, 3) uint8 -> (N,) gore probabilities / (N, S, S) pixel probabilities.
ModelCall = Callable[[np.ndarray], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class Upload:
    source: Path | bytes
    """A spooled upload on disk, or bytes in memory."""
    filename: str

    def read(self, max_bytes: int) -> bytes:
        """The bytes, unless there are too many: a huge upload is never read into memory."""
        size = self.source.stat().st_size if isinstance(self.source, Path) else len(self.source)
        if size > max_bytes:
            raise UploadTooLarge(f"{self.filename}: {size:,} bytes is over the upload limit of {max_bytes:,} bytes")
        return self.source.read_bytes() if isinstance(self.source, Path) else self.source


@dataclass
class _Job:
    data: bytes
    image: DecodedImage
    decode_ms: float
    phash: str
    probability: float = 0.0


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


@dataclass
class Censorer:
    store: ImageStore
    classify: ModelCall
    segment: ModelCall
    classifier: ModelInfo
    segmenter: ModelInfo
    threshold: float
    """Gore probability at which an image is censored, unless a request asks otherwise."""
    seg_threshold: float
    style: CensorStyle
    max_upload_bytes: int
    max_pixels: int

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
    ) -> Censorer:
        """The deployment's settings win; where they are unset, what the models were tuned for."""
        return cls(
            store=FileSystemStore(data_dir or settings.data_dir),
            classify=classify,
            segment=segment,
            classifier=classifier,
            segmenter=segmenter,
            threshold=classifier.threshold if settings.threshold is None else settings.threshold,
            seg_threshold=segmenter.threshold if settings.seg_threshold is None else settings.seg_threshold,
            style=settings.style,
            max_upload_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
        )

    @property
    def tags(self) -> ModelTags:
        return ModelTags(classifier=self.classifier.tag, segmenter=self.segmenter.tag)

    def options(self, threshold: float | None = None, style: CensorStyle | None = None) -> CensorOptions:
        """A request's options: what it asked for, the deployment's defaults for the rest."""
        return CensorOptions(threshold=self.threshold if threshold is None else threshold, style=style or self.style)

    async def censor(self, uploads: Sequence[Upload], options: CensorOptions) -> list[CensorResult | PipelineError]:
        """Censor each upload; an upload that fails gets its own error, the others go on."""
        outcomes: list[CensorResult | PipelineError | None] = [None] * len(uploads)
        jobs: dict[str, _Job] = {}
        slots: dict[str, list[int]] = {}
        for index, upload in enumerate(uploads):
            started = time.perf_counter()
            try:
                data = upload.read(self.max_upload_bytes)
                image = await to_thread.run_sync(self._decode, data, upload.filename)
            except PipelineError as error:
                outcomes[index] = error
                continue
            cached = self.store.get_metadata(image.id)
            if cached is not None and self._still_valid(cached, options):
                outcomes[index] = cached.model_copy(update={"filename": upload.filename})
                continue
            slots.setdefault(image.id, []).append(index)
            if image.id not in jobs:  # The same bytes twice in one batch: work once.
                jobs[image.id] = _Job(data, image, _ms(started), perceptual_hash(image.pixels))

        for result in await self._run(list(jobs.values()), options):
            for index in slots[result.id]:
                outcomes[index] = result.model_copy(update={"filename": uploads[index].filename})
        return [outcome for outcome in outcomes if outcome is not None]

    def _decode(self, data: bytes, filename: str) -> DecodedImage:
        return decode_upload(data, filename, max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels)

    def _still_valid(self, cached: CensorResult, options: CensorOptions) -> bool:
        return (
            cached.models == self.tags
            and cached.threshold == options.threshold
            and cached.style == options.style
            and cached.seg_threshold == self.seg_threshold
        )

    async def _run(self, jobs: list[_Job], options: CensorOptions) -> list[CensorResult]:
        if not jobs:
            return []
        started = time.perf_counter()
        size = self.classifier.input_size
        batch = np.stack([model_input(job.image.pixels, size) for job in jobs])
        probabilities = np.asarray(await self.classify(batch), dtype=np.float32).reshape(-1)
        classify_ms = _ms(started)
        for job, probability in zip(jobs, probabilities, strict=True):
            job.probability = float(np.clip(probability, 0.0, 1.0))

        gore = [job for job in jobs if job.probability >= options.threshold]
        maps: dict[str, np.ndarray] = {}
        segment_ms = None
        if gore:
            started = time.perf_counter()
            size = self.segmenter.input_size
            maps_batch = await self.segment(np.stack([model_input(job.image.pixels, size) for job in gore]))
            maps = {
                job.image.id: np.asarray(m, dtype=np.float32).reshape(size, size)
                for job, m in zip(gore, maps_batch, strict=True)
            }
            segment_ms = _ms(started)
        return [
            await to_thread.run_sync(self._finish, job, maps.get(job.image.id), options, classify_ms, segment_ms)
            for job in jobs
        ]

    def _finish(
        self,
        job: _Job,
        probability_map: np.ndarray | None,
        options: CensorOptions,
        classify_ms: float,
        segment_ms: float | None,
    ) -> CensorResult:
        image = job.image
        timings = {"decode": job.decode_ms, "classify": classify_ms}
        self.store.put_original(image.id, image.suffix, job.data)
        censored_fraction = None
        if probability_map is not None:
            started = time.perf_counter()
            censored = censor_image(image.pixels, probability_map, threshold=self.seg_threshold, style=options.style)
            censored_png, mask_png = encode_png(censored.image), encode_png(censored.gore_mask_png_pixels())
            censored_fraction = round(censored.censored_fraction, 6)
            timings["segment"] = segment_ms or 0.0
            timings["censor"] = _ms(started)
        result = CensorResult(
            id=image.id,
            filename=image.filename,
            width=image.width,
            height=image.height,
            gore_probability=round(job.probability, 6),
            gore=probability_map is not None,
            threshold=options.threshold,
            seg_threshold=self.seg_threshold,
            style=options.style,
            censored=f"/images/{image.id}/censored" if probability_map is not None else None,
            mask=f"/images/{image.id}/mask" if probability_map is not None else None,
            censored_fraction=censored_fraction,
            phash=job.phash,
            models=self.tags,
            profile=self.classifier.profile,
            demo=self.classifier.demo or self.segmenter.demo,
            dry_run=not (self.classifier.trained and self.segmenter.trained),
            notice=self._notice(),
            timings_ms=timings,
            created_at=datetime.now(UTC),
        )
        if probability_map is not None:  # Children first, metadata last: the JSON never links a missing file.
            self.store.put_artifact(image.id, "censored", censored_png)
            self.store.put_artifact(image.id, "mask", mask_png)
            self.store.put_metadata(result)
        else:  # Metadata first: an older censored child is unlinked before it is deleted.
            self.store.put_metadata(result)
            self.store.delete_artifacts(image.id)
        return result

    def _notice(self) -> str | None:
        notices = []
        if not (self.classifier.trained and self.segmenter.trained):
            notices.append(DRY_RUN_NOTICE)
        if self.classifier.demo or self.segmenter.demo:
            notices.append(DEMO_NOTICE)
        return " ".join(notices) or None
