"""Building with pretrained weights that may be out of reach (offline machines)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pipeline.errors import WeightsUnavailable

T = TypeVar("T")


def with_weights(build: Callable[[str | None], T], weights: str | None, what: str) -> T:
    """Call `build(weights)`; turn a failed weight download into one clear message."""
    if weights is None:
        return build(None)
    try:
        return build(weights)
    except Exception as exc:  # Keras raises a bare Exception for "URL fetch failure".
        raise WeightsUnavailable(
            f"{what}: could not load {weights!r} weights ({exc}). "
            "This machine may be offline: pass weights=None (command line: --weights none) to build "
            "with random weights, or put the weight file in ~/.keras/models or ~/.keras/models/"
            "(segmentation_models) beforehand."
        ) from exc
