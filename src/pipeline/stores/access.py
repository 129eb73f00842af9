"""API tokens with roles, and the audit log: `access.db` in the data directory.

    ingest    submit images (POST /censor, /censor/batch)
    analyst   read records, censored copies and masks; review; reveal an original (logged)
    annotator rank a pool of unlabelled images and give labels (POST /annotation/next, /labels)
    metrics   read /metrics, when GORE_METRICS_OPEN is false (a Prometheus scraper's token)
    admin     everything, and tokens and the audit log

Tokens are random, shown once, and stored as their SHA-256 (they carry 256 bits, so no slow
hash is needed), compared in constant time. The audit log records who did what to which image
and when: every original served, every review, every token made or revoked. Neither tokens nor
image bytes are ever logged. Which route needs which role: pipeline.serving.access.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from pipeline.stores.database import Connection, Row, TableStore
from pipeline.stores.records import utc_now

Role = Literal["ingest", "analyst", "annotator", "metrics", "admin"]
ROLES: tuple[Role, ...] = ("ingest", "analyst", "annotator", "metrics", "admin")
TOKEN_PREFIX = "gc_"
DATABASE = "access.db"


class Token(BaseModel):
    id: int
    name: str
    roles: list[Role]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


class NewToken(BaseModel):
    """A token as made: the secret is in this answer only."""

    token: Token
    secret: str = Field(description="Send as `Authorization: Bearer <secret>`; it is not stored and not shown again.")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="The token's or the user's name.")
    action: str
    image_id: str | None = None
    detail: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, roles TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    image_id TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS audit_image ON audit (image_id);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor);
"""


class AccessStore(TableStore):
    FILE, SCHEMA = DATABASE, SCHEMA

    # ---- tokens ----

    def create_token(self, name: str, roles: list[Role], created_by: str) -> NewToken:
        with self.database.connect() as db:
            made = self._insert_token(db, name, roles, created_by)
        self._created(made, created_by)
        return made

    def _insert_token(self, db: Connection, name: str, roles: list[Role], created_by: str) -> NewToken:
        if not roles or any(role not in ROLES for role in roles):
            raise ValueError(f"roles must be some of {', '.join(ROLES)}; got {roles}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = db.execute(
            "INSERT INTO tokens (name, roles, digest, created_at, created_by) VALUES (?, ?, ?, ?, ?) RETURNING *",
            (name, ",".join(sorted(set(roles))), _digest(secret), utc_now().isoformat(), created_by),
        ).fetchone()
        return NewToken(token=self._token(row), secret=secret)

    def _created(self, made: NewToken, by: str) -> None:
        token = made.token
        self.audit(by, "token created", detail=f"token {token.id} {token.name!r}: {', '.join(token.roles)}")

    def _token(self, row: Row) -> Token:
        return Token(
            id=row["id"],
            name=row["name"],
            roles=row["roles"].split(","),
            created_at=row["created_at"],
            created_by=row["created_by"],
            revoked_at=row["revoked_at"],
        )

    def token(self, token_id: int) -> Token:
        with self.database.connect() as db:
            row = db.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
        if row is None:
            raise KeyError(token_id)
        return self._token(row)

    def tokens(self) -> list[Token]:
        with self.database.connect() as db:
            return [self._token(row) for row in db.execute("SELECT * FROM tokens ORDER BY id")]

    def revoke(self, token_id: int, by: str) -> Token:
        with self.database.connect() as db:
            db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (utc_now().isoformat(), token_id),
            )
        token = self.token(token_id)
        self.audit(by, "token revoked", detail=f"token {token_id} {token.name!r}")
        return token

    def authenticate(self, secret: str) -> Token | None:
        """The live token with this secret, or None. The lookup is by digest; the final
        comparison is constant-time."""
        digest = _digest(secret)
        with self.database.connect() as db:
            row = db.execute("SELECT * FROM tokens WHERE digest = ? AND revoked_at IS NULL", (digest,)).fetchone()
        if row is None or not hmac.compare_digest(row["digest"], digest):
            return None
        return self._token(row)

    def ensure_first_admin(self) -> NewToken | None:
        """On a first start with no live token: an admin token, to be shown once. Replicas starting
        at once over one database take turns, so only one of them makes (and prints) it."""
        with self.database.connect() as db:
            db.lock("first admin")
            if db.execute("SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL").fetchone()[0]:
                return None
            made = self._insert_token(db, "first admin", ["admin"], "first start")
        self._created(made, "first start")
        return made

    # ---- audit log ----

    def audit(self, actor: str, action: str, image_id: str | None = None, detail: str | None = None) -> None:
        with self.database.connect() as db:
            db.execute(
                "INSERT INTO audit (at, actor, action, image_id, detail) VALUES (?, ?, ?, ?, ?)",
                (utc_now().isoformat(), actor, action, image_id, detail),
            )

    def audit_entries(
        self, *, image_id: str | None = None, actor: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        wanted = {column: value for column, value in (("image_id", image_id), ("actor", actor)) if value is not None}
        where = " WHERE " + " AND ".join(f"{column} = ?" for column in wanted) if wanted else ""
        with self.database.connect() as db:
            rows = db.execute(
                f"SELECT * FROM audit{where} ORDER BY id DESC LIMIT ?", (*wanted.values(), limit)
            ).fetchall()
        return [AuditEntry(**dict(row)) for row in rows]
