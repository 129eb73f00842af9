"""The gallery index: one row per image record, for listing a collection fast.

The records (`images/<id>/record.json`, or the shared mode's records table) are the truth; this
index (`index.db` in the data directory, or a table of the shared database) is derived from them:
kept up to date as records are merged (the image store tells it), caught up with records written
elsewhere when a process first lists, and rebuilt whole by `gore-censor index rebuild`. Pages are
found by keyset (newest first, by when an image was first seen, then id), never by OFFSET, so page
1,000 costs what page 1 costs.

The index only orders and filters. Whether an image is shown blurred is decided again from its
record each time a thumbnail is made (fail closed: a stale index cannot unblur anything).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from pipeline.errors import InvalidRequest
from pipeline.stores.database import Row, open_database
from pipeline.stores.images import ImageStore
from pipeline.stores.records import Analysis, ImageRecord, Verdict

DATABASE = "index.db"
Filter = Literal["all", "gore", "not_gore", "reviewed", "unreviewed"]
FILTERS: dict[Filter, str] = {
    "all": "all",
    "gore": "gore",
    "not_gore": "not gore",
    "reviewed": "reviewed",
    "unreviewed": "not reviewed",
}
WHERE: dict[Filter, str] = {
    "all": "",
    "gore": "verdict = 'gore'",
    "not_gore": "verdict = 'not_gore'",
    "reviewed": "reviewed = 1",
    "unreviewed": "reviewed = 0",
}
_CURSOR = re.compile(r"^(\d{1,20})\.([0-9a-f]{64})$")
U64 = 1 << 64


class IndexRow(BaseModel):
    id: str
    filename: str
    first_seen: datetime
    gore_probability: float
    model_gore: bool = Field(description="The models' verdict at the deployment's threshold when indexed.")
    verdict: Verdict = Field(description="The latest review's verdict, else the models'.")
    reviewed: bool
    pdq: str | None = Field(None, description="The image's PDQ hash when good enough to match (quality > 49).")

    @property
    def cursor(self) -> str:
        return f"{_micros(self.first_seen)}.{self.id}"


class Page(BaseModel):
    rows: list[IndexRow]
    newer: str | None = Field(description="Cursor of the page before (newer images), if any.")
    older: str | None = Field(description="Cursor of the page after (older images), if any.")


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _signed(phash: str) -> int:
    """A 64-bit hash as a signed 64-bit INTEGER (SQLite) or BIGINT (PostgreSQL)."""
    value = int(phash, 16) % U64
    return value - U64 if value >= 1 << 63 else value


def parse_cursor(cursor: str) -> tuple[int, str]:
    found = _CURSOR.fullmatch(cursor)
    if found is None:
        raise InvalidRequest("that page link is not valid; start from the first page")
    return int(found.group(1)), found.group(2)


SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, filename TEXT NOT NULL, seq INTEGER NOT NULL,
    gore_probability REAL NOT NULL, model_gore INTEGER NOT NULL, verdict TEXT NOT NULL,
    reviewed INTEGER NOT NULL, phash INTEGER NOT NULL, pdq TEXT);
CREATE INDEX IF NOT EXISTS by_time ON images (seq, id);
CREATE INDEX IF NOT EXISTS by_verdict ON images (verdict, seq, id);
CREATE INDEX IF NOT EXISTS by_reviewed ON images (reviewed, seq, id);
"""


