"""Collection jobs as stored: one row per job and one per file in `jobs.db` (the data directory),
or in the shared database, where the Censor replicas of a deployment share them.

A job is stored with one item per file before it is answered, so it survives a restart. Workers
claim a chunk of pending items at a time, atomically (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
claimers pass each other), so several workers, in several processes or on several hosts, share a
job. A claim is a *lease*: its worker renews it while it works, and items whose lease ran out (the
worker was killed, or its host lost) are claimed again by whoever asks next. Each claim carries
its own id, and only that claim's worker may record the outcome, so a worker that lost its lease
cannot overwrite the work of the one that took over. A passing error (503, 507) puts an item back
for later, a bad file is recorded as failed. Only files under `GORE_JOBS_ROOT`
may be named (who works the items: pipeline.serving.jobs).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from pipeline.errors import Forbidden, NotFound
from pipeline.files import walk_files
from pipeline.stores.database import TableStore
from pipeline.stores.records import utc_now

JobState = Literal["queued", "running", "done", "cancelled"]
ItemState = Literal["pending", "working", "done", "failed"]
DATABASE = "jobs.db"
RATE_WINDOW_S = 60
MOST_FILES = 100_000  # Files one job may list (a folder's walk stops past it).


# Relative, segment by segment; no segment starts with a dot (so no `..`, no hidden files).
RelativePath = Annotated[str, Field(pattern=r"^[A-Za-z0-9_ -][A-Za-z0-9_. -]*(/[A-Za-z0-9_ -][A-Za-z0-9_. -]*)*$")]


class JobRequest(BaseModel):
    folder: RelativePath | None = Field(
        None, description="A folder under GORE_JOBS_ROOT: every file in it, recursively."
    )
    files: list[RelativePath] | None = Field(
        None, min_length=1, max_length=MOST_FILES, description="Files under GORE_JOBS_ROOT."
    )

    @model_validator(mode="after")
    def one_source(self) -> JobRequest:
        if (self.folder is None) == (self.files is None):
            raise ValueError("give either `folder` or `files`")
        return self


class JobStatus(BaseModel):
    id: str
    state: JobState
    source: str = Field(description="The folder, or how many files were listed.")
    created_at: datetime
    created_by: str
    started_at: datetime | None
    finished_at: datetime | None
    total: int
    done: int
    failed: int
    remaining: int
    already_analysed: int = Field(description="Done items whose image the serving models had analysed before.")
    videos: int = Field(
        0, description="Done items that are videos: stored and censored in the background (GET /videos/{id})."
    )
    images_per_s: float | None = Field(description="Over the last minute of work.")
    eta_s: float | None = Field(description="Seconds to go at that rate.")


class JobItem(BaseModel):
    seq: int = Field(description="The item's place in the job; page with ?after=<seq>.")
    path: str
    state: ItemState
    image_id: str | None = None
    video_id: str | None = Field(None, description="For a video: its id; it is censored in the background.")
    worked_by: str | None = Field(None, description="The Censor worker (host:pid) that last claimed it.")
    status: int | None = Field(None, description="HTTP status this file would have had on its own.")
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed item: an image analysed, a video stored, or an error (status)."""

    seq: int
    status: int
    image_id: str | None = None
    video_id: str | None = None
    error: str | None = None
    reused: bool = False


def _lease_end(seconds: float) -> str:
    return (utc_now() + timedelta(seconds=seconds)).isoformat()


def inside(root: Path, relative: str, what: str = "the jobs root (GORE_JOBS_ROOT)") -> Path:
    """`relative` under `root`, or a 403: no absolute paths, no `..`, no symlink out of it."""
    root = root.resolve()
    path = (root / relative).resolve()
    if not relative or Path(relative).is_absolute() or not path.is_relative_to(root):
        raise Forbidden(f"{relative!r} is not inside {what}; name paths relative to it")
    return path


@dataclass(frozen=True)
class Claim:
    job_id: str
    root: Path
    items: list[JobItem]
    id: str = ""
    """Only this claim may record its items' outcomes (a fencing token)."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, source TEXT NOT NULL, created_at TEXT NOT NULL,
    created_by TEXT NOT NULL, started_at TEXT, finished_at TEXT, root TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT NOT NULL, state TEXT NOT NULL,
    image_id TEXT, status INTEGER, error TEXT, reused INTEGER NOT NULL DEFAULT 0, done_at TEXT,
    PRIMARY KEY (job_id, seq));
CREATE INDEX IF NOT EXISTS items_state ON items (state, job_id, seq);
"""


