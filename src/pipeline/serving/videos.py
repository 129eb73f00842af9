"""Videos censored in the background by each Censor worker (stored: pipeline.stores.videos).

A video takes minutes, not a request's seconds: `POST /videos` stores it and answers 202 with its
id; a `VideoRunner` in every Censor worker takes the oldest waiting video (locked to that worker
while it works), censors it through the model services with the frames of one video batched
(pipeline.video), and stores the outputs and the timeline. A passing failure (a model service
down) leaves the video waiting for the next try; a bad video is recorded as failed with the
status and words the client would have had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np
from anyio import to_thread

from pipeline.config import Settings
from pipeline.errors import PipelineError
from pipeline.serving.censorer import Censorer
from pipeline.serving.resilience import with_retries
from pipeline.stores.records import utc_now
from pipeline.stores.videos import VideoRecord, VideoStore
from pipeline.video.censor import VideoCensorer, VideoModels, VideoOptions
from pipeline.video.decode import VideoLimits

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 2.0


def video_censorer(censorer: Censorer, settings: Settings) -> tuple[VideoCensorer, VideoOptions]:
    """The image pipeline's model services and models, for videos: each call retried as for images."""
    deadline = settings.model_retry_deadline_s

    async def classify(frames: np.ndarray) -> np.ndarray:
        return await with_retries(lambda: censorer.classify(frames), stage="classify", deadline_s=deadline)

    async def segment(frames: np.ndarray) -> np.ndarray:
        return await with_retries(lambda: censorer.segment(frames), stage="segment", deadline_s=deadline)

    classifier, segmenter = censorer.classifier, censorer.segmenter
    models = VideoModels.of(classify, segment, classifier, segmenter, settings.max_batch_size)
    options = VideoOptions.from_settings(settings, censorer.threshold, segmenter.threshold)
    matcher = censorer.views.matcher  # The hash lists: a listed frame is gore, as a listed image is.
    known = matcher.match if matcher is not None else None
    return VideoCensorer(models, VideoLimits.from_settings(settings), known), options


class VideoRunner:
    """Works through waiting videos, one at a time per worker, until the process stops."""

    def __init__(
        self, store: VideoStore, censorer: Callable[[], Awaitable[Censorer]], settings: Settings, idle_s: float = 1.0
    ):
        self.store, self.censorer, self.settings, self.idle_s = store, censorer, settings, idle_s

    async def run(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            try:
                worked = await self.step(stopping)
            except Exception:  # Kept alive whatever happens; the video waits for the next try.
                log.exception("video runner step failed")
                worked = False
            if not worked:
                await asyncio.sleep(self.idle_s)

    async def step(self, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Take one waiting video and censor it; False when none was waiting. Once `stopping`
        (SIGTERM), the work is dropped and the video given back, queued, for another worker to
        take at once (not when its lease runs out)."""
        claim = self.store.claim()
        record: VideoRecord | None = await to_thread.run_sync(claim.__enter__)
        try:
            if record is None:
                return False
            await to_thread.run_sync(self.store.save, record.model_copy(update={"state": "working"}))
            censoring = asyncio.get_running_loop().create_task(self._censor(record))
            while not censoring.done() and not stopping():
                await asyncio.wait({censoring}, timeout=0.25)
            if not censoring.done():
                censoring.cancel()
                await asyncio.gather(censoring, return_exceptions=True)
                record = record.model_copy(update={"state": "queued", "progress": None})
            else:
                record = censoring.result()
            await to_thread.run_sync(self.store.save, record)
            if record.state == "queued" and not stopping():  # Passing trouble: wait before trying again.
                await asyncio.sleep(5)
            return True
        finally:
            await to_thread.run_sync(claim.__exit__, None, None, None)

    def _reporter(self, record: VideoRecord, saving: list[asyncio.Task]):
        """Progress into the stored record, at most every PROGRESS_EVERY_S (a status URL shows it),
        written in a worker thread; the caller awaits `saving` before the final record."""
        last = [0.0]

        def report(phase: str, done_s: float, total_s: float | None) -> None:
            if not total_s or time.monotonic() - last[0] < PROGRESS_EVERY_S or any(not t.done() for t in saving):
                return
            last[0] = time.monotonic()
            share = min(done_s / total_s, 1.0) * 0.5 + (0.5 if phase == "mask" else 0.0)
            update = record.model_copy(update={"state": "working", "progress": round(share, 3)})
            saving.append(asyncio.get_running_loop().create_task(to_thread.run_sync(self.store.save, update)))

        return report

    async def _censor(self, record: VideoRecord) -> VideoRecord:
        saving: list[asyncio.Task] = []
        try:
            video, options = video_censorer(await self.censorer(), self.settings)
            original = await to_thread.run_sync(self.store.original, record.id)
            made = await to_thread.run_sync(self.store.work_folder, record.id)  # Emptied: a killed try's leftovers go.
            result = await video.censor(original, made, options, record.filename, self._reporter(record, saving))
            await to_thread.run_sync(self.store.place_outputs, record.id, made, result)
        except PipelineError as error:
            if error.retry_after_s:
                log.warning("video %s waits: %s", record.id, error)
                return record.model_copy(update={"state": "queued"})
            return _failed(record, int(error.status), str(error))
        except Exception:  # Never tried again and again: a video that breaks the code fails, logged.
            log.exception("video %s failed", record.id)
            return _failed(record, 500, "internal error while censoring this video: the service logged it")
        finally:  # No progress write may land after the final record.
            await asyncio.gather(*saving, return_exceptions=True)
        return record.model_copy(update={"state": "done", "result": result, "progress": 1.0, "finished_at": utc_now()})


def _failed(record: VideoRecord, status: int, error: str) -> VideoRecord:
    return record.model_copy(update={"state": "failed", "status": status, "error": error, "finished_at": utc_now()})
