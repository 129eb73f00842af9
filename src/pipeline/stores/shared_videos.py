"""The video store of the shared mode: records in the shared database, files in the bucket, and
a local copy of what this replica needs to read.

    videos table    id, state, submitted_at, the VideoRecord and its VideoSummary as JSON, and the
                    claim: which worker censors it, until when (its lease)
    bucket          <prefix>/videos/<id>/original.<mp4|mkv>, censored.mp4, timeline.json,
                    masks.jsonl, strip.png, markers.edl
    GORE_DATA_DIR   videos/<id>/: this replica's copies, fetched when first read (outputs never
                    change once a video is done), its segment clips, its work folder

Any replica takes a waiting video: the oldest one not leased (`FOR UPDATE SKIP LOCKED`), leased to
its worker for `lease_s` and renewed every third of it while it works; a replica killed mid-video
gives it back when the lease runs out. The outputs are uploaded before the record that says the
video is done, so no replica reads a done video whose files are missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from pipeline.errors import Conflict, NotFound
from pipeline.files.locks import flocked
from pipeline.stores.database import PostgresDatabase
from pipeline.stores.records import utc_now
from pipeline.stores.s3 import S3Objects
from pipeline.stores.video_records import VideoRecord, VideoResult, VideoSummary
from pipeline.stores.videos import OUTPUTS, VideoStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, submitted_at TEXT NOT NULL, record TEXT NOT NULL,
    summary TEXT NOT NULL, claim TEXT, lease_until TEXT, worked_by TEXT);
CREATE INDEX IF NOT EXISTS videos_by_time ON videos (submitted_at, id);
CREATE INDEX IF NOT EXISTS videos_waiting ON videos (state, submitted_at);
"""


