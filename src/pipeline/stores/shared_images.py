"""The image store of the shared mode: records in the shared database, files in the bucket.

    records table   id, version, the ImageRecord as JSON (records.py)
    bucket          <prefix>/images/<id>/original.<ext>, maps-<key>.npy, <rendering>.png

The same interface as `FileSystemStore` (images.py), so the pipeline cannot tell them apart. The
records' rule holds across replicas: a record only ever gains information. A merge reads the
stored record and its version, merges, and writes only if the version is still the one it read
(compare-and-swap on the version column); if another replica wrote in between, it reads again and
merges again, so neither write is lost. The first write of a record is an INSERT that loses to a
concurrent one the same way. Files are written before the record that names them, as on disk.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import numpy as np

from pipeline.errors import NotFound, Unavailable
from pipeline.stores.database import PostgresDatabase
from pipeline.stores.images import RecordIndex, check_id, check_name
from pipeline.stores.records import ImageRecord
from pipeline.stores.s3 import S3Objects

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, version INTEGER NOT NULL, record TEXT NOT NULL);
"""
MOST_ATTEMPTS = 50  # Concurrent merges of one record each succeed within a few; this bounds a pathological case.
log = logging.getLogger(__name__)


class SharedImageStore:
    scratch = None  # Nothing is half-written here: a PUT lands whole, a transaction commits whole.

    def __init__(self, database: PostgresDatabase, objects: S3Objects, index: RecordIndex | None = None):
        self.database, self.objects, self.index = database, objects, index
        database.create(SCHEMA)

    def sweep(self) -> int:
        return 0

    @staticmethod
    def _name(image_id: str, name: str) -> str:
        return f"images/{check_id(image_id)}/{name}"

    # ---- originals ----

    def put_original(self, image_id: str, suffix: str, data: bytes) -> None:
        # Same id, same bytes: a second PUT changes nothing, and costs less than asking first (the
        # pipeline stores an original only when it has just analysed it).
        self.objects.put(self._name(image_id, f"original{suffix}"), data)

    def original(self, image_id: str) -> tuple[bytes, str]:
        for name in self.objects.names(self._name(image_id, "original.")):
            data = self.objects.get(name)
            if data is not None:
                return data, "." + name.rsplit(".", 1)[-1]
        raise NotFound(f"no image with id {image_id}: POST it to /censor first")

    # ---- records ----

    def _stored(self, image_id: str) -> tuple[int, ImageRecord] | None:
        with self.database.connect() as db:
            row = db.execute("SELECT version, record FROM records WHERE id = ?", (check_id(image_id),)).fetchone()
        return None if row is None else (row["version"], ImageRecord.model_validate_json(row["record"]))

    def record(self, image_id: str) -> ImageRecord | None:
        stored = self._stored(image_id)
        return None if stored is None else stored[1]

    def merge(self, record: ImageRecord) -> ImageRecord:
        """Store what `record` knows on top of what is stored; returns the merged record."""
        for _ in range(MOST_ATTEMPTS):
            stored = self._stored(record.id)
            if stored is None:
                merged, written = record, self._insert(record)
            else:
                version, current = stored
                merged = current.merged(record)
                written = merged == current or self._swap(merged, version)
            if written:
                break
        else:
            raise Unavailable(f"image {record.id} is being written by too many requests at once; try again")
        if (stored is None or merged != stored[1]) and self.index is not None:
            try:
                self.index.put(merged)
            except Exception:
                log.exception("the record index failed; the record itself is stored")
        return merged

    def _insert(self, record: ImageRecord) -> bool:
        with self.database.connect() as db:
            row = db.execute(
                "INSERT INTO records (id, version, record) VALUES (?, 1, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
                (record.id, record.model_dump_json()),
            ).fetchone()
        return row is not None

    def _swap(self, merged: ImageRecord, version: int) -> bool:
        with self.database.connect() as db:
            changed = db.execute(
                "UPDATE records SET record = ?, version = version + 1 WHERE id = ? AND version = ?",
                (merged.model_dump_json(), merged.id, version),
            ).rowcount
        return changed == 1

    def ids(self) -> Iterator[str]:
        with self.database.connect() as db:
            ids = [row[0] for row in db.execute("SELECT id FROM records")]
        yield from ids

    # ---- derived files ----

    def put_maps(self, image_id: str, name: str, maps: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, maps.astype(np.uint8), allow_pickle=False)
        self.objects.put(self._name(image_id, check_name(name)), buffer.getvalue())

    def maps(self, image_id: str, name: str) -> np.ndarray:
        data = self.objects.get(self._name(image_id, check_name(name)))
        if data is None:
            raise NotFound(f"image {image_id} has no segmentation {name}")
        return np.load(io.BytesIO(data), allow_pickle=False)

    def put_rendering(self, image_id: str, name: str, png: bytes) -> None:
        # Same name, same pixels: written only after `rendering` found none, so no need to ask first.
        self.objects.put(self._name(image_id, check_name(name)), png, "image/png")

    def rendering(self, image_id: str, name: str) -> bytes | None:
        return self.objects.get(self._name(image_id, check_name(name)))
