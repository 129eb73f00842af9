"""Hash lists: PDQ hashes of known content, imported from the field's exchanges or made here from
our own reviews (`hash_lists.db`, or the shared database's tables).

    hash_lists    one row per list: name, source, label (gore / not_gore / info), enabled
    list_hashes   the list's hashes, each with the tags it came with; for the reviews list, who
                  said what and when

A list's `version` grows whenever hashes are added to it; hashes are never taken out of a list
one by one (a list is replaced by deleting it), so a matcher that has read a list up to some row
catches up by reading the rows after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from pipeline.errors import Conflict, InvalidRequest, NotFound
from pipeline.stores.database import TableStore
from pipeline.stores.records import Verdict, utc_now

DATABASE = "hash_lists.db"
ListLabel = Literal["gore", "not_gore", "info"]
LABELS: tuple[ListLabel, ...] = ("gore", "not_gore", "info")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
"""A list's name: it is part of URLs (/admin/hash-lists/<name>) and of answers."""
REVIEWS = "reviews"
"""The list this deployment keeps of its own reviews (made on the first review)."""


class HashList(BaseModel):
    id: int
    name: str = Field(description="Unique; how answers and pages name the list.")
    source: str = Field(description="Where it came from (an exchange, a partner, this deployment).")
    label: ListLabel = Field(
        description="gore: a match makes an image gore; not_gore and info: shown to reviewers, never uncensor."
    )
    tags: list[str] = Field(default_factory=list, description="Other labels the list came with.")
    enabled: bool
    kind: Literal["imported", "reviews"]
    created_at: datetime
    created_by: str
    size: int = Field(description="Hashes in the list.")
    version: int = Field(description="Grows whenever hashes are added.")


class ListEntry(BaseModel):
    """One hash of a list, as read from or written to an exchange file."""

    hash: str = Field(description="PDQ hash, 64 hexadecimal digits.")
    tags: list[str] = Field(default_factory=list)
    label: ListLabel | None = Field(None, description="This hash's own label (reviews); else the list's.")
    by: str | None = Field(None, description="Who reviewed it (the reviews list).")
    at: datetime | None = Field(None, description="When it was added or reviewed.")
    image_id: str | None = Field(None, description="The reviewed image (the reviews list).")
    indicator_id: str | None = Field(None, description="The exchange's id for this hash, kept for export.")


class KnownMatch(BaseModel):
    """An image's hash is near one on a list."""

    list_name: str = Field(description="The list's name.")
    source: str
    label: ListLabel
    distance: int = Field(description="Bits apart (PDQ, 0 to 31).")
    tags: list[str] = Field(default_factory=list)
    by: str | None = Field(None, description="Who reviewed the listed image (our reviews list).")
    at: datetime | None = None
    image_id: str | None = Field(None, description="The listed image, when it is one of ours.")

    @property
    def says(self) -> str:
        """How a page says it: 'reviewed as gore by ana on 2026-12-01' or 'on list X (gore)'."""
        verdict = self.label.replace("_", " ")
        if self.by:
            when = f" on {self.at:%Y-%m-%d}" if self.at else ""
            return f"reviewed as {verdict} by {self.by}{when}"
        return f"on list {self.list_name} ({verdict})"


# AUTOINCREMENT: SQLite would give a deleted list's ids (and its rows' ids) to the next one, and a
# matcher that had read the old list would take the new one for what it had read.
SCHEMA = """
CREATE TABLE IF NOT EXISTS hash_lists (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, source TEXT NOT NULL, label TEXT NOT NULL,
    tags TEXT NOT NULL, enabled INTEGER NOT NULL, kind TEXT NOT NULL, created_at TEXT NOT NULL,
    created_by TEXT NOT NULL, size INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS list_hashes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, list_id INTEGER NOT NULL, hash TEXT NOT NULL, tags TEXT NOT NULL,
    label TEXT, by_name TEXT, at TEXT, image_id TEXT, indicator_id TEXT, UNIQUE (list_id, hash));
"""


def _tags(text: str) -> list[str]:
    return [t for t in text.split(" ") if t]


def _list(row) -> HashList:
    return HashList(**{**dict(row), "tags": _tags(row["tags"]), "enabled": bool(row["enabled"])})


def _entry(row) -> ListEntry:
    return ListEntry(
        hash=row["hash"],
        tags=_tags(row["tags"]),
        label=row["label"],
        by=row["by_name"],
        at=row["at"],
        image_id=row["image_id"],
        indicator_id=row["indicator_id"],
    )


