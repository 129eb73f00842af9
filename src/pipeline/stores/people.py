"""People who sign in to the web app: users, their sessions, confirmed reveals and exposure.

Kept in the access database (`access.db`) beside the API tokens. A session is a random 256-bit
secret in an HttpOnly cookie, stored here as its SHA-256 (as tokens are): signing out, expiry or
disabling the user ends it at once, because every request looks its row up. Each session has
its own CSRF token. A reveal of an original is granted to one session for one image for a few
minutes, after an explicit confirmation. Exposure is counted per user per day (UTC): what a
person actually saw of the graphic material.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, datetime, timedelta

import numpy as np
from pydantic import BaseModel, Field

from pipeline.stores.access import DATABASE, ROLES, Role
from pipeline.stores.database import Duplicate, Row, TableStore
from pipeline.stores.passwords import DECOY, hash_password, verify_password
from pipeline.stores.records import utc_now

MAX_FAILURES, LOCK_MINUTES = 10, 15  # Then sign-in for that name waits: guessing stays slow.
MOST_PATCHES = 200  # Distinct areas one person may uncover of one image before confirming (and the budget).


class User(BaseModel):
    id: int
    name: str
    roles: list[Role]
    created_at: datetime
    created_by: str
    disabled_at: datetime | None = None
    blur_strength: int | None = Field(None, ge=0, le=100, description="Their own thumbnail blur; None: the default.")

    def may(self, *roles: Role) -> bool:
        return "admin" in self.roles or bool(set(roles) & set(self.roles))

    @property
    def start_page(self) -> str:
        """Where they land after signing in: the first page their roles open."""
        for role, page in (("analyst", "/gallery"), ("ingest", "/upload"), ("annotator", "/label")):
            if self.may(role):
                return page
        return "/settings"

    @property
    def actor(self) -> str:
        """How the audit log names them: apart from API tokens of the same name."""
        return f"web:{self.name}"


class Person(BaseModel):
    """A signed-in request's user and session."""

    user: User
    session_id: int
    csrf: str


class ExposureDay(BaseModel):
    user: str
    day: date
    blurred: int = Field(description="Originals shown blurred and greyed.")
    originals: int = Field(description="Originals revealed sharp, after confirmation.")
    patches: int = Field(description="Areas of censored regions revealed by press-and-hold.")
    patched_images: int = Field(0, description="Images some area of which was revealed by press-and-hold.")
    gore_pixels: int = Field(description="Censored (likely-gore) pixels those reveals uncovered, in original pixels.")
    blurred_seconds: float = Field(0.0, description="Seconds of video gore segments shown blurred and greyed.")
    gore_seconds: float = Field(0.0, description="Seconds of video gore segments revealed sharp, after confirmation.")
    avoided: int = Field(0, description="Reveals avoided: reviews given from a hash list's match, nothing revealed.")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE, roles TEXT NOT NULL,
    password TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL, disabled_at TEXT,
    blur_strength INTEGER, failures INTEGER NOT NULL DEFAULT 0, locked_until TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS users_name ON users (lower(name));
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, digest TEXT NOT NULL UNIQUE, user_id INTEGER NOT NULL, csrf TEXT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, ended_at TEXT);
CREATE TABLE IF NOT EXISTS reveals (
    session_id INTEGER NOT NULL, image_id TEXT NOT NULL, until TEXT NOT NULL,
    PRIMARY KEY (session_id, image_id));
