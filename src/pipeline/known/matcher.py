"""Matching an image's PDQ hash against the enabled hash lists, in every process that answers.

Each process keeps one HashIndex per list, read from the hash list tables and caught up with
them every `refresh_s` (a list imported, added to, enabled or disabled anywhere, through any
replica, is matched by every replica within that time, or once the list being read is read;
nothing restarts). A list's rows are only ever added, so catching up reads the new rows only; a
list deleted is dropped. Serving processes read in a background thread (`start`); a command reads
in the call.

It fails closed: a list is matched only once it is read whole, and while an enabled list is not
(a replica starting, a list just imported) or the tables could not be read for a while, a match
waits up to `wait_s` and then refuses with a 503, rather than answer "not on any list".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import Unavailable
from pipeline.known.index import HashIndex
from pipeline.known.pdq import MATCH_DISTANCE, Pdq, codes
from pipeline.stores.hash_lists import HashLists, KnownMatch

log = logging.getLogger(__name__)

WAIT_S = 15.0
"""Most seconds a match waits for an enabled list's first read before refusing."""
STALE_S = 30.0
"""Lists last read longer ago than this (the database unreachable): refuse rather than guess."""
MOST_MATCHES = 100
"""Matches kept per image (nearest first, gore first): a picture on many lists stays one answer."""


@dataclass
class _Loaded:
    index: HashIndex = field(default_factory=HashIndex)
    version: int = -1
    last_row: int = 0


@dataclass
class Matcher:
    lists: HashLists
    refresh_s: float = 1.0
    radius: int = MATCH_DISTANCE
    wait_s: float = WAIT_S
    _loaded: dict[int, _Loaded] = field(default_factory=dict, init=False)
    _enabled: set[int] = field(default_factory=set, init=False)
    _checked: float = field(default=float("-inf"), init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _changed: threading.Condition = field(init=False)
    _refreshing: threading.Lock = field(default_factory=threading.Lock, init=False)
    _reader: threading.Thread | None = field(default=None, init=False)
    _versions: dict[int, tuple[int, bool]] = field(default_factory=dict, init=False)
    _generation: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)

    def start(self) -> None:
        """Read the lists in a background thread from now on (a serving process, once started):
        requests then never read a list themselves, they only wait for one being read."""
        with self._lock:
            if self._reader is None:
                self._reader = threading.Thread(target=self._read_forever, name="hash-lists", daemon=True)
                self._reader.start()

    def _read_forever(self) -> None:
        failing = False
        while True:
            try:
                self.refresh(force=True)
                failing = False
            except Exception:  # Said once per outage; matches refuse meanwhile (STALE_S).
                if not failing:
                    log.exception("reading the hash lists failed; trying again every %g s", self.refresh_s)
                failing = True
            time.sleep(self.refresh_s)

    def refresh(self, force: bool = False) -> None:
        """Catch up with the tables if `refresh_s` has passed (or `force`). Blocks: call it in a
        thread. One thread reads at a time; another waits for it, then finds the lists current."""
        if time.monotonic() - self._checked < self.refresh_s and not force:
            return
        with self._refreshing:
            if time.monotonic() - self._checked < self.refresh_s and not force:
                return
            self._catch_up()

    def _catch_up(self) -> None:
        checked = time.monotonic()
        versions = self.lists.versions()
        with self._lock:
            for gone in set(self._loaded) - set(versions):
                del self._loaded[gone]
            self._enabled = {list_id for list_id, (_, enabled) in versions.items() if enabled}
        for list_id, (version, _) in versions.items():
            with self._lock:
                loaded = self._loaded.get(list_id)
            if loaded is None:  # Read aside and published whole: never matched half-read.
                loaded = _Loaded()
                self._read(list_id, loaded, version)
                with self._changed:
                    self._loaded[list_id] = loaded
                    self._changed.notify_all()
            elif loaded.version != version:
                self._read(list_id, loaded, version)
        with self._changed:
            if versions != self._versions:  # A list added to, enabled, disabled, imported or deleted.
                self._versions, self._generation = versions, self._generation + 1
            self._checked = checked
            self._changed.notify_all()

    def _read(self, list_id: int, loaded: _Loaded, version: int) -> None:
        """The rows after the last one read. The version (read before the rows, so it covers them
        all) is recorded only once every row is in: a read that fails is taken up where it stopped."""
        while rows := self.lists.hashes_after(list_id, loaded.last_row):
            keys = np.array([row for row, _ in rows], np.int64)
            loaded.index.add(codes([h for _, h in rows]), keys)
            loaded.last_row = rows[-1][0]
        loaded.version = version

    def _current(self) -> None:
        """Return once every enabled list is read whole and the lists were read lately; else wait
        up to `wait_s`, then refuse (503)."""
        if self._reader is None:  # A command, or a process that never started the reader.
            self.refresh()
        deadline = time.monotonic() + self.wait_s
        with self._changed:
            while why := self._behind():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable(f"{why}: nothing can be shown as not on a list until it is; try again")
                self._changed.wait(min(left, 1.0))

    def _behind(self) -> str | None:
        if self._checked == float("-inf"):
            return "the hash lists are being read"
        if time.monotonic() - self._checked > max(STALE_S, 3 * self.refresh_s):
            return "the hash lists could not be read lately"
        if self._enabled - self._loaded.keys():
            return "an enabled hash list is being read"
        return None

    def match(self, pdq: Pdq | None) -> list[KnownMatch]:
        """The enabled lists' hashes within `radius` bits of `pdq`, nearest first (gore first at a
        tie), at most MOST_MATCHES. A hash of low quality (a flat, nearly blank image) matches
        nothing. Blocks: call it in a thread."""
        if pdq is None or not pdq.matchable:
            return []
        self._current()
        with self._lock:
            indexes = [self._loaded[i].index for i in self._enabled if i in self._loaded]
        found: dict[int, int] = {}
        for code in codes([pdq.hash] + ([pdq.mirrored] if pdq.mirrored else [])):  # A mirrored copy too.
            for index in indexes:
                for row, distance in index.within(code, self.radius):
                    found[row] = min(distance, found.get(row, distance))
        return self.lists.matched(found, MOST_MATCHES)

    def generation(self) -> int:
        """A number that changes whenever the lists do (what was checked against older lists is
        checked again). Read it before matching: a change meanwhile is then seen next time."""
        self._current()
        with self._lock:
            return self._generation

    def size(self) -> int:
        with self._lock:
            return sum(len(loaded.index) for loaded in self._loaded.values())


def known_gore(matches: list[KnownMatch]) -> KnownMatch | None:
    """The match that makes an image gore, if any: the nearest on a gore list (or reviewed as gore)."""
    return next((m for m in matches if m.label == "gore"), None)


def verdict_of(matches: list[KnownMatch]) -> KnownMatch | None:
    """The match a review can be taken from: a gore one when there is any (fail closed), else the
    nearest not-gore one; info lists give no verdict."""
    return known_gore(matches) or next((m for m in matches if m.label == "not_gore"), None)
