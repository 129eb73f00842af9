"""The SQLite files in the data directory (access, jobs, people, the gallery index), opened one way.

Each is private to the service (0600, its folder 0700), in WAL mode so readers never wait for
a writer, and used through short connections: one per unit of work, committed when it ends. A
full disk ("database or disk is full", or "disk I/O error" when WAL's shared memory cannot grow)
is a `StoreFull`, refused as the image store refuses it, until there is room again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import ClassVar, Self

from pipeline.errors import StoreFull


class Database:
    def __init__(self, path: Path, schema: str, *, durable: bool = True, full: str = "nothing was recorded"):
        """`schema`: CREATE ... IF NOT EXISTS statements. `durable=False` for what can be rebuilt
        from the records (no fsync per commit). `full`: what a full disk means, for the message."""
        self.path, self.durable, self.full = Path(path), durable, full
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.connect() as db:
            db.executescript("PRAGMA journal_mode = WAL;\n" + schema)
        self.path.chmod(0o600)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as db, db:  # The inner `with` commits.
                db.row_factory = sqlite3.Row
                if not self.durable:
                    db.execute("PRAGMA synchronous = NORMAL")
                yield db
        except sqlite3.OperationalError as error:
            if "full" in str(error) or "disk I/O" in str(error):
                raise StoreFull(f"the data directory is full: {self.full}; try again later") from None
            raise

    def add_columns(self, table: str, columns: dict[str, str]) -> None:
        """Columns added to `table` since some files were made (CREATE TABLE IF NOT EXISTS leaves an
        old table as it was): name -> type, each added if missing. Idempotent across processes."""
        with self.connect() as db:
            have = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    try:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError as error:
                        if "duplicate column" not in str(error):  # Another process added it first.
                            raise


class SQLiteStore:
    """A store kept in one SQLite file of the data directory: `FILE` names it, `SCHEMA` defines it,
    `COLUMNS` lists columns added since (table -> name -> type), added to older files on opening."""

    FILE: ClassVar[str]
    SCHEMA: ClassVar[str]
    COLUMNS: ClassVar[dict[str, dict[str, str]]] = {}

    def __init__(self, path: Path) -> None:
        self.database = Database(path, self.SCHEMA)
        for table, columns in self.COLUMNS.items():
            self.database.add_columns(table, columns)
        self.path = self.database.path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Self:
        return cls(Path(data_dir) / cls.FILE)