CREATE TABLE IF NOT EXISTS patches (
    user_id INTEGER NOT NULL, image_id TEXT NOT NULL, at TEXT NOT NULL,
    left_px INTEGER NOT NULL, top_px INTEGER NOT NULL, width_px INTEGER NOT NULL, height_px INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS patches_user_image ON patches (user_id, image_id);
CREATE TABLE IF NOT EXISTS exposure (
    user_id INTEGER NOT NULL, day TEXT NOT NULL, blurred INTEGER NOT NULL DEFAULT 0,
    originals INTEGER NOT NULL DEFAULT 0, patches INTEGER NOT NULL DEFAULT 0,
    gore_pixels INTEGER NOT NULL DEFAULT 0, avoided INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (user_id, day));
CREATE TABLE IF NOT EXISTS video_exposure (
    user_id INTEGER NOT NULL, day TEXT NOT NULL, blurred_seconds REAL NOT NULL DEFAULT 0,
    gore_seconds REAL NOT NULL DEFAULT 0, PRIMARY KEY (user_id, day));
"""


class People(TableStore):
    FILE, SCHEMA = DATABASE, SCHEMA
    COLUMNS = {"exposure": {"avoided": "INTEGER NOT NULL DEFAULT 0"}}

    # ---- users ----

    @staticmethod
    def _user(row: Row) -> User:
        return User(
            id=row["id"],
            name=row["name"],
            roles=row["roles"].split(","),
            created_at=row["created_at"],
            created_by=row["created_by"],
            disabled_at=row["disabled_at"],
            blur_strength=row["blur_strength"],
        )

    def create_user(self, name: str, roles: list[Role], password: str, created_by: str) -> User:
        name = name.strip()
        if not 1 <= len(name) <= 100 or any(c in name for c in "\r\n\t"):
            raise ValueError("a user name is 1 to 100 characters on one line")
        if not roles or any(role not in ROLES for role in roles):
            raise ValueError(f"roles must be some of {', '.join(ROLES)}; got {roles}")
        hashed = hash_password(password)
        try:
            with self.database.connect() as db:
                user_id = db.execute(
                    "INSERT INTO users (name, roles, password, created_at, created_by) VALUES (?, ?, ?, ?, ?) "
                    "RETURNING id",
                    (name, ",".join(sorted(set(roles))), hashed, utc_now().isoformat(), created_by),
                ).fetchone()[0]
        except Duplicate:
            raise ValueError(f"there is already a user called {name!r}") from None
        return self.user(user_id)

    def user(self, user_id: int) -> User:
        with self.database.connect() as db:
            row = db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            raise KeyError(user_id)
        return self._user(row)

    def user_named(self, name: str) -> User:
        with self.database.connect() as db:
            row = db.execute("SELECT * FROM users WHERE lower(name) = lower(?)", (name.strip(),)).fetchone()
        if row is None:
            raise KeyError(name)
        return self._user(row)

    def users(self) -> list[User]:
        with self.database.connect() as db:
            return [self._user(row) for row in db.execute("SELECT * FROM users ORDER BY lower(name)")]

    def set_disabled(self, user_id: int, disabled: bool) -> User:
        """Disabling ends every session of the user at once."""
        now = utc_now().isoformat()
        with self.database.connect() as db:
            db.execute("UPDATE users SET disabled_at = ? WHERE id = ?", (now if disabled else None, user_id))
            if disabled:
                db.execute("UPDATE sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL", (now, user_id))
        return self.user(user_id)

    def check_password(self, user_id: int, password: str) -> bool:
        with self.database.connect() as db:
            row = db.execute("SELECT password FROM users WHERE id = ?", (user_id,)).fetchone()
        return row is not None and verify_password(password, row["password"])

    def set_password(self, user_id: int, password: str) -> None:
        """A new password ends every other sign-in: whoever knew the old one is out."""
        hashed = hash_password(password)
        with self.database.connect() as db:
            db.execute(
                "UPDATE users SET password = ?, failures = 0, locked_until = NULL WHERE id = ?", (hashed, user_id)
            )
            db.execute(
                "UPDATE sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL",
                (utc_now().isoformat(), user_id),
            )

    def set_blur_strength(self, user_id: int, strength: int) -> None:
        if not 0 <= strength <= 100:
            raise ValueError("blur strength is 0 to 100")
        with self.database.connect() as db:
            db.execute("UPDATE users SET blur_strength = ? WHERE id = ?", (strength, user_id))

    # ---- sessions ----

    def sign_in(self, name: str, password: str, hours: float) -> tuple[str, User] | None:
        """A new session's secret and its user, or None: unknown name, wrong password, disabled, or
        locked after MAX_FAILURES failures. All four cost one password hash and look alike.

        The attempt is counted *before* the slow hash, in one UPDATE that increments and returns
        the count: parallel guesses each get their own number, and those past MAX_FAILURES are
        refused whatever the password. A success sets the count back to 0."""
        now = utc_now()
        with self.database.connect() as db:
            # A lock that has run out starts the count afresh.
            row = db.execute(
                "UPDATE users SET "
                "failures = CASE WHEN locked_until <= :now THEN 1 ELSE failures + 1 END, "
                "locked_until = CASE WHEN locked_until <= :now THEN NULL ELSE locked_until END "
                "WHERE lower(name) = lower(:name) RETURNING *",
                {"now": now.isoformat(), "name": name.strip()},
            ).fetchone()
        if row is None:
            verify_password(password, DECOY)  # Same work as a known name.
            return None
        attempt = row["failures"]
        if attempt > MAX_FAILURES:
            verify_password(password, DECOY)  # Same work as a wrong password; the answer is the same too.
            self._lock(row["id"], now)
            return None
        if not verify_password(password, row["password"]) or row["disabled_at"] is not None:
            if attempt >= MAX_FAILURES:
                self._lock(row["id"], now)
            return None
        secret = secrets.token_urlsafe(32)
        with self.database.connect() as db:
            # Sessions that can never be used again, and their reveals, are dropped as new ones start.
            db.execute(
                "DELETE FROM reveals WHERE session_id IN "
                "(SELECT id FROM sessions WHERE ended_at IS NOT NULL OR expires_at < ?)",
                (now.isoformat(),),
            )
            db.execute("DELETE FROM sessions WHERE ended_at IS NOT NULL OR expires_at < ?", (now.isoformat(),))
            db.execute("UPDATE users SET failures = 0, locked_until = NULL WHERE id = ?", (row["id"],))
            db.execute(
                "INSERT INTO sessions (digest, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (
                    _digest(secret),
                    row["id"],
                    secrets.token_urlsafe(32),
                    now.isoformat(),
                    (now + timedelta(hours=hours)).isoformat(),
                ),
            )
        return secret, self._user(row)

    def _lock(self, user_id: int, now: datetime) -> None:
        """Locked for LOCK_MINUTES from the failure that reached the limit (not extended by later ones)."""
        until = (now + timedelta(minutes=LOCK_MINUTES)).isoformat()
        with self.database.connect() as db:
            db.execute("UPDATE users SET locked_until = COALESCE(locked_until, ?) WHERE id = ?", (until, user_id))

    def unlock(self, user_id: int) -> None:
        """Sign-in open again at once (an admin locked out by guesses; `gore-censor users unlock`)."""
        with self.database.connect() as db:
            db.execute("UPDATE users SET failures = 0, locked_until = NULL WHERE id = ?", (user_id,))

    def person(self, secret: str) -> Person | None:
        """The live session with this secret and its enabled user, or None."""
        if not secret or len(secret) > 200:
            return None
        digest = _digest(secret)
        with self.database.connect() as db:
            row = db.execute(
                "SELECT s.id AS session_id, s.digest, s.csrf, s.expires_at, u.* FROM sessions s "
                "JOIN users u ON u.id = s.user_id WHERE s.digest = ? AND s.ended_at IS NULL AND u.disabled_at IS NULL",
                (digest,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row["digest"], digest):
            return None
        if datetime.fromisoformat(row["expires_at"]) <= utc_now():
            return None
        return Person(user=self._user(row), session_id=row["session_id"], csrf=row["csrf"])

    def sign_out(self, session_id: int) -> None:
        with self.database.connect() as db:
            db.execute("UPDATE sessions SET ended_at = ? WHERE id = ?", (utc_now().isoformat(), session_id))
            db.execute("DELETE FROM reveals WHERE session_id = ?", (session_id,))

    # ---- confirmed reveals ----

    def grant_reveal(self, session_id: int, image_id: str, minutes: float) -> None:
        until = (utc_now() + timedelta(minutes=minutes)).isoformat()
        with self.database.connect() as db:
            db.execute(
                "INSERT INTO reveals (session_id, image_id, until) VALUES (?, ?, ?) "
                "ON CONFLICT (session_id, image_id) DO UPDATE SET until = excluded.until",
                (session_id, image_id, until),
            )

    def revealed(self, session_id: int, image_id: str) -> bool:
        with self.database.connect() as db:
            row = db.execute(
                "SELECT until FROM reveals WHERE session_id = ? AND image_id = ?", (session_id, image_id)
            ).fetchone()
        return row is not None and datetime.fromisoformat(row["until"]) > utc_now()

    # ---- partial reveal ----

    def take_patch(self, user_id: int, image_id: str, box: tuple[int, int, int, int], budget_px: int) -> bool:
        """Record that this person uncovers `box` (left, top, width, height) of the image, unless the
        area their patches of it cover together would pass `budget_px`: then False, nothing recorded.
        Checked and recorded in one transaction, so parallel presses cannot each slip under it."""
        with self.database.connect() as db:
            db.lock(f"patches {user_id}")
            boxes = [
                tuple(row)
                for row in db.execute(
                    "SELECT left_px, top_px, width_px, height_px FROM patches WHERE user_id = ? AND image_id = ?",
                    (user_id, image_id),
                )
            ]
            before = union_area(boxes)
            after = union_area([*boxes, box])
            if after > budget_px or (after > before and len(boxes) >= MOST_PATCHES):
                return False
            if after > before:  # An area already uncovered costs nothing more and is not kept twice.
                db.execute(
                    "INSERT INTO patches (user_id, image_id, at, left_px, top_px, width_px, height_px) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (user_id, image_id, utc_now().isoformat(), *box),
                )
        return True

    def patched_area(self, user_id: int, image_id: str) -> int:
        with self.database.connect() as db:
            rows = db.execute(
                "SELECT left_px, top_px, width_px, height_px FROM patches WHERE user_id = ? AND image_id = ?",
                (user_id, image_id),
            ).fetchall()
        return union_area([tuple(row) for row in rows])

    # ---- exposure ----

    def count_exposure(
        self,
        user_id: int,
        *,
        blurred: int = 0,
        originals: int = 0,
        patches: int = 0,
        gore_pixels: int = 0,
        avoided: int = 0,
    ) -> None:
        """`avoided`: reviews given from a hash list's match, without any reveal of the image."""
        with self.database.connect() as db:
            db.execute(
                "INSERT INTO exposure (user_id, day, blurred, originals, patches, gore_pixels, avoided) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (user_id, day) DO UPDATE SET blurred = exposure.blurred + excluded.blurred, "
                "originals = exposure.originals + excluded.originals, patches = exposure.patches + excluded.patches, "
                "gore_pixels = exposure.gore_pixels + excluded.gore_pixels, "
                "avoided = exposure.avoided + excluded.avoided",
                (user_id, utc_now().date().isoformat(), blurred, originals, patches, gore_pixels, avoided),
            )

    def count_blurred_seconds(self, user_id: int, seconds: float) -> None:
        """Seconds of video gore shown blurred today (sharp ones are counted by take_gore_seconds)."""
        with self.database.connect() as db:
            db.execute(
                "INSERT INTO video_exposure (user_id, day, blurred_seconds) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, day) DO UPDATE SET "
                "blurred_seconds = video_exposure.blurred_seconds + excluded.blurred_seconds",
                (user_id, utc_now().date().isoformat(), seconds),
            )

    def take_gore_seconds(self, user_id: int, seconds: float, limit: float | None) -> float | None:
        """Count `seconds` of video gore revealed today, unless that would pass `limit` (None: no
        limit): then nothing is counted and the seconds already revealed today are returned.
        Checked and counted in one transaction, so two reveals at once cannot both slip under it."""
        day = utc_now().date().isoformat()
        with self.database.connect() as db:
            db.lock(f"gore seconds {user_id}")
            row = db.execute(
                "SELECT gore_seconds FROM video_exposure WHERE user_id = ? AND day = ?", (user_id, day)
            ).fetchone()
            spent = float(row["gore_seconds"]) if row else 0.0
            if limit is not None and spent + seconds > limit + 1e-9:
                return spent
            db.execute(
                "INSERT INTO video_exposure (user_id, day, gore_seconds) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, day) DO UPDATE SET "
                "gore_seconds = video_exposure.gore_seconds + excluded.gore_seconds",
                (user_id, day, seconds),
            )
        return None

    def exposure(self, user_id: int | None = None, days: int = 30) -> list[ExposureDay]:
        """Newest day first; one user's, or everyone's: images and videos together."""
        since = (utc_now().date() - timedelta(days=days - 1)).isoformat()
        # A day on which someone saw only images, or only videos, has a row in one table only.
        query = (
            "WITH days AS (SELECT user_id, day FROM exposure UNION SELECT user_id, day FROM video_exposure) "
            "SELECT u.name AS user, d.day, COALESCE(e.blurred, 0) AS blurred, "
            "COALESCE(e.originals, 0) AS originals, COALESCE(e.patches, 0) AS patches, "
            "COALESCE(e.gore_pixels, 0) AS gore_pixels, COALESCE(e.avoided, 0) AS avoided, "
            "COALESCE(v.blurred_seconds, 0) AS blurred_seconds, COALESCE(v.gore_seconds, 0) AS gore_seconds, "
            "(SELECT COUNT(DISTINCT p.image_id) FROM patches p WHERE p.user_id = d.user_id "
            "AND substr(p.at, 1, 10) = d.day) AS patched_images FROM days d "
            "JOIN users u ON u.id = d.user_id "
            "LEFT JOIN exposure e ON e.user_id = d.user_id AND e.day = d.day "
            "LEFT JOIN video_exposure v ON v.user_id = d.user_id AND v.day = d.day WHERE d.day >= ?"
        )
        args: list = [since]
        if user_id is not None:
            query, args = query + " AND d.user_id = ?", [*args, user_id]
        with self.database.connect() as db:
            rows = db.execute(query + " ORDER BY d.day DESC, lower(u.name)", args).fetchall()
        return [ExposureDay(**dict(row)) for row in rows]

    def today(self, user_id: int) -> ExposureDay:
        for day in self.exposure(user_id, days=1):
            return day
        return ExposureDay(user="", day=utc_now().date(), blurred=0, originals=0, patches=0, gore_pixels=0)


def union_area(boxes: list[tuple[int, int, int, int]]) -> int:
    """Pixels covered by any of these (left, top, width, height) boxes, overlaps counted once."""
    if not boxes:
        return 0
    edges = np.array([(left, top, left + width, top + height) for left, top, width, height in boxes], np.int64)
    xs, ys = np.unique(edges[:, [0, 2]]), np.unique(edges[:, [1, 3]])
    cx, cy = xs[:-1, None], ys[None, :-1]  # Every cell of the grid the edges make, by its corner.
    covered = np.zeros((len(xs) - 1, len(ys) - 1), bool)
    for x0, y0, x1, y1 in edges:
        covered |= (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
    return int((np.diff(xs)[:, None] * np.diff(ys)[None, :] * covered).sum())
