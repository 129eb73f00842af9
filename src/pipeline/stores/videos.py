"""Videos sent to the service, and what became of each: `videos/<id>/` in the data directory.

    videos/<id>/original.<mp4|mkv>   the bytes as uploaded (id: their SHA-256), never served
    videos/<id>/video.json           the VideoRecord: state, who sent it, the timeline when done
    videos/<id>/summary.json         its VideoSummary (what lists read), written with it
    videos/<id>/censored.mp4, timeline.json, masks.jsonl, strip.png, markers.edl    the outputs
    videos/<id>/clips/               segments cut out for the web app's reveals, made when asked
    videos/<id>/.work                locked (flock) by the worker censoring it
    videos/<id>/.waiting             there while it is queued or worked: what the runners look at

A video is stored, then answered 202; workers take it in the background. Whoever holds the lock
works it: the kernel drops a lock with the process that held it, so a video whose worker was
killed is taken again by the next one, and no start-up sweeps another process' work.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import Conflict, NotFound, UnsupportedImage, UploadTooLarge
from pipeline.files import atomic_write
from pipeline.files.kinds import VIDEO_NAMES, video_container
from pipeline.files.locks import flocked
from pipeline.files.reading import CHUNK_BYTES
from pipeline.stores.images import disk_space
from pipeline.stores.records import utc_now
from pipeline.stores.video_records import VideoRecord, VideoResult, VideoSummary

OUTPUTS = {
    "video": "censored.mp4",
    "timeline": "timeline.json",
    "masks": "masks.jsonl",
    "strip": "strip.png",
    "markers": "markers.edl",
}
SUFFIXES = {"mov": ".mp4", "matroska": ".mkv"}
"""The original's suffix, by the demuxer its first bytes call for (pipeline.files.kinds)."""
_ID = re.compile(r"^[0-9a-f]{64}$")
SUMMARY = "summary.json"
WAITING = ".waiting"
"""In the folder of a video that is queued or being worked: the runners look only at these."""


