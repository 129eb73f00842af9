"""A Hamming-radius lookup over PDQ hashes that stays fast at millions of them.

Multi-index hashing (Norouzi et al.), kept in sorted numpy arrays: each 256-bit code is cut into
12 pieces of 21 bits, and each piece has a table, the codes sorted by that piece. Two codes at
most 35 bits apart differ in at most 2 bits of some piece (12 pieces, 35 bits: some piece holds
2 or fewer), so probing each table at the query's piece and every piece 1 or 2 bits away (232
probes a table) finds every match: exact, not approximate, and only those candidates' full codes
are compared, in one vectorised pass. At 10 million random hashes a probe holds about 5 codes.

Codes added since the tables were built wait in a tail that is compared whole (a list of under
TAIL codes never has tables: their 100 MB would be wasted on it); when the tail outgrows a share
of the tables, the tables are built again from everything, aside, and swapped in.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np

from pipeline.known.pdq import BITS, BYTES, MATCH_DISTANCE

PIECES, PIECE_BITS, FLIPS = 12, 21, 2
EXACT_UP_TO = PIECES * (FLIPS + 1) - 1  # 35 bits.
TAIL = 100_000  # Codes compared whole before tables are worth their memory (about 2 ms here).
assert PIECES * PIECE_BITS <= BITS and MATCH_DISTANCE <= EXACT_UP_TO
_FLIPPED = np.array(
    [0]
    + [sum(1 << b for b in bits) for k in range(1, FLIPS + 1) for bits in itertools.combinations(range(PIECE_BITS), k)],
    np.int64,
)


def _piece(words: np.ndarray, h: int) -> np.ndarray:
    """Bits 21h to 21h + 20 of each code, codes as (n, 4) uint64 words."""
    word, offset = divmod(h * PIECE_BITS, 64)
    value = words[:, word] >> np.uint64(offset)
    if offset + PIECE_BITS > 64:
        value = value | (words[:, word + 1] << np.uint64(64 - offset))
    return (value & np.uint64((1 << PIECE_BITS) - 1)).astype(np.int64)


class _Tables:
    """The sorted tables over `words` (n, 4): for each piece, the positions sorted by it and where
    each piece value starts."""

    def __init__(self, words: np.ndarray) -> None:
        n, values = len(words), 1 << PIECE_BITS
        self.count = n
        self.order = np.empty((PIECES, n), np.int32)
        self.starts = np.zeros((PIECES, values + 1), np.int64)
        for h in range(PIECES):
            piece = _piece(words, h)
            self.order[h] = np.argsort(piece, kind="stable")
            self.starts[h, 1:] = np.cumsum(np.bincount(piece, minlength=values)) + h * n
            self.starts[h, 0] = h * n
        self.order = self.order.reshape(-1)

    def candidates(self, query: np.ndarray) -> np.ndarray:
        """Positions of the codes that agree with `query` (1, 4) to within 2 bits on some piece."""
        pieces = np.array([_piece(query, h)[0] for h in range(PIECES)])
        probes = pieces[:, None] ^ _FLIPPED[None, :]
        first = np.take_along_axis(self.starts, probes, 1).ravel()
        lengths = np.take_along_axis(self.starts, probes + 1, 1).ravel() - first
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, np.int64)
        offsets = np.repeat(first - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
        return np.unique(self.order[offsets])


class HashIndex:
    """Codes (N, 32) uint8 with an int64 key each; `within` finds the keys of codes near one."""

    def __init__(self) -> None:
        self._words = np.zeros((1024, BYTES // 8), np.uint64)  # Grown by doubling.
        self._keys = np.zeros(1024, np.int64)
        self._count = 0
        self._tables: _Tables | None = None  # Over the first `_tables.count` codes.
        self._lock = threading.Lock()
        self._building = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def add(self, codes: np.ndarray, keys: np.ndarray) -> None:
        """Codes in; tables built again (outside the lock: lookups go on meanwhile) once the tail
        outgrows TAIL codes and a quarter of the tables."""
        codes = np.ascontiguousarray(codes, np.uint8).reshape(-1, BYTES)
        if len(codes) == 0:
            return
        with self._lock:
            end = self._count + len(codes)
            if end > len(self._keys):
                size = max(2 * len(self._keys), end)
                self._words = np.concatenate([self._words[: self._count], np.zeros((size - self._count, 4), np.uint64)])
                self._keys = np.concatenate([self._keys[: self._count], np.zeros(size - self._count, np.int64)])
            self._words[self._count : end] = codes.view(np.uint64)
            self._keys[self._count : end] = keys
            self._count = end
            built = self._tables.count if self._tables else 0
            words = self._words[:end] if end - built > max(TAIL, built // 4) else None
        if words is not None and self._building.acquire(blocking=False):
            try:
                tables = _Tables(words)  # The arrays only grow: these rows stay as they are.
                with self._lock:
                    if self._tables is None or tables.count > self._tables.count:
                        self._tables = tables
            finally:
                self._building.release()

    def within(self, code: np.ndarray, radius: int = MATCH_DISTANCE) -> list[tuple[int, int]]:
        """(key, distance) of every code at most `radius` (<= 35) bits from `code`, nearest first."""
        if radius > EXACT_UP_TO:
            raise ValueError(f"the index is exact up to {EXACT_UP_TO} bits, not {radius}")
        query = np.ascontiguousarray(code, np.uint8).reshape(1, BYTES).view(np.uint64)
        with self._lock:
            tables, count, words, keys = self._tables, self._count, self._words, self._keys
        built = tables.count if tables else 0
        positions = np.concatenate(
            [tables.candidates(query) if tables else np.zeros(0, np.int64), np.arange(built, count)]
        )
        distances = np.bitwise_count(words[positions] ^ query).sum(axis=1)
        near = distances <= radius
        found = sorted(zip(distances[near].tolist(), keys[positions[near]].tolist(), strict=True))
        return [(key, distance) for distance, key in found]
