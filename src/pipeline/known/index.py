"""A Hamming-radius lookup over PDQ hashes that stays fast at millions of them.

FAISS's multi-index hashing (IndexBinaryMultiHash): each 256-bit code is cut into 16 pieces of
16 bits, each piece keyed in a table of its own. Two codes at most 31 bits apart agree on at
least one piece to within one bit (16 pieces, 31 differing bits: some piece holds at most one),
so probing each table at its piece and the piece's 16 one-bit neighbours (nflip=1) finds every
match: exact, not approximate, and only the candidates' full codes are compared.
"""

from __future__ import annotations

import threading

import faiss
import numpy as np

from pipeline.known.pdq import BITS, BYTES, MATCH_DISTANCE

PIECES, PIECE_BITS = 16, 16
assert PIECES * PIECE_BITS == BITS and MATCH_DISTANCE // PIECES <= 1  # The guarantee above.


class HashIndex:
    """Codes (N, 32) uint8 with an int64 key each; `within` finds the keys of codes near one."""

    def __init__(self) -> None:
        self._index = faiss.IndexBinaryMultiHash(BITS, PIECES, PIECE_BITS)
        self._index.nflip = 1
        self._keys = np.zeros(1024, np.int64)  # Grown by doubling: catching up adds in chunks.
        self._lock = threading.Lock()  # faiss adds are not safe against concurrent searches.

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, codes: np.ndarray, keys: np.ndarray) -> None:
        if len(codes) == 0:
            return
        codes = np.ascontiguousarray(codes, np.uint8).reshape(-1, BYTES)
        with self._lock:
            start = int(self._index.ntotal)
            if start + len(codes) > len(self._keys):
                grown = np.zeros(max(2 * len(self._keys), start + len(codes)), np.int64)
                grown[:start] = self._keys[:start]
                self._keys = grown
            self._keys[start : start + len(codes)] = keys
            self._index.add(codes)

    def within(self, code: np.ndarray, radius: int = MATCH_DISTANCE) -> list[tuple[int, int]]:
        """(key, distance) of every code at most `radius` bits from `code`, nearest first."""
        query = np.ascontiguousarray(code, np.uint8).reshape(1, BYTES)
        with self._lock:
            if self._index.ntotal == 0:
                return []
            limits, distances, positions = self._index.range_search(query, radius + 1)  # faiss: distance < radius.
            start, end = limits[0], limits[1]
            found = sorted(zip(distances[start:end].tolist(), positions[start:end].tolist(), strict=True))
            return [(int(self._keys[position]), int(d)) for d, position in found]
