"""Collection jobs worked: a server-side folder (or a list of files) censored in the background.

The jobs and their items are stored (pipeline.stores.jobs) before a job is answered, so it
survives a restart. Each Censor worker runs a `JobRunner` that claims a chunk of pending items at a time
(atomically, so several workers share a job), censors them through the same pipeline as
`POST /censor` (an image the serving models already analysed costs only its hash), and records each
file's image id, or its error. A passing error (503, 507) puts the item back for later; a bad file
is recorded as failed and the job goes on. Only files under `GORE_JOBS_ROOT` may be named, and
only regular files inside it are read (no link followed, no pipe or device opened: a link or a
pipe in the folder is an item that fails and says why; see pipeline.files).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.stores.jobs import JobStore
from pipeline.stores.records import utc_now

log = logging.getLogger(__name__)


class JobRunner:
    """Works through the job items, a chunk at a time, until the process stops."""

    def __init__(self, store: JobStore, censorer: Callable[[], Awaitable], chunk: int, idle_s: float = 1.0):
        self.store, self.censorer, self.chunk, self.idle_s = store, censorer, chunk, idle_s

    async def run(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            try:
                worked = await self.step()
            except Exception:  # Kept alive whatever happens; the items stay claimed and are released on restart.
                log.exception("job runner step failed")
                worked = False
            if not worked:
                await asyncio.sleep(self.idle_s)

    async def step(self) -> bool:
        """Claim one chunk and censor it; False when there was nothing to do."""
        from pipeline.serving.censorer import Upload

        claim = await asyncio.to_thread(self.store.claim, self.chunk)
        if claim is None:
            return False
        started = utc_now()
        censorer = await self.censorer()
        uploads = [Upload(Path(item.path), item.path, root=claim.root) for item in claim.items]
        outcomes = await censorer.censor(uploads, censorer.options())
        rows = []
        for item, outcome in zip(claim.items, outcomes, strict=True):
            if isinstance(outcome, PipelineError):
                rows.append((item.seq, None, int(outcome.status), str(outcome), False))
            else:
                rows.append((item.seq, outcome.id, 200, None, outcome.created_at < started))
        await asyncio.to_thread(self.store.record, claim.job_id, rows)
        retry = max((o.retry_after_s or 0 for o in outcomes if isinstance(o, PipelineError)), default=0)
        if retry:  # Passing trouble (a model service down, a full disk): wait before the next chunk.
            await asyncio.sleep(min(retry, 30))
        return True
