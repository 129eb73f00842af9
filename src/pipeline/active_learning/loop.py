"""The pool-based loop of the paper (seed 002, section 2.3), for any learner.

Start from a random, class-balanced share of the pool (20%); train; score the unlabelled rest;
"annotate" the best `query_size` (in a simulation: reveal the known labels); retrain; stop when
the pool is empty or the labelling budget is spent. Every cycle records how many images and how
many gore images an annotator has been shown so far.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from pipeline.active_learning.strategies import STRATEGY_NEEDS, PoolPredictions, Strategy, rank
from pipeline.metrics import DROPOUT_PASSES


class Learner(Protocol):
    """A classifier the loop trains on positions of the pool and asks about the others."""

    def start(self, seed: int) -> None:
        """Begin a run: a fresh model (the same starting weights for every strategy)."""

    def fit(self, indices: np.ndarray, labels: np.ndarray) -> None:
        """Train on the labelled positions (every one so far; later cycles continue from the last)."""

    def predict(self, indices: np.ndarray, *, mc_passes: int = 0, members: bool = False) -> PoolPredictions:
        """Predictions on the given positions: gore probabilities, and MC draws / members' when asked."""


class LoopSettings(BaseModel):
    """The paper's values by default."""

    initial_share: float = Field(0.2, gt=0, le=1, description="Share of each class labelled before the first cycle.")
    query_size: int = Field(500, gt=0, description="Images queried per cycle.")
    budget: int | None = Field(None, gt=0, description="Most images labelled in all (initial pool included).")
    mc_passes: int = Field(DROPOUT_PASSES, ge=2, description="Inference-dropout passes for the mc_dropout strategy.")
    seed: int = 0


class Cycle(BaseModel):
    cycle: int
    labelled: int = Field(description="Images labelled so far (initial pool included).")
    share: float = Field(description="Share of the pool labelled.")
    gore_shown: int = Field(description="Gore images among them: what an annotator has been shown.")
    metrics: dict[str, float] = Field(default_factory=dict)


class LoopResult(BaseModel):
    strategy: Strategy
    pool: int
    pool_gore: int
    cycles: list[Cycle]
    stopped: Literal["pool empty", "budget spent"]
    order: list[int] = Field(description="Pool positions in the order they were labelled.")


def initial_pool(labels: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """The same share of every class, drawn at random (at least one image of each class present)."""
    labels = np.asarray(labels)
    chosen = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        count = max(1, round(share * len(members)))
        chosen.append(rng.choice(members, size=count, replace=False))
    return rng.permutation(np.concatenate(chosen))


def run_loop(
    learner: Learner,
    labels: np.ndarray,
    strategy: Strategy,
    settings: LoopSettings | None = None,
    *,
    evaluate: Callable[[Learner], dict[str, float]] | None = None,
    on_cycle: Callable[[Cycle], None] | None = None,
) -> LoopResult:
    """Run the loop on a pool whose true labels (`labels`, 1 = gore) are revealed only when queried."""
    settings = settings or LoopSettings()
    labels = np.asarray(labels).astype(np.int64)
    pool = len(labels)
    rng = np.random.default_rng(settings.seed)
    labelled = initial_pool(labels, settings.initial_share, rng)
    if settings.budget is not None and settings.budget < len(labelled):
        raise ValueError(f"a budget of {settings.budget} images is below the initial pool ({len(labelled)})")
    need = STRATEGY_NEEDS[strategy]
    learner.start(settings.seed)
    cycles: list[Cycle] = []
    while True:
        learner.fit(labelled, labels[labelled])
        cycle = Cycle(
            cycle=len(cycles),
            labelled=len(labelled),
            share=len(labelled) / pool,
            gore_shown=int(labels[labelled].sum()),
            metrics=evaluate(learner) if evaluate else {},
        )
        cycles.append(cycle)
        if on_cycle:
            on_cycle(cycle)
        unlabelled = np.setdiff1d(np.arange(pool), labelled)  # Sorted: a strategy sees the pool in one order.
        room = len(unlabelled) if settings.budget is None else settings.budget - len(labelled)
        if len(unlabelled) == 0 or room <= 0:
            stopped = "pool empty" if len(unlabelled) == 0 else "budget spent"
            break
        k = min(settings.query_size, len(unlabelled), room)
        if need == "nothing":
            predictions = PoolPredictions(count=len(unlabelled))
        else:
            predictions = learner.predict(
                unlabelled,
                mc_passes=settings.mc_passes if need == "mc_draws" else 0,
                members=need == "members",
            )
        ranking = rank(strategy, predictions, k, seed=settings.seed * 1000 + len(cycles))
        labelled = np.concatenate([labelled, unlabelled[ranking.indices]])
    return LoopResult(
        strategy=strategy,
        pool=pool,
        pool_gore=int(labels.sum()),
        cycles=cycles,
        stopped=stopped,
        order=[int(i) for i in labelled],
    )
