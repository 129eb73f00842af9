"""Collection jobs worked: a server-side folder (or a list of files) censored in the background.

The jobs and their items are stored (pipeline.stores.jobs) before a job is answered, so it
survives a restart. Each Censor worker runs a `JobRunner` that claims a chunk of pending items at
a time (atomically, so several workers share a job, on one host or, in shared mode, on several),
renews the claim's lease while it works (a killed worker's items are claimed again once it runs
out), censors them through the same pipeline as `POST /censor` (an image the serving models
already analysed costs only its hash), and records each file's image id, or its error. A passing
error (503, 507) puts the item back for later; a bad file is recorded as failed and the job goes
on. Only files under `GORE_JOBS_ROOT` may be named, and only regular files inside it are read (no
link followed, no pipe or device opened: a link or a pipe in the folder is an item that fails and
says why; see pipeline.files).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from pipeline.errors import PipelineError, UnsupportedImage
from pipeline.files import open_inside
from pipeline.files.kinds import video_container
from pipeline.stores.jobs import Claim, JobItem, JobStore, Outcome
from pipeline.stores.records import utc_now
from pipeline.stores.videos import VideoStore

log = logging.getLogger(__name__)
T = TypeVar("T")


class JobRunner:
    """Works through the job items, a chunk at a time, until the process stops. A video among them
    (known by its first bytes) is stored in `videos` and censored there in the background by the
    video runner; without a video store (the offline command) it fails and says what to use."""

    def __init__(
        self,
        store: JobStore,
        censorer: Callable[[], Awaitable],
        chunk: int,
        idle_s: float = 1.0,
        videos: VideoStore | None = None,
        max_video_bytes: int = 0,
        lease_s: float = 60.0,
    ):
        self.store, self.censorer, self.chunk, self.idle_s = store, censorer, chunk, idle_s
        self.videos, self.max_video_bytes, self.lease_s = videos, max_video_bytes, lease_s
        # The ids of the claims this runner took, or is taking, that may still hold working items; of
        # those still being taken (the claim's UPDATE in its thread); and of those among them that it
        # gave up on (such a claim, once taken, gives its items back itself).
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._taking: set[str] = set()
        self._given_up: set[str] = set()

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Chunk after chunk until `stopping` (SIGTERM). However it ends (stopping, cancelled as the
        process shuts down, an error), every claim it took and did not record is given back."""
        try:
            while not stopping():
                try:
                    worked = await self.step(stopping)
                except Exception:  # Kept alive whatever happens; the claim's lease runs out and others take its items.
                    log.exception("job runner step failed")
                    worked = False
                if not worked:
                    await asyncio.sleep(self.idle_s)
        finally:
            self._give_up()

    async def step(self, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Claim one chunk and censor it; False when there was nothing to do. Once `stopping`, the
        chunk's items are given back at once: whatever this worker records after that is dropped. A
        claim is never cut short: cancelled while it is taken, the step waits for its UPDATE to end,
        then gives back what it took (the claim's id is chosen here, so it is known either way)."""
        worker = f"{socket.gethostname()}:{os.getpid()}"  # Which replica's which worker claimed the items.
        claim_id = uuid.uuid4().hex
        with self._lock:
            self._held.add(claim_id)
            self._taking.add(claim_id)
        try:
            claim = await _to_the_end(self._claim, claim_id, worker)
        except Exception:  # The claim failed: its transaction was rolled back, nothing was taken.
            self._settled(claim_id)
            raise
        except BaseException:  # Cancelled while claiming: what the claim took goes back now.
            self._give_up(claim_id)
            raise
        if claim is None:
            self._settled(claim_id)
            return False
        if stopping():  # SIGTERM came while the claim was taken: its items go back unworked.
            await _to_the_end(self._give_back, claim_id)
            return True
        keeping = asyncio.get_running_loop().create_task(self._keep(claim, stopping))
        try:
            rows, errors = await self._work(claim)
        except BaseException:  # Cancelled mid-chunk: the items go back now, to any worker, rather
            self._give_up(claim_id)  # than when the lease runs out.
            raise
        finally:
            keeping.cancel()
        try:  # Recorded to the end even if cancelled meanwhile, so what is given back after is known.
            await _to_the_end(self.store.record, claim.job_id, rows, claim_id)
        except BaseException:
            self._give_up(claim_id)
            raise
        self._settled(claim_id)
        retry = max((error.retry_after_s or 0 for error in errors), default=0)
        if retry:  # Passing trouble (a model service down, a full disk): wait before the next chunk.
            await asyncio.sleep(min(retry, 30))
        return True

    def _claim(self, claim_id: str, worker: str) -> Claim | None:
        """In a thread: the claim taken. If the runner gave it up meanwhile (its task cancelled twice,
        or its loop gone), nobody will work it: its items go back at once, from this thread."""
        try:
            claim = self.store.claim(self.chunk, self.lease_s, worker, claim_id)
        finally:
            with self._lock:  # The runner marks a claim given up, then gives it back: one of the
                given_up = claim_id in self._given_up  # two releases comes after this UPDATE.
                self._taking.discard(claim_id)
                self._given_up.discard(claim_id)
        if given_up and claim is not None:
            self._give_back(claim_id)
        return claim

    def _settled(self, claim_id: str) -> None:
        """The claim holds nothing any more: none taken, its outcomes recorded, or given back."""
        with self._lock:
            self._held.discard(claim_id)

    def _give_up(self, *claim_ids: str) -> None:
        """These claims (none named: every claim still held) given back now, in the event loop even
        when cancelled (one UPDATE); a claim still being taken in its thread gives itself back."""
        with self._lock:
            ids = set(claim_ids or self._held)
            self._given_up |= ids & self._taking
        self._give_back(*ids)

    def _give_back(self, *claim_ids: str) -> None:
        try:
            self.store.release_ids(claim_ids)
        except Exception:  # The database is gone too: the lease gives the items back in the end.
            log.exception("giving back a job claim failed")
            return
        with self._lock:
            self._held.difference_update(claim_ids)

    async def _keep(self, claim: Claim, stopping: Callable[[], bool]) -> None:
        """The claim's lease kept alive while this worker works it (three renewals per lease), and
        given back the moment the process starts stopping (SIGTERM: a restart, a rolling update),
        so the other replicas take its items at once."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            if stopping():
                await asyncio.to_thread(self._give_back, claim.id)
                return
            if time.monotonic() - renewed >= self.lease_s / 3:
                renewed = time.monotonic()
                try:
                    await asyncio.to_thread(self.store.renew, claim, self.lease_s)
                except Exception:  # A passing database error: the next renewal may succeed.
                    log.exception("renewing a job claim failed")

    async def _work(self, claim: Claim) -> tuple[list[Outcome], list[PipelineError]]:
        from pipeline.serving.censorer import Upload

        started = utc_now()
        kinds = await asyncio.to_thread(lambda: [_is_video(claim.root, item.path) for item in claim.items])
        images = [item for item, video in zip(claim.items, kinds, strict=True) if not video]
        rows: list[Outcome] = []
        errors: list[PipelineError] = []
        if images:
            censorer = await self.censorer()
            uploads = [Upload(Path(item.path), item.path, root=claim.root) for item in images]
            for item, answer in zip(images, await censorer.censor(uploads, censorer.options()), strict=True):
                if isinstance(answer, PipelineError):
                    errors.append(answer)
                    rows.append(Outcome(item.seq, int(answer.status), error=str(answer)))
                else:
                    rows.append(Outcome(item.seq, 200, image_id=answer.id, reused=answer.created_at < started))
        for item, video in zip(claim.items, kinds, strict=True):
            if video:
                outcome, error = await asyncio.to_thread(self._store_video, claim.root, item)
                rows.append(outcome)
                errors += [error] if error else []
        return rows, errors

    def _store_video(self, root: Path, item: JobItem) -> tuple[Outcome, PipelineError | None]:
        """A video item copied into the video store (its censoring follows in the background)."""
        if self.videos is None:
            refused = UnsupportedImage(
                f"{item.path}: a video; censor it with `gore-censor video`, or run the job on the service"
            )
            return Outcome(item.seq, int(refused.status), error=str(refused)), refused
        try:
            fd = open_inside(root, item.path, item.path)
            record = self.videos.add_file(fd, item.path, "job", self.max_video_bytes)
        except PipelineError as error:
            return Outcome(item.seq, int(error.status), error=str(error)), error
        return Outcome(item.seq, 202, video_id=record.id), None


async def _to_the_end(call: Callable[..., T], *args: object) -> T:
    """`call(*args)` in a thread, awaited to its end even when this task is cancelled meanwhile (the
    cancellation is raised once it has ended): what it did in the database is then known. A
    thread cannot be stopped, so an `asyncio.to_thread` cancelled mid-call forgets what it did."""
    running = asyncio.ensure_future(asyncio.to_thread(call, *args))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])  # Cancelled again here: the thread is on its own (see _claim).
        if not running.cancelled():
            running.exception()  # Retrieved: the call's own error is not what ends this task.
        raise


def _is_video(root: Path, relative: str) -> bool:
    """Whether the file's first bytes start a video container; a file that cannot be read is left
    to the image pipeline, which says why."""
    try:
        fd = open_inside(root, relative, relative)
    except PipelineError:
        return False
    try:
        return video_container(os.read(fd, 12)) is not None
    except OSError:
        return False
    finally:
        os.close(fd)
