"""Masks in time: held between segmented frames and widened by the motion, so nothing flickers
back into view.

Inside a gore segment some frames are segmented (`segment_fps`). A segmented frame is masked with
its own censored region and its neighbours' (a region the segmenter missed once stays hidden).
A frame between two segmented ones is masked with the union of both regions, widened by how far
the region moved across that gap and the one before it (the directed Hausdorff distance between
the masks): gore that moves on after the last segmented frame stays under the mask. A frame with
no segmented frame near it, or one that could not be decoded cleanly or segmented, is hidden
whole: we do not show what we did not look at.
"""

from __future__ import annotations

from bisect import bisect_right

import cv2
import numpy as np
from pydantic import BaseModel, Field


def moved(a: np.ndarray, b: np.ndarray) -> float:
    """How far (pixels) the censored region of keep mask `b` lies outside that of `a`: the largest
    distance from a pixel censored in b to the nearest one censored in a. 0 when either is empty."""
    if a.all() or b.all():
        return 0.0
    distance = cv2.distanceTransform(a, cv2.DIST_L2, 3)  # To the nearest censored (0) pixel of a.
    return float(distance[b == 0].max())


class HeldMasks:
    """Full-size keep masks (1 kept, 0 censored) of segmented frames, by time."""

    def __init__(self, hold_s: float):
        self.hold_s = hold_s
        """Segmented frames are at most about this far apart inside a segment."""
        self.times: list[float] = []
        self.keeps: list[np.ndarray | None] = []
        """None: that frame could not be segmented (everything near it is hidden)."""
        self._gaps: dict[tuple[float, float], np.ndarray] = {}

    def add(self, time_s: float, keep: np.ndarray | None) -> None:
        position = bisect_right(self.times, time_s)
        self.times.insert(position, time_s)
        self.keeps.insert(position, keep)

    def keep_for(self, time_s: float, shape: tuple[int, int]) -> np.ndarray:
        """The keep mask of a frame at `time_s` inside a gore segment."""
        hidden = np.zeros(shape, np.uint8)
        after = bisect_right(self.times, time_s + 1e-6)  # First segmented frame later than this one.
        before = after - 1
        reach = 2 * self.hold_s + 1e-6
        if before < 0 or time_s - self.times[before] > reach:
            return hidden  # Fail closed: nothing segmented near it.
        if abs(self.times[before] - time_s) <= 1e-6:  # Itself segmented: with its neighbours' regions.
            near = [
                i
                for i in (before - 1, before, before + 1)
                if 0 <= i < len(self.times) and abs(self.times[i] - time_s) <= reach
            ]
            return self._and([self.keeps[i] for i in near], shape)
        if after >= len(self.times) or self.times[after] - time_s > reach:
            return hidden
        return self._gap(before, after, shape)

    def _gap(self, a: int, b: int, shape: tuple[int, int]) -> np.ndarray:
        key = (self.times[a], self.times[b])
        if key not in self._gaps:
            union = self._and([self.keeps[a], self.keeps[b]], shape)
            if union.any():
                pairs = [(a - 1, a), (a, b)]
                reach = max(
                    (moved(*(self.keeps[i], self.keeps[j])) for i, j in pairs if i >= 0 and self._known(i, j, shape)),
                    default=0.0,
                )
                reach = max(reach, moved(self.keeps[b], self.keeps[a]) if self._known(a, b, shape) else 0.0)
                if reach > 0 and not union.all():
                    union = (cv2.distanceTransform(union, cv2.DIST_L2, 3) > reach).astype(np.uint8)
            self._gaps[key] = union
        return self._gaps[key]

    def _known(self, i: int, j: int, shape: tuple[int, int]) -> bool:
        return all(k is not None and k.shape == shape for k in (self.keeps[i], self.keeps[j]))

    @staticmethod
    def _and(keeps: list[np.ndarray | None], shape: tuple[int, int]) -> np.ndarray:
        if not keeps or any(keep is None or keep.shape != shape for keep in keeps):
            return np.zeros(shape, np.uint8)  # Fail closed.
        keep = keeps[0].copy()
        for other in keeps[1:]:
            keep &= other
        return keep

    def forget_before(self, time_s: float) -> None:
        """Drop masks no frame at or after `time_s` can need (one more is kept: its motion counts)."""
        cut = max(0, bisect_right(self.times, time_s - 2 * self.hold_s - 1e-6) - 2)
        del self.times[:cut], self.keeps[:cut]
        self._gaps = {k: v for k, v in self._gaps.items() if k[0] >= time_s - 2 * self.hold_s - 1e-6}


class FrameMask(BaseModel):
    """One frame's censored pixels, run-length encoded so other tools can apply them."""

    index: int
    time_s: float
    height: int
    width: int
    counts: list[int] = Field(
        description="Row-major runs over the frame's pixels, alternating kept and censored, starting with kept "
        "(the first run may be 0)."
    )

    @classmethod
    def of(cls, index: int, time_s: float, keep: np.ndarray) -> FrameMask:
        flat = keep.reshape(-1).astype(bool)
        changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        edges = np.concatenate([[0], changes, [flat.size]])
        counts = np.diff(edges).tolist()
        if flat.size and not flat[0]:
            counts = [0, *counts]
        return cls(index=index, time_s=round(time_s, 6), height=keep.shape[0], width=keep.shape[1], counts=counts)

    def keep(self) -> np.ndarray:
        values = np.zeros(len(self.counts), np.uint8)
        values[0::2] = 1
        return np.repeat(values, self.counts).reshape(self.height, self.width)
