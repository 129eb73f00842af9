"""Matching an image's PDQ hash against the enabled hash lists, in every process that answers.

Each process keeps one HashIndex per list, read from the hash list tables and caught up with
them at most every `refresh_s` (a list imported, added to, enabled or disabled anywhere, through
any replica, is matched by every replica within that time; nothing restarts). A list's rows are
only ever added, so catching up reads the new rows only; a list deleted is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from pipeline.known.index import HashIndex
from pipeline.known.pdq import MATCH_DISTANCE, Pdq, codes
from pipeline.stores.hash_lists import HashLists, KnownMatch

log = logging.getLogger(__name__)


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
    _loaded: dict[int, _Loaded] = field(default_factory=dict, init=False)
    _enabled: set[int] = field(default_factory=set, init=False)
    _checked: float = field(default=float("-inf"), init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _refreshing: threading.Lock = field(default_factory=threading.Lock, init=False)

    def refresh(self, force: bool = False) -> None:
        """Catch up with the tables if `refresh_s` has passed (or `force`). Blocks: call it in a
        thread. One thread catches up at a time; the others match with what is loaded meanwhile."""
        if time.monotonic() - self._checked < self.refresh_s and not force:
            return
        if not self._refreshing.acquire(blocking=force):
            return
        try:
            self._catch_up()
        finally:
            self._refreshing.release()

    def _catch_up(self) -> None:
        with self._lock:
            versions = self.lists.versions()
            for gone in set(self._loaded) - set(versions):
                del self._loaded[gone]
            self._enabled = {list_id for list_id, (_, enabled) in versions.items() if enabled}
        for list_id, (version, _) in versions.items():
            with self._lock:
                loaded = self._loaded.setdefault(list_id, _Loaded())
            while loaded.version != version:  # Rows may arrive while reading: read until the version holds.
                loaded.version = version
                while rows := self.lists.hashes_after(list_id, loaded.last_row):
                    keys = np.array([row for row, _ in rows], np.int64)
                    loaded.index.add(codes([h for _, h in rows]), keys)
                    loaded.last_row = rows[-1][0]
                version = self.lists.versions().get(list_id, (version, False))[0]
        self._checked = time.monotonic()

    def match(self, pdq: Pdq | None) -> list[KnownMatch]:
        """The enabled lists' hashes within `radius` bits of `pdq`, nearest first (gore first at a
        tie). A hash of low quality (a flat, nearly blank image) matches nothing. Blocks: call it
        in a thread."""
        if pdq is None or not pdq.matchable:
            return []
        self.refresh()
        with self._lock:
            indexes = [self._loaded[i].index for i in self._enabled if i in self._loaded]
        found: dict[int, int] = {}
        for code in codes([pdq.hash] + ([pdq.mirrored] if pdq.mirrored else [])):  # A mirrored copy too.
            for index in indexes:
                for row, distance in index.within(code, self.radius):
                    found[row] = min(distance, found.get(row, distance))
        return self.lists.matched(found)

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