def _clean_tags(tags: Iterable[str]) -> str:
    return " ".join(dict.fromkeys(_text(t.strip()[:100], "a tag") for t in tags if t.strip()))


def _text(value: str | None, what: str) -> str | None:
    """Text as both databases keep it: PostgreSQL refuses a NUL character, so both modes do."""
    if value is not None and "\x00" in value:
        raise InvalidRequest(f"{what} holds a NUL character")
    return value


class HashLists(TableStore):
    FILE, SCHEMA = DATABASE, SCHEMA

    # ---- lists ----

    def lists(self) -> list[HashList]:
        with self.database.connect() as db:
            return [_list(row) for row in db.execute("SELECT * FROM hash_lists ORDER BY name")]

    def get(self, name: str) -> HashList:
        with self.database.connect() as db:
            row = db.execute("SELECT * FROM hash_lists WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no hash list named {name!r}")
        return _list(row)

    def versions(self) -> dict[int, tuple[int, bool]]:
        """Each list's id -> (version, enabled): what a matcher polls."""
        with self.database.connect() as db:
            rows = db.execute("SELECT id, version, enabled FROM hash_lists").fetchall()
        return {row["id"]: (row["version"], bool(row["enabled"])) for row in rows}

    def create(
        self,
        name: str,
        source: str,
        label: ListLabel,
        entries: Iterable[ListEntry],
        *,
        by: str,
        tags: Iterable[str] = (),
        enabled: bool = True,
        kind: Literal["imported", "reviews"] = "imported",
    ) -> HashList:
        """A new list with its hashes, in one transaction: a list is there whole or not at all."""
        source = source.strip()
        if not re.fullmatch(NAME, name):
            raise InvalidRequest(
                "a hash list's name is 1 to 100 letters, digits, '.', '_' or '-' (a letter or digit first)"
            )
        if not source or len(source) > 200:
            raise InvalidRequest("a hash list needs a source of 1 to 200 characters")
        _text(source, "the source")
        if label not in LABELS:
            raise InvalidRequest(f"a hash list's label is one of {', '.join(LABELS)}, not {label!r}")
        with self.database.connect() as db:
            db.lock("hash_lists")
            if db.execute("SELECT 1 FROM hash_lists WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"there is already a hash list named {name!r}: delete it first to replace it")
            list_id = db.execute(
                "INSERT INTO hash_lists (name, source, label, tags, enabled, kind, created_at, created_by, size, "
                "version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0) RETURNING id",
                (name, source, label, _clean_tags(tags), int(enabled), kind, utc_now().isoformat(), by),
            ).fetchone()[0]
            self._insert(db, list_id, entries)
        return self.get(name)

    def set_enabled(self, name: str, enabled: bool) -> HashList:
        found = self.get(name)
        with self.database.connect() as db:
            db.execute("UPDATE hash_lists SET enabled = ? WHERE id = ?", (int(enabled), found.id))
        return self.get(name)

    def delete(self, name: str) -> HashList:
        found = self.get(name)
        with self.database.connect() as db:
            db.execute("DELETE FROM list_hashes WHERE list_id = ?", (found.id,))
            db.execute("DELETE FROM hash_lists WHERE id = ?", (found.id,))
        return found

    # ---- hashes ----

    @staticmethod
    def _insert(db, list_id: int, entries: Iterable[ListEntry], chunk: int = 5000) -> None:
        rows: list[tuple] = []

        def flush() -> None:
            db.executemany(
                "INSERT INTO list_hashes (list_id, hash, tags, label, by_name, at, image_id, indicator_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (list_id, hash) DO NOTHING",
                rows,
            )
            rows.clear()

        for e in entries:
            at = e.at.isoformat() if e.at else None
            by, image_id, indicator_id = (_text(v, "an entry") for v in (e.by, e.image_id, e.indicator_id))
            rows.append((list_id, e.hash, _clean_tags(e.tags), e.label, by, at, image_id, indicator_id))
            if len(rows) >= chunk:
                flush()
        flush()
        db.execute(
            "UPDATE hash_lists SET version = version + 1, "
            "size = (SELECT COUNT(*) FROM list_hashes WHERE list_id = ?) WHERE id = ?",
            (list_id, list_id),
        )

    def hashes_after(self, list_id: int, after: int, most: int = 100_000) -> list[tuple[int, str]]:
        """(row id, hash) of the list's rows after row `after`, in order: how a matcher catches up."""
        with self.database.connect() as db:
            rows = db.execute(
                "SELECT id, hash FROM list_hashes WHERE list_id = ? AND id > ? ORDER BY id LIMIT ?",
                (list_id, after, most),
            ).fetchall()
        return [(row["id"], row["hash"]) for row in rows]

    def matched(self, found: dict[int, int], most: int, chunk: int = 500) -> list[KnownMatch]:
        """Row id -> distance, as matches with their lists' names and labels: the `most` nearest,
        gore first at a tie. Every row is read (in chunks, within SQLite's limit on parameters),
        so a gore match is never left out for closer ones of other labels."""
        if not found:
            return []
        rows: list = []
        ids = list(found)
        with self.database.connect() as db:
            for start in range(0, len(ids), chunk):
                part = ids[start : start + chunk]
                rows += db.execute(
                    "SELECT h.id AS row_id, h.tags AS entry_tags, h.label AS entry_label, h.by_name, h.at, "
                    "h.image_id, l.name, l.source, l.label, l.tags FROM list_hashes h "
                    f"JOIN hash_lists l ON l.id = h.list_id WHERE h.id IN ({', '.join('?' * len(part))}) "
                    "AND l.enabled = 1",
                    tuple(part),
                ).fetchall()
        matches = [
            KnownMatch(
                list_name=row["name"],
                source=row["source"],
                label=row["entry_label"] or row["label"],
                distance=found[row["row_id"]],
                tags=list(dict.fromkeys(_tags(row["tags"]) + _tags(row["entry_tags"]))),
                by=row["by_name"],
                at=row["at"],
                image_id=row["image_id"],
            )
            for row in rows
        ]

        def order(m: KnownMatch) -> tuple:
            return m.distance, m.label != "gore", m.list_name

        nearest = sorted(matches, key=order)
        kept, gore = nearest[:most], next((m for m in nearest if m.label == "gore"), None)
        if gore is not None and all(m.label != "gore" for m in kept):  # The one that makes it gore stays.
            kept = sorted([*kept[: most - 1], gore], key=order)
        return kept

    def entries(self, name: str, label: ListLabel | None = None) -> Iterator[ListEntry]:
        """The list's hashes in the order they came (for export), `label` ones only when given."""
        found = self.get(name)
        after = 0
        while True:
            with self.database.connect() as db:
                rows = db.execute(
                    "SELECT * FROM list_hashes WHERE list_id = ? AND id > ? ORDER BY id LIMIT 5000", (found.id, after)
                ).fetchall()
            if not rows:
                return
            after = rows[-1]["id"]
            for row in rows:
                entry = _entry(row)
                if label is None or (entry.label or found.label) == label:
                    yield entry

    # ---- our own reviews ----

    def remember_review(self, pdq: str, verdict: Verdict, by: str, at: datetime, image_id: str) -> None:
        """A review joins the reviews list (made on first use). A hash reviewed again takes the
        latest verdict, except that another image's "not gore" never undoes a "gore" (fail closed:
        only a review of the same image corrects it)."""
        with self.database.connect() as db:
            db.lock("hash_lists")
            row = db.execute("SELECT id FROM hash_lists WHERE name = ?", (REVIEWS,)).fetchone()
            if row is None:
                list_id = db.execute(
                    "INSERT INTO hash_lists (name, source, label, tags, enabled, kind, created_at, created_by, size, "
                    "version) VALUES (?, 'this deployment', 'info', '', 1, 'reviews', ?, 'gore-censor', 0, 0) "
                    "RETURNING id",
                    (REVIEWS, utc_now().isoformat()),
                ).fetchone()[0]
            else:
                list_id = row["id"]
            db.execute(
                "INSERT INTO list_hashes (list_id, hash, tags, label, by_name, at, image_id) "
                "VALUES (?, ?, '', ?, ?, ?, ?) ON CONFLICT (list_id, hash) DO UPDATE SET label = excluded.label, "
                "by_name = excluded.by_name, at = excluded.at, image_id = excluded.image_id WHERE "
                "list_hashes.label <> 'gore' OR excluded.label = 'gore' OR list_hashes.image_id = excluded.image_id",
                (list_id, pdq, verdict, by, at.isoformat(), image_id),
            )
            db.execute(
                "UPDATE hash_lists SET version = version + 1, "
                "size = (SELECT COUNT(*) FROM list_hashes WHERE list_id = ?) WHERE id = ?",
                (list_id, list_id),
            )