class VideoStore:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "videos"
        self.scratch = Path(data_dir) / "tmp"

    def folder(self, video_id: str) -> Path:
        if not _ID.fullmatch(video_id):
            raise NotFound(f"{video_id!r} is not a video id (64 lowercase hex characters, the SHA-256 of the file)")
        return self.root / video_id

    def spool(self) -> Path:
        """A private file in the swept scratch folder to receive an upload into."""
        self.scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.scratch, prefix="video-")
        os.close(fd)
        return Path(name)

    def add(self, spooled: Path, video_id: str, suffix: str, filename: str, by: str) -> VideoRecord:
        """The spooled upload moved into place and queued; an id already stored is answered as it is."""
        folder = self.folder(video_id)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with flocked(folder / ".add"):
            known = self.record(video_id)
            if known is not None and known.state != "failed":
                spooled.unlink(missing_ok=True)
                return known
            os.replace(spooled, folder / f"original{suffix}")
            record = VideoRecord(
                id=video_id, filename=filename, state="queued", submitted_by=by, submitted_at=utc_now()
            )
            self._write(record)
            return record

    def add_file(self, fd: int, filename: str, by: str, max_bytes: int) -> VideoRecord:
        """A video read from an open file (a job's item; the descriptor is closed) stored as an
        upload is: copied to a spool file, counted (413 past `max_bytes`), hashed, then added."""
        source = os.fdopen(fd, "rb")
        with source:
            spooled, digest, size, head = self.spool(), hashlib.sha256(), 0, b""
            try:
                with disk_space(), spooled.open("wb") as out:
                    while chunk := source.read(CHUNK_BYTES):
                        size += len(chunk)
                        if size > max_bytes:
                            raise UploadTooLarge(f"{filename}: over the video limit of {max_bytes:,} bytes")
                        head = (head + chunk[:12])[:12]
                        digest.update(chunk)
                        out.write(chunk)
                kind = video_container(head)
                if kind is None:
                    raise UnsupportedImage(f"{filename}: not a video this service reads ({VIDEO_NAMES})")
                with disk_space():
                    return self.add(spooled, digest.hexdigest(), SUFFIXES[kind], filename, by)
            finally:
                spooled.unlink(missing_ok=True)

    def record(self, video_id: str) -> VideoRecord | None:
        try:
            return VideoRecord.model_validate_json((self.folder(video_id) / "video.json").read_bytes())
        except FileNotFoundError:
            return None

    def get(self, video_id: str) -> VideoRecord:
        record = self.record(video_id)
        if record is None:
            raise NotFound(f"no video with id {video_id}: POST it to /videos first")
        return record

    def summary(self, video_id: str) -> VideoSummary | None:
        """What a list shows of a video: its small summary file (or, for a folder from before those
        files, made from the record)."""
        try:
            return VideoSummary.model_validate_json((self.folder(video_id) / SUMMARY).read_bytes())
        except FileNotFoundError:
            record = self.record(video_id)
            return VideoSummary.of(record) if record is not None else None

    def summaries(self, limit: int = 100, after: str | None = None) -> list[VideoSummary]:
        """Newest first, `limit` at a time; `after`: the id of the last video of the page before."""
        found = [s for s in (self.summary(folder.name) for folder in self._folders()) if s is not None]
        found.sort(key=lambda s: (s.submitted_at, s.id), reverse=True)
        if after is not None:
            ids = [s.id for s in found]
            if after not in ids:
                raise NotFound(f"no video with id {after} to list after")
            found = found[ids.index(after) + 1 :]
        return found[:limit]

    def original(self, video_id: str) -> Path:
        for path in self.folder(video_id).glob("original.*"):
            return path
        raise NotFound(f"no video with id {video_id}")

    def output(self, video_id: str, kind: str) -> Path:
        record = self.get(video_id)
        if record.state != "done":  # It is there, but not this: 409, not "no such video".
            raise Conflict(f"video {video_id} is {record.state}: its {kind} comes when it is done")
        return self.folder(video_id) / OUTPUTS[kind]

    def censor_again(self, video_id: str) -> VideoRecord:
        """A done video queued to be censored again (a hash list now knows frames its outputs
        show): its outputs and cut clips are removed first, so nothing made before is served."""
        folder = self.folder(video_id)
        with flocked(folder / ".add"):
            record = self.get(video_id)
            if record.state != "done":
                return record
            again = record.model_copy(update={"state": "queued", "result": None, "finished_at": None})
            self._write(again)
            for name in OUTPUTS.values():
                (folder / name).unlink(missing_ok=True)
            shutil.rmtree(folder / "clips", ignore_errors=True)
            return again

    def clip(self, video_id: str, name: str) -> Path:
        """Where a cut of a censored video is kept (the web app's segment reveals, made only of a
        video the caller found done): `clips/<name>`."""
        folder = self.folder(video_id) / "clips"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / name

    def save(self, record: VideoRecord) -> None:
        self._write(record)

    @contextmanager
    def claim(self) -> Iterator[VideoRecord | None]:
        """The oldest video waiting (or left by a worker that died), locked for this process while
        the `with` lasts; None when there is none."""
        marked = (self.record(marker.parent.name) for marker in self.root.glob(f"*/{WAITING}"))
        waiting = [r for r in marked if r is not None and r.state in ("queued", "working")]
        for record in sorted(waiting, key=lambda r: r.submitted_at):
            with flocked(self.folder(record.id) / ".work", wait=False) as held:
                current = self.record(record.id) if held else None  # Done meanwhile by one that just let go?
                if current is not None and current.state in ("queued", "working"):
                    yield current
                    return
        yield None

    def _folders(self) -> Iterator[Path]:
        if self.root.is_dir():
            yield from (f for f in self.root.iterdir() if _ID.fullmatch(f.name))

    def _write(self, record: VideoRecord) -> None:
        """The record, and the marker that puts it in the workers' sight while it waits: made
        before a waiting record is written, removed after a final one, so a crash between leaves
        at most a marker that `claim` passes over, never a waiting video nobody sees."""
        folder = self.folder(record.id)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
        waits = record.state in ("queued", "working")
        if waits:
            (folder / WAITING).touch(mode=0o600)
        # The summary first: a crash between leaves it ahead of a record still waiting, which a
        # worker writes again; never a finished record listed as waiting for ever.
        atomic_write(folder / SUMMARY, VideoSummary.of(record).model_dump_json().encode(), scratch=self.scratch)
        atomic_write(folder / "video.json", record.model_dump_json(indent=1).encode(), scratch=self.scratch)
        if not waits:
            (folder / WAITING).unlink(missing_ok=True)

    def work_folder(self, video_id: str) -> Path:
        """An empty folder for a try at censoring the video (what a killed try left is removed)."""
        work = self.folder(video_id) / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=0o700)
        return work

    def place_outputs(self, video_id: str, made: Path, result: VideoResult) -> None:
        """Move what the censorer wrote into the video's folder under the stored names."""
        folder = self.folder(video_id)
        for kind, name in result.outputs.items():
            if (made / name).exists():
                os.replace(made / name, folder / OUTPUTS[kind])
        shutil.rmtree(made, ignore_errors=True)