class SharedVideoStore(VideoStore):
    def __init__(self, data_dir: Path, database: PostgresDatabase, objects: S3Objects, lease_s: float = 60.0):
        super().__init__(data_dir)
        self.database, self.objects, self.lease_s = database, objects, lease_s
        database.create(SCHEMA)

    def _name(self, video_id: str, name: str) -> str:
        return f"videos/{self.folder(video_id).name}/{name}"

    # ---- adding ----

    def add(self, spooled: Path, video_id: str, suffix: str, filename: str, by: str) -> VideoRecord:
        """The upload into the bucket and the record into the table; an id already stored is
        answered as it is (a failed one is queued again)."""
        try:
            known = self.record(video_id)
            if known is not None and known.state != "failed":
                return known
            self.objects.put_file(self._name(video_id, f"original{suffix}"), spooled)
            record = VideoRecord(
                id=video_id, filename=filename, state="queued", submitted_by=by, submitted_at=utc_now()
            )
            with self.database.connect() as db:
                stored = db.execute(
                    "INSERT INTO videos (id, state, submitted_at, record, summary) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, submitted_at = excluded.submitted_at, "
                    "record = excluded.record, summary = excluded.summary, claim = NULL, lease_until = NULL "
                    "WHERE videos.state = 'failed' RETURNING id",
                    (video_id, record.state, record.submitted_at.isoformat(), *self._json(record)),
                ).fetchone()
            return record if stored is not None else self.get(video_id)  # Sent twice at once: the first.
        finally:
            spooled.unlink(missing_ok=True)

    @staticmethod
    def _json(record: VideoRecord) -> tuple[str, str]:
        return record.model_dump_json(), VideoSummary.of(record).model_dump_json()

    # ---- reading ----

    def record(self, video_id: str) -> VideoRecord | None:
        with self.database.connect() as db:
            row = db.execute("SELECT record FROM videos WHERE id = ?", (self.folder(video_id).name,)).fetchone()
        return None if row is None else VideoRecord.model_validate_json(row[0])

    def summary(self, video_id: str) -> VideoSummary | None:
        with self.database.connect() as db:
            row = db.execute("SELECT summary FROM videos WHERE id = ?", (self.folder(video_id).name,)).fetchone()
        return None if row is None else VideoSummary.model_validate_json(row[0])

    def summaries(self, limit: int = 100, after: str | None = None) -> list[VideoSummary]:
        """Newest first, a page at a time, by keyset (the database sorts; nothing else is read)."""
        with self.database.connect() as db:
            where, args = "", []
            if after is not None:
                mark = db.execute("SELECT submitted_at FROM videos WHERE id = ?", (after,)).fetchone()
                if mark is None:
                    raise NotFound(f"no video with id {after} to list after")
                where, args = "WHERE (submitted_at, id) < (?, ?)", [mark[0], after]
            rows = db.execute(
                f"SELECT summary FROM videos {where} ORDER BY submitted_at DESC, id DESC LIMIT ?", (*args, limit)
            ).fetchall()
        return [VideoSummary.model_validate_json(row[0]) for row in rows]

    def _local(self, video_id: str, name: str, local: str) -> Path:
        """This replica's copy of an object of the video, fetched whole the first time."""
        path = self.folder(video_id) / local
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with flocked(path.parent / f".{local}.lock"):  # Parallel range requests fetch it once.
                if not path.exists():
                    self.scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
                    fd, part = tempfile.mkstemp(dir=self.scratch, prefix="fetch-")
                    os.close(fd)
                    try:
                        if not self.objects.get_file(name, Path(part)):
                            raise NotFound(f"video {video_id} has no {local} in the object store")
                        os.replace(part, path)
                    finally:
                        Path(part).unlink(missing_ok=True)
        return path

    def original(self, video_id: str) -> Path:
        for path in self.folder(video_id).glob("original.*"):  # This replica's copy (placed whole).
            return path
        for name in self.objects.names(self._name(video_id, "original.")):
            return self._local(video_id, name, "original" + Path(name).suffix)
        raise NotFound(f"no video with id {video_id}")

    def output(self, video_id: str, kind: str) -> Path:
        record = self.get(video_id)
        if record.state != "done":  # It is there, but not this: 409, not "no such video".
            raise Conflict(f"video {video_id} is {record.state}: its {kind} comes when it is done")
        return self._local(video_id, self._name(video_id, OUTPUTS[kind]), OUTPUTS[kind])

    # ---- working ----

    def save(self, record: VideoRecord) -> None:
        with self.database.connect() as db:
            db.execute(
                "UPDATE videos SET state = ?, record = ?, summary = ? WHERE id = ?",
                (record.state, *self._json(record), record.id),
            )

    @contextmanager
    def claim(self) -> Iterator[VideoRecord | None]:
        """The oldest waiting video no live lease holds, leased to this worker while the `with`
        lasts (renewed in the background); None when there is none."""
        now, claim_id = utc_now().isoformat(), uuid.uuid4().hex
        with self.database.connect() as db:
            row = db.execute(
                "WITH picked AS (SELECT id FROM videos WHERE state IN ('queued', 'working') AND "
                "(lease_until IS NULL OR lease_until < ?) ORDER BY submitted_at LIMIT 1"
                f"{db.skip_locked}) UPDATE videos SET claim = ?, lease_until = ?, worked_by = ? "
                "WHERE id IN (SELECT id FROM picked) RETURNING record",
                (now, claim_id, self._lease_end(), f"{socket.gethostname()}:{os.getpid()}"),
            ).fetchone()
        if row is None:
            yield None
            return
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(claim_id, stop), daemon=True)
        renewer.start()
        try:
            yield VideoRecord.model_validate_json(row[0])
        finally:
            stop.set()
            renewer.join()
            with self.database.connect() as db:
                db.execute("UPDATE videos SET claim = NULL, lease_until = NULL WHERE claim = ?", (claim_id,))

    def _lease_end(self) -> str:
        return (utc_now() + timedelta(seconds=self.lease_s)).isoformat()

    def _renew(self, claim_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            try:
                with self.database.connect() as db:
                    db.execute("UPDATE videos SET lease_until = ? WHERE claim = ?", (self._lease_end(), claim_id))
            except Exception:  # A passing database error: the next renewal may succeed.
                pass

    def place_outputs(self, video_id: str, made: Path, result: VideoResult) -> None:
        """What the censorer wrote, uploaded under the stored names (before the record says done)."""
        for kind, name in result.outputs.items():
            if (made / name).exists():
                self.objects.put_file(self._name(video_id, OUTPUTS[kind]), made / name)
        shutil.rmtree(made, ignore_errors=True)
