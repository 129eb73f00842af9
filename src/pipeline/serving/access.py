"""Who may do what: bearer API tokens with roles, and the audit log (SQLite, in the data directory).

    ingest    submit images (POST /censor, /censor/batch)
    analyst   read records, censored copies and masks; review; reveal an original (logged)
    annotator rank a pool of unlabelled images and give labels (POST /annotation/next, /labels)
    metrics   read /metrics, when GORE_METRICS_OPEN is false (a Prometheus scraper's token)
    admin     everything, and tokens and the audit log

Tokens are random, shown once, and stored as their SHA-256 (they carry 256 bits, so no slow
hash is needed), compared in constant time. Every route needs a token except the probes, the
metrics and the API description; a route nobody listed needs `admin` (deny by default). The
audit log records who did what to which image and when: every original served, every review,
every token made or revoked. Neither tokens nor image bytes are ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Literal

from anyio import to_thread
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.serving.database import Database
from pipeline.serving.records import utc_now

Role = Literal["ingest", "analyst", "annotator", "metrics", "admin"]
ROLES: tuple[Role, ...] = ("ingest", "analyst", "annotator", "metrics", "admin")
TOKEN_PREFIX = "gc_"
DATABASE = "access.db"
MOST_SECRET_CHARS = 200  # Ours are 46; a longer one is not worth a lookup.

# (method or "*", path pattern, roles any of which may); first match wins; None: open to all.
# Admin may everything. A route nobody listed needs admin: deny by default.
RULES: list[tuple[str, re.Pattern[str], tuple[Role, ...] | None]] = [
    (method, re.compile(pattern), roles)
    for method, pattern, roles in [
        ("*", r"/(readyz|livez|healthz|metrics|docs\.json)", None),  # Other methods: 405 from the route.
        ("*", r"/(docs)?|/static_content/.+", None),  # BentoML's API page: the description, no data.
        ("*", r"/app(/.*)?", None),  # The web app: people sign in there; it refuses signed-out visitors itself.
        ("POST", r"/censor(/batch)?", ("ingest",)),
        ("GET", r"/images/[^/]+(/(censored|mask|original))?", ("analyst",)),
        ("POST", r"/images/[^/]+/review", ("analyst",)),
        ("POST", r"/jobs/?|/jobs/[^/]+/cancel", ("ingest",)),
        ("GET", r"/jobs/?|/jobs/[^/]+(/items)?", ("ingest", "analyst")),
        ("POST", r"/annotation/(next|labels)", ("annotator",)),  # Reveal rates per annotator: admin.
        ("*", r"/admin(/.*)?", ("admin",)),
    ]
]


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


def allowed_roles(method: str, path: str, metrics_open: bool = True) -> tuple[Role, ...] | None:
    """The roles that may make this request (admin always may); None: anyone, without a token."""
    if path == "/metrics" and not metrics_open:
        return ("metrics",)
    for rule_method, pattern, roles in RULES:
        if rule_method in ("*", method) and pattern.fullmatch(path):
            return roles
    return ("admin",)


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


class AccessStore:
    def __init__(self, path: Path):
        self.database = Database(path, SCHEMA)
        self.path = self.database.path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> AccessStore:
        return cls(Path(data_dir) / DATABASE)

    def _connection(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.database.connect()

    # ---- tokens ----

    def create_token(self, name: str, roles: list[Role], created_by: str) -> NewToken:
        if not roles or any(role not in ROLES for role in roles):
            raise ValueError(f"roles must be some of {', '.join(ROLES)}; got {roles}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        at = utc_now()
        with self._connection() as db:
            cursor = db.execute(
                "INSERT INTO tokens (name, roles, digest, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                (name, ",".join(sorted(set(roles))), _digest(secret), at.isoformat(), created_by),
            )
            token_id = int(cursor.lastrowid)
        self.audit(created_by, "token created", detail=f"token {token_id} {name!r}: {', '.join(sorted(set(roles)))}")
        return NewToken(token=self.token(token_id), secret=secret)

    def _token(self, row: sqlite3.Row) -> Token:
        return Token(
            id=row["id"],
            name=row["name"],
            roles=row["roles"].split(","),
            created_at=row["created_at"],
            created_by=row["created_by"],
            revoked_at=row["revoked_at"],
        )

    def token(self, token_id: int) -> Token:
        with self._connection() as db:
            row = db.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
        if row is None:
            raise KeyError(token_id)
        return self._token(row)

    def tokens(self) -> list[Token]:
        with self._connection() as db:
            return [self._token(row) for row in db.execute("SELECT * FROM tokens ORDER BY id")]

    def revoke(self, token_id: int, by: str) -> Token:
        with self._connection() as db:
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
        with self._connection() as db:
            row = db.execute("SELECT * FROM tokens WHERE digest = ? AND revoked_at IS NULL", (digest,)).fetchone()
        if row is None or not hmac.compare_digest(row["digest"], digest):
            return None
        return self._token(row)

    def ensure_first_admin(self) -> NewToken | None:
        """On a first start with no live token: an admin token, to be shown once."""
        with self._connection() as db:
            live = db.execute("SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL").fetchone()[0]
        return None if live else self.create_token("first admin", ["admin"], created_by="first start")

    # ---- audit log ----

    def audit(self, actor: str, action: str, image_id: str | None = None, detail: str | None = None) -> None:
        with self._connection() as db:
            db.execute(
                "INSERT INTO audit (at, actor, action, image_id, detail) VALUES (?, ?, ?, ?, ?)",
                (utc_now().isoformat(), actor, action, image_id, detail),
            )

    def audit_entries(
        self, *, image_id: str | None = None, actor: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        wanted = {column: value for column, value in (("image_id", image_id), ("actor", actor)) if value is not None}
        where = " WHERE " + " AND ".join(f"{column} = ?" for column in wanted) if wanted else ""
        with self._connection() as db:
            rows = db.execute(
                f"SELECT * FROM audit{where} ORDER BY id DESC LIMIT ?", (*wanted.values(), limit)
            ).fetchall()
        return [AuditEntry(**dict(row)) for row in rows]


def principal(scope: Scope) -> Token:
    """The token a request came with (set by `AccessGuard`)."""
    return scope["state"]["principal"]


class AccessGuard:
    """ASGI middleware: 401 without a known token, 403 without the route's role."""

    def __init__(self, app: ASGIApp, store: AccessStore, metrics_open: bool = True) -> None:
        self.app, self.store, self.metrics_open = app, store, metrics_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        roles = allowed_roles(scope["method"], scope["path"], self.metrics_open)
        if roles is None:
            return await self.app(scope, receive, send)
        scheme, _, secret = Headers(scope=scope).get("authorization", "").partition(" ")
        secret = secret.strip()
        token = None
        if scheme.lower() == "bearer" and secret and len(secret) <= MOST_SECRET_CHARS:
            token = await to_thread.run_sync(self.store.authenticate, secret)  # SQLite: off the event loop.
        if token is None:
            error = "send a valid API token: `Authorization: Bearer <token>` (see README: access control)"
            headers = {"WWW-Authenticate": 'Bearer realm="gore-censor"'}
            return await JSONResponse({"error": error}, status_code=401, headers=headers)(scope, receive, send)
        if not set(roles) & set(token.roles) and "admin" not in token.roles:
            wanted = " or ".join(repr(role) for role in roles)
            error = f"this needs the {wanted} role; token {token.name!r} has {', '.join(token.roles)}"
            return await JSONResponse({"error": error}, status_code=403)(scope, receive, send)
        scope.setdefault("state", {})["principal"] = token
        await self.app(scope, receive, send)
