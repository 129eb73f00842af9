"""A simulation's mean curves, which the report's tables and the pictures both read.

Curves are averaged over every (fold, seed) run, cycle by cycle (runs on one data set make the
same cycles; a cycle only some runs reached is averaged over those). Full supervision is the
mean over the same folds and seeds.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from pipeline.active_learning.simulate import RunRecord, SimulationResult

METRICS = ("accuracy", "double_f1", "recall")
TITLES = {"accuracy": "accuracy", "double_f1": "Double F1", "recall": "recall", "precision": "precision"}


class CurvePoint(BaseModel):
    cycle: int
    runs: int
    share: float
    labelled: float
    gore_shown: float
    metrics: dict[str, float]


def _mean_point(cycle: int, records: list[RunRecord]) -> CurvePoint:
    chosen = [r.cycles[cycle] for r in records]
    names = chosen[0].metrics.keys()
    return CurvePoint(
        cycle=cycle,
        runs=len(chosen),
        share=float(np.mean([c.share for c in chosen])),
        labelled=float(np.mean([c.labelled for c in chosen])),
        gore_shown=float(np.mean([c.gore_shown for c in chosen])),
        metrics={m: float(np.mean([c.metrics[m] for c in chosen])) for m in names},
    )


def curves(result: SimulationResult, fold: int | None = None) -> dict[str, list[CurvePoint]]:
    """Mean curve per strategy (and 'full', one point), over every run or one fold's."""
    out: dict[str, list[CurvePoint]] = {}
    for strategy in [*result.settings.strategies, "full"]:
        records = [r for r in result.runs if r.strategy == strategy and (fold is None or r.fold == fold)]
        if not records:
            continue
        longest = max(len(r.cycles) for r in records)
        out[strategy] = [_mean_point(i, [r for r in records if len(r.cycles) > i]) for i in range(longest)]
    return out
