"""The image store: originals, records, segmentation maps and renderings (thesis Appendix C).

Layout under the data directory, one folder per image id (SHA-256 of the uploaded bytes):

    images/<id>/original.<ext>          the bytes as uploaded, written once
    images/<id>/record.json             the ImageRecord: facts, analyses, reviews (records.py)
    images/<id>/maps-<key>.npy          a segmentation: the segmenter's maps, uint8, one per frame
    images/<id>/<rendering>.png         censored copies and masks, named by what decides their pixels

Nothing is ever deleted, and a record is only ever merged with what is already there, under an
exclusive lock on the image's folder: concurrent requests for one id (threads or processes of
this host) leave one consistent record, and no record links a missing file because every file
is written before the record that names it. Every write goes to a temporary file renamed into
place; files are owner-only (0600, folders 0700): these are graphic images.

`ImageStore` is the interface the pipeline uses (whole objects in, whole objects out), so an
object-storage backend can stand in for `FileSystemStore`.
"""

from __future__ import annotations

import errno
import io
import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.errors import NotFound, StoreFull
from pipeline.files import atomic_write
from pipeline.files.locks import flocked
from pipeline.stores.records import ImageRecord

_ID = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[0-9a-z][0-9a-z._-]{0,120}$")
RECORD = "record.json"
log = logging.getLogger(__name__)


def check_id(image_id: str) -> str:
    if not _ID.fullmatch(image_id):
        raise NotFound(f"{image_id!r} is not an image id (64 lowercase hex characters, the SHA-256 of the file)")
    return image_id


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise NotFound(f"{name!r} is not a file of an image")
    return name


@contextmanager
def disk_space() -> Iterator[None]:
    """A full disk (or quota) is the client's 507, not a bare 500; the caller left nothing partial."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreFull("the data directory is full: nothing was stored; send the request again later") from None
        raise


class ImageStore(Protocol):
    def put_original(self, image_id: str, suffix: str, data: bytes) -> None: ...
    def original(self, image_id: str) -> tuple[bytes, str]: ...
    def record(self, image_id: str) -> ImageRecord | None: ...
    def merge(self, record: ImageRecord) -> ImageRecord: ...
    def put_maps(self, image_id: str, name: str, maps: np.ndarray) -> None: ...
    def maps(self, image_id: str, name: str) -> np.ndarray: ...
    def put_rendering(self, image_id: str, name: str, png: bytes) -> None: ...
    def rendering(self, image_id: str, name: str) -> bytes | None: ...
    def ids(self) -> Iterator[str]: ...


class RecordIndex(Protocol):
    """What lists the records (the gallery index): told every record as merged."""

    def put(self, record: ImageRecord) -> None: ...


class FileSystemStore:
    def __init__(self, root: Path, index: RecordIndex | None = None):
        self.root = Path(root)
        self.scratch = self.root / "tmp"
        """Where files are written before being renamed into place: only there can a killed
        process leave half a file, and `sweep` empties it before a service starts."""
        self.index = index
        """Kept current by every merge, whoever writes (the service, a job, the offline command); its
        failure is logged and never fails the write: the index can be rebuilt from the records."""

    def sweep(self) -> int:
        """Remove what killed writers left in the scratch folder; call when no writer runs."""
        removed = 0
        if self.scratch.is_dir():
            for leftover in self.scratch.iterdir():
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    def folder(self, image_id: str) -> Path:
        return self.root / "images" / check_id(image_id)

    def _write(self, path: Path, data: bytes) -> None:
        with disk_space():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(path, data, scratch=self.scratch, flush_folder=False)  # 0600, in the swept scratch

    @contextmanager
    def _locked(self, image_id: str) -> Iterator[None]:
        folder = self.folder(image_id)
        with ExitStack() as held:
            with disk_space():  # Even the lock file needs room.
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                held.enter_context(flocked(folder / ".lock"))
            yield

    # ---- originals ----

    def put_original(self, image_id: str, suffix: str, data: bytes) -> None:
        path = self.folder(image_id) / f"original{suffix}"
        if not path.exists():  # Same id, same bytes: nothing to do.
            self._write(path, data)

    def original(self, image_id: str) -> tuple[bytes, str]:
        for path in self.folder(image_id).glob("original.*"):
            return path.read_bytes(), path.suffix
        raise NotFound(f"no image with id {image_id}: POST it to /censor first")

    # ---- records ----

    def record(self, image_id: str) -> ImageRecord | None:
        path = self.folder(image_id) / RECORD
        try:
            return ImageRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None

    def merge(self, record: ImageRecord) -> ImageRecord:
        """Store what `record` knows on top of what is stored; returns the merged record."""
        with self._locked(record.id):
            stored = self.record(record.id)
            merged = record if stored is None else stored.merged(record)
            if merged != stored:
                self._write(self.folder(record.id) / RECORD, merged.model_dump_json(indent=1).encode())
        if merged != stored and self.index is not None:
            try:
                self.index.put(merged)
            except Exception:
                log.exception("the record index failed; the record itself is stored")
        return merged

    def ids(self) -> Iterator[str]:
        images = self.root / "images"
        if images.is_dir():
            for folder in images.iterdir():
                if _ID.fullmatch(folder.name) and (folder / RECORD).is_file():
                    yield folder.name

    # ---- derived files ----

    def put_maps(self, image_id: str, name: str, maps: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, maps.astype(np.uint8), allow_pickle=False)
        self._write(self.folder(image_id) / check_name(name), buffer.getvalue())

    def maps(self, image_id: str, name: str) -> np.ndarray:
        try:
            return np.load(self.folder(image_id) / check_name(name), allow_pickle=False)
        except FileNotFoundError:
            raise NotFound(f"image {image_id} has no segmentation {name}") from None

    def put_rendering(self, image_id: str, name: str, png: bytes) -> None:
        path = self.folder(image_id) / check_name(name)
        if not path.exists():  # Same name, same pixels: the first writer's copy is as good.
            self._write(path, png)

    def rendering(self, image_id: str, name: str) -> bytes | None:
        try:
            return (self.folder(image_id) / check_name(name)).read_bytes()
        except FileNotFoundError:
            return None