class GalleryIndex:
    def __init__(self, where: Path | str, threshold_for: Callable[[Analysis], float]):
        """`where`: the SQLite file, or the shared database's URL."""
        # The records are the truth and the index is rebuilt from them, so a power cut may lose
        # its last rows: no fsync per write on the censoring path (WAL keeps the file whole).
        self.database = open_database(where, SCHEMA, durable=False, full="the gallery index cannot grow")
        self.database.add_columns("images", {"pdq": "TEXT"})  # Indexes made before PDQ.
        self.path = getattr(self.database, "path", None)
        self.threshold_for = threshold_for
        """The deployment's gore threshold for an analysis (the gallery's verdicts use it)."""

    @classmethod
    def in_data_dir(cls, data_dir: Path, threshold_for: Callable[[Analysis], float]) -> GalleryIndex:
        return cls(Path(data_dir) / DATABASE, threshold_for)

    @classmethod
    def open(
        cls, data_dir: Path, threshold_for: Callable[[Analysis], float], database_url: str | None = None
    ) -> GalleryIndex:
        return cls(database_url, threshold_for) if database_url else cls.in_data_dir(data_dir, threshold_for)

    # ---- writing ----

    def _values(self, record: ImageRecord) -> tuple | None:
        analysis = record.latest_analysis()
        if analysis is None:
            return None
        model_gore = analysis.gore_probability >= self.threshold_for(analysis)
        review = record.latest_review()
        verdict = review.verdict if review else ("gore" if model_gore else "not_gore")
        return (
            record.id,
            record.filename,
            _micros(record.first_seen),
            analysis.gore_probability,
            int(model_gore),
            verdict,
            int(review is not None),
            _signed(record.phash or "0"),
            record.pdq.hash if record.pdq is not None and record.pdq.matchable else None,
        )

    def put_many(self, records: Iterable[ImageRecord]) -> int:
        rows = [values for values in map(self._values, records) if values is not None]
        with self.database.connect() as db:
            db.executemany(
                "INSERT INTO images (id, filename, seq, gore_probability, model_gore, verdict, reviewed, phash, pdq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "filename = excluded.filename, seq = excluded.seq, gore_probability = excluded.gore_probability, "
                "model_gore = excluded.model_gore, verdict = excluded.verdict, reviewed = excluded.reviewed, "
                "phash = excluded.phash, pdq = excluded.pdq",
                rows,
            )
        return len(rows)

    def put(self, record: ImageRecord) -> None:
        self.put_many([record])

    def rebuild(self, store: ImageStore, chunk: int = 2000) -> int:
        """Every record again, from nothing."""
        with self.database.connect() as db:
            db.execute("DELETE FROM images")
        return self._add(store, store.ids(), chunk)

    def catch_up(self, store: ImageStore, chunk: int = 2000) -> int:
        """Records the index does not know yet (written by another program, or before it existed)."""
        with self.database.connect() as db:
            known = {row[0] for row in db.execute("SELECT id FROM images")}
        return self._add(store, (i for i in store.ids() if i not in known), chunk)

    def _add(self, store: ImageStore, ids: Iterable[str], chunk: int) -> int:
        added, batch = 0, []
        for image_id in ids:
            record = store.record(image_id)
            if record is not None:
                batch.append(record)
            if len(batch) >= chunk:
                added, batch = added + self.put_many(batch), []
        return added + self.put_many(batch)

    # ---- reading ----

    def count(self, kind: Filter = "all", search: str = "") -> int:
        conditions, args = self._conditions(kind, search)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self.database.connect() as db:
            return db.execute(f"SELECT COUNT(*) FROM images {where}", args).fetchone()[0]

    @staticmethod
    def _row(row: Row) -> IndexRow:
        return IndexRow(
            id=row["id"],
            filename=row["filename"],
            first_seen=datetime.fromtimestamp(row["seq"] / 1_000_000, tz=UTC),
            gore_probability=row["gore_probability"],
            model_gore=bool(row["model_gore"]),
            verdict=row["verdict"],
            reviewed=bool(row["reviewed"]),
            pdq=row["pdq"],
        )

    @staticmethod
    def _conditions(kind: Filter, search: str) -> tuple[list[str], list]:
        conditions, args = ([WHERE[kind]] if WHERE[kind] else []), []
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append("lower(filename) LIKE lower(?) ESCAPE '\\'")  # Case-insensitive, in both.
            args.append(f"%{escaped}%")
        return conditions, args

    def page(
        self, kind: Filter = "all", search: str = "", *, after: str | None = None, before: str | None = None, size: int
    ) -> Page:
        """`size` rows, newest first: the first page, the one after cursor `after` (older), or the
        one before cursor `before` (newer)."""
        conditions, args = self._conditions(kind, search)
        order = "DESC"
        if after is not None:
            conditions.append("(seq, id) < (?, ?)")
            args += parse_cursor(after)
        elif before is not None:
            conditions.append("(seq, id) > (?, ?)")
            args += parse_cursor(before)
            order = "ASC"
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        query = f"SELECT * FROM images {where} ORDER BY seq {order}, id {order} LIMIT ?"
        with self.database.connect() as db:
            found = [self._row(row) for row in db.execute(query, (*args, size + 1))]
        more = len(found) > size
        found = found[:size]
        if before is not None:
            found.reverse()
            return Page(rows=found, newer=found[0].cursor if more else None, older=found[-1].cursor if found else None)
        newer = found[0].cursor if after is not None and found else None
        return Page(rows=found, newer=newer, older=found[-1].cursor if more else None)

    def neighbour(self, image_id: str, kind: Filter = "all", search: str = "", older: bool = True) -> str | None:
        """The id of the next image in the gallery's order after (older) or before (newer) this one."""
        with self.database.connect() as db:
            row = db.execute("SELECT seq FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            return None
        cursor = f"{row['seq']}.{image_id}"
        page = self.page(kind, search, **({"after": cursor} if older else {"before": cursor}), size=1)
        return page.rows[0].id if page.rows else None

    def near_duplicates(self, record: ImageRecord, phash_distance: int, pdq_distance: int = 31) -> list[str]:
        """Ids of the record's near-duplicates (itself included), nearest first: by PDQ when the
        record has a PDQ hash good enough to match, else (records from before PDQ) by pHash."""
        if record.pdq is not None and record.pdq.matchable:
            return self.near_by_pdq(record.pdq.hash, pdq_distance)
        return self.near_by_phash(record.phash, phash_distance)

    def near_by_pdq(self, pdq: str, distance: int, most: int = 1000) -> list[str]:
        """Ids whose PDQ hash differs from `pdq` in at most `distance` bits, nearest first."""
        target = int(pdq, 16)
        with self.database.connect() as db:
            if db.dialect == "sqlite":
                db.raw.create_function(
                    "pdq_apart", 1, lambda p: (int(p, 16) ^ target).bit_count() if p else 999, deterministic=True
                )
                rows = db.execute(
                    "SELECT id, pdq_apart(pdq) AS d FROM images WHERE pdq IS NOT NULL AND pdq_apart(pdq) <= ? "
                    "ORDER BY d, id LIMIT ?",
                    (distance, most),
                ).fetchall()
            else:  # PostgreSQL 14+: the two hashes as bit(256), XOR, set bits counted.
                apart = "bit_count(('x' || pdq)::bit(256) # ('x' || ?)::bit(256))"
                rows = db.execute(
                    f"SELECT id, {apart} AS d FROM images WHERE pdq IS NOT NULL AND {apart} <= ? "
                    "ORDER BY d, id LIMIT ?",
                    (pdq, pdq, distance, most),
                ).fetchall()
        return [row["id"] for row in rows]

    def near_by_phash(self, phash: str, distance: int, most: int = 1000) -> list[str]:
        """Ids whose 64-bit pHash differs from `phash` in at most `distance` bits (itself included),
        nearest first. Every hash is compared inside the database, so only the matches come back."""
        target = int(phash, 16) % U64
        with self.database.connect() as db:
            if db.dialect == "sqlite":
                db.raw.create_function("bits_apart", 1, lambda p: ((p % U64) ^ target).bit_count(), deterministic=True)
                rows = db.execute(
                    "SELECT id, bits_apart(phash) AS d FROM images WHERE bits_apart(phash) <= ? ORDER BY d, id LIMIT ?",
                    (distance, most),
                ).fetchall()
            else:  # PostgreSQL 14+: XOR of the two BIGINTs, its set bits counted.
                rows = db.execute(
                    "SELECT id, bit_count((phash # ?)::bit(64)) AS d FROM images "
                    "WHERE bit_count((phash # ?)::bit(64)) <= ? ORDER BY d, id LIMIT ?",
                    (_signed(phash), _signed(phash), distance, most),
                ).fetchall()
        return [row["id"] for row in rows]