class JobStore(TableStore):
    FILE, SCHEMA = DATABASE, SCHEMA
    # Videos in jobs, and leases, came after the first jobs.db files.
    COLUMNS = {"items": {"video_id": "TEXT", "claim": "TEXT", "lease_until": "TEXT", "worked_by": "TEXT"}}

    # ---- jobs ----

    def create(self, request: JobRequest, root: Path, by: str) -> JobStatus:
        """List the job's files now (so a restart knows them all), store it, and answer its status."""
        if request.folder is not None:
            folder = inside(root, request.folder)
            if not folder.is_dir():
                raise NotFound(f"no folder {request.folder!r} under the jobs root")
            paths = walk_files(root.resolve(), os.path.relpath(folder, root.resolve()), MOST_FILES)
            source = request.folder
        else:
            paths = [os.path.relpath(inside(root, f), root.resolve()) for f in request.files]
            source = f"{len(paths)} files"
        return self.create_for(paths, root, source, by)

    def create_for(self, paths: list[str], root: Path, source: str, by: str) -> JobStatus:
        """A job over `paths`, relative to `root` (already checked to be inside it)."""
        job_id = uuid.uuid4().hex
        with self.database.connect() as db:
            db.execute(
                "INSERT INTO jobs (id, state, source, created_at, created_by, root) VALUES (?, 'queued', ?, ?, ?, ?)",
                (job_id, source, utc_now().isoformat(), by, str(root.resolve())),
            )
            db.executemany(
                "INSERT INTO items (job_id, seq, path, state) VALUES (?, ?, ?, 'pending')",
                [(job_id, seq, path) for seq, path in enumerate(paths)],
            )
        if not paths:
            self._finish_if_complete(job_id)
        return self.status(job_id)

    def status(self, job_id: str) -> JobStatus:
        with self.database.connect() as db:
            job = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if job is None:
                raise NotFound(f"no job {job_id}")
            counts = dict(db.execute("SELECT state, COUNT(*) FROM items WHERE job_id = ? GROUP BY state", (job_id,)))
            reused, videos = db.execute(
                "SELECT COUNT(*) FILTER (WHERE reused = 1), COUNT(video_id) FROM items WHERE job_id = ?", (job_id,)
            ).fetchone()
            since = datetime.fromtimestamp(utc_now().timestamp() - RATE_WINDOW_S, tz=utc_now().tzinfo).isoformat()
            recent = db.execute(
                "SELECT COUNT(*), MIN(done_at) FROM items WHERE job_id = ? AND done_at > ?", (job_id, since)
            ).fetchone()
        total = sum(counts.values())
        remaining = counts.get("pending", 0) + counts.get("working", 0)
        rate = None
        if recent[0]:
            window = max(1.0, (utc_now() - datetime.fromisoformat(recent[1])).total_seconds())
            rate = round(recent[0] / window, 3)
        return JobStatus(
            id=job_id,
            state=job["state"],
            source=job["source"],
            created_at=job["created_at"],
            created_by=job["created_by"],
            started_at=job["started_at"],
            finished_at=job["finished_at"],
            total=total,
            done=counts.get("done", 0),
            failed=counts.get("failed", 0),
            remaining=remaining,
            already_analysed=reused,
            videos=videos,
            images_per_s=rate,
            eta_s=round(remaining / rate, 1) if rate and job["state"] == "running" else None,
        )

    def jobs(self) -> list[JobStatus]:
        with self.database.connect() as db:
            ids = [row[0] for row in db.execute("SELECT id FROM jobs ORDER BY created_at DESC")]
        return [self.status(job_id) for job_id in ids]

    def items(
        self, job_id: str, *, state: str | None = None, after: int = -1, limit: int = 1000, videos: bool = False
    ) -> list[JobItem]:
        """A page of a job's items (`videos`: only those that are videos)."""
        query = "SELECT * FROM items WHERE job_id = ? AND seq > ?"
        args: list = [job_id, after]
        if state is not None:
            query, args = query + " AND state = ?", [*args, state]
        if videos:
            query += " AND video_id IS NOT NULL"
        with self.database.connect() as db:
            if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise NotFound(f"no job {job_id}")  # Not the whole status: counting a big job's items is work.
            rows = db.execute(query + " ORDER BY seq LIMIT ?", (*args, limit)).fetchall()
        return [
            JobItem(
                seq=r["seq"],
                path=r["path"],
                state=r["state"],
                image_id=r["image_id"],
                video_id=r["video_id"],
                worked_by=r["worked_by"],
                status=r["status"],
                error=r["error"],
            )
            for r in rows
        ]

    def cancel(self, job_id: str) -> JobStatus:
        with self.database.connect() as db:
            db.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state IN ('queued', 'running')",
                (utc_now().isoformat(), job_id),
            )
        return self.status(job_id)

    # ---- the work ----

    def release_claims(self) -> int:
        """Every claimed item back to pending at once, in embedded mode, before any worker starts (no
        need to wait for leases to run out: this process owns every worker). Never in shared mode:
        the claims there are other replicas' work in progress."""
        with self.database.connect() as db:
            return db.execute(
                "UPDATE items SET state = 'pending', claim = NULL, lease_until = NULL WHERE state = 'working'"
            ).rowcount

    def claim(self, limit: int, lease_s: float = 60.0, worker: str = "", claim_id: str = "") -> Claim | None:
        """Up to `limit` items of the oldest live job that are pending, or whose lease ran out,
        marked working under a new claim leased for `lease_s` seconds, by `worker` (host:pid).
        `claim_id`: the claim's id, chosen by a worker that must know it before the claim is answered
        (one that stops meanwhile gives back what it took by that id); a new one when not given."""
        now = utc_now()
        claim_id = claim_id or uuid.uuid4().hex
        claimable = "(state = 'pending' OR (state = 'working' AND (lease_until IS NULL OR lease_until < ?)))"
        with self.database.connect() as db:
            if db.dialect == "sqlite":
                db.lock("job claims")  # One claimer at a time; PostgreSQL's claimers skip each other's rows.
            job = db.execute(
                "SELECT j.id, j.root FROM jobs j WHERE j.state IN ('queued', 'running') AND EXISTS "
                f"(SELECT 1 FROM items i WHERE i.job_id = j.id AND {claimable}) ORDER BY j.created_at LIMIT 1",
                (now.isoformat(),),
            ).fetchone()
            if job is None:
                return None
            # The rows to take are picked once, in a CTE: as a sub-SELECT of the UPDATE, PostgreSQL may
            # run it again for each row and so take more than `limit`.
            rows = db.execute(
                f"WITH picked AS (SELECT seq FROM items WHERE job_id = ? AND {claimable} ORDER BY seq LIMIT ?"
                f"{db.skip_locked}) UPDATE items SET state = 'working', claim = ?, lease_until = ?, worked_by = ? "
                "WHERE job_id = ? AND seq IN (SELECT seq FROM picked) RETURNING seq, path",
                (job["id"], now.isoformat(), limit, claim_id, _lease_end(lease_s), worker or None, job["id"]),
            ).fetchall()
            if not rows:  # Another replica claimed the rest between the two statements.
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, ?) WHERE id = ?",
                (now.isoformat(), job["id"]),
            )
        items = [JobItem(seq=r["seq"], path=r["path"], state="working") for r in sorted(rows, key=lambda r: r["seq"])]
        return Claim(job["id"], Path(job["root"]), items, claim_id)

    def renew(self, claim: Claim, lease_s: float) -> int:
        """The claim's items still being worked, leased for `lease_s` more seconds; how many."""
        with self.database.connect() as db:
            return db.execute(
                "UPDATE items SET lease_until = ? WHERE job_id = ? AND claim = ? AND state = 'working'",
                (_lease_end(lease_s), claim.job_id, claim.id),
            ).rowcount

    def release(self, claim: Claim) -> int:
        """The claim's items not yet recorded, back to pending at once (its worker is stopping)."""
        return self.release_ids([claim.id])

    def release_ids(self, claim_ids: Iterable[str]) -> int:
        """The items of these claims (by id) not yet recorded, back to pending at once; how many.
        Idempotent: a claim already given back or recorded, or one whose UPDATE never committed,
        gives back nothing, and items another claim took over (a lease ran out) are not touched."""
        ids = sorted({claim_id for claim_id in claim_ids if claim_id})
        if not ids:
            return 0
        with self.database.connect() as db:
            return sum(
                db.execute(
                    "UPDATE items SET state = 'pending', claim = NULL, lease_until = NULL "
                    "WHERE state = 'working' AND claim = ?",
                    (claim_id,),
                ).rowcount
                for claim_id in ids
            )

    def record(self, job_id: str, outcomes: list[Outcome], claim_id: str | None = None) -> None:
        """Each claimed item's outcome; passing errors (503, 507) put it back to pending. With
        `claim_id`, only items still held by that claim are written (a lost lease writes nothing)."""
        now = utc_now().isoformat()
        held = " AND state = 'working' AND claim = ?" if claim_id else ""
        fence = (claim_id,) if claim_id else ()
        with self.database.connect() as db:
            for o in outcomes:
                if o.image_id is not None or o.video_id is not None:
                    db.execute(
                        "UPDATE items SET state = 'done', image_id = ?, video_id = ?, status = ?, reused = ?, "
                        f"done_at = ?, lease_until = NULL WHERE job_id = ? AND seq = ?{held}",
                        (o.image_id, o.video_id, o.status, int(o.reused), now, job_id, o.seq, *fence),
                    )
                elif o.status in (503, 507):
                    db.execute(
                        "UPDATE items SET state = 'pending', claim = NULL, lease_until = NULL "
                        f"WHERE job_id = ? AND seq = ?{held}",
                        (job_id, o.seq, *fence),
                    )
                else:
                    db.execute(
                        "UPDATE items SET state = 'failed', status = ?, error = ?, done_at = ?, lease_until = NULL "
                        f"WHERE job_id = ? AND seq = ?{held}",
                        (o.status, o.error, now, job_id, o.seq, *fence),
                    )
        self._finish_if_complete(job_id)

    def _finish_if_complete(self, job_id: str) -> None:
        with self.database.connect() as db:
            db.execute(
                "UPDATE jobs SET state = 'done', finished_at = ? WHERE id = ? AND state IN ('queued', 'running') AND "
                "NOT EXISTS (SELECT 1 FROM items WHERE job_id = ? AND state IN ('pending', 'working'))",
                (utc_now().isoformat(), job_id, job_id),
            )
