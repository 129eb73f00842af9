"""The paper's experiment (seed 002, section 2.3) on a labelled data set: k-fold cross validation,
several seeds, every strategy and full supervision, scored on each fold's test part per cycle.

Per fold and seed: the fold's training part is split (stratified, by seed) into the pool and a
validation part (20%, for early stopping); every strategy runs the loop on the pool from the
same starting weights; full supervision trains the same model on the whole pool for as many
cycles as a loop makes (the same training budget). Each cycle records accuracy, Double F1,
recall and precision on the fold's test part, and how many gore images had been shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
from pydantic import BaseModel, Field
from sklearn.model_selection import StratifiedKFold, train_test_split

from pipeline.active_learning.loop import Cycle, Learner, LoopSettings, run_loop
from pipeline.active_learning.strategies import STRATEGIES, Strategy
from pipeline.data.dataset import Dataset
from pipeline.metrics import classification_metrics


class SimulationLearner(Learner, Protocol):
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Gore probabilities of a batch of test images (model inputs)."""


LearnerFactory = Callable[[list[np.ndarray], list[np.ndarray], np.ndarray], SimulationLearner]
"""(pool images, validation images, validation labels) -> a learner over that pool."""


class SimulationSettings(BaseModel):
    """The paper's values by default; `quick()` is sized for a 2-core CPU."""

    folds: int = Field(5, ge=2, description="k of the k-fold cross validation.")
    run_folds: int | None = Field(None, ge=1, description="Run only the first n folds (default: all).")
    validation_share: float = Field(0.2, gt=0, lt=1, description="Share of each training fold held out for validation.")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    strategies: list[Strategy] = Field(default_factory=lambda: list(STRATEGIES), min_length=1)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    full_fits: int | None = Field(None, ge=1, description="Cycles of full supervision; default: as many as a loop.")
    within: float = Field(0.01, gt=0, description="'Came within' this much accuracy of full supervision.")
    limit: int | None = Field(None, ge=10, description="Use a stratified subset of this many images.")
    split_seed: int = Field(0, description="Seed of the folds (and of --limit's subset).")


class RunRecord(BaseModel):
    fold: int
    seed: int
    strategy: str = Field(description="A strategy, or 'full' for full supervision.")
    pool: int
    pool_gore: int
    test: int
    cycles: list[Cycle]
    stopped: str


class SimulationResult(BaseModel):
    data: str
    images: int
    gore: int
    model: str
    settings: SimulationSettings
    runs: list[RunRecord]


def loop_cycles(labels: np.ndarray, loop: LoopSettings) -> int:
    """How many cycles (trainings) a loop makes on a pool with these labels."""
    initial = sum(max(1, round(loop.initial_share * int(np.sum(labels == v)))) for v in np.unique(labels))
    total = len(labels) if loop.budget is None else min(len(labels), loop.budget)
    return 1 + math.ceil(max(0, total - initial) / loop.query_size)


def _metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    metrics = classification_metrics(labels, probabilities)
    accuracy = float(np.mean((np.asarray(probabilities) >= 0.5) == labels.astype(bool)))
    return {"accuracy": accuracy, **{k: metrics[k] for k in ("double_f1", "recall", "precision")}}


def folds_of(labels: np.ndarray, settings: SimulationSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    splitter = StratifiedKFold(n_splits=settings.folds, shuffle=True, random_state=settings.split_seed)
    folds = list(splitter.split(np.zeros(len(labels)), labels))
    return folds[: settings.run_folds or settings.folds]


def simulate(
    data: Dataset,
    make_learner: LearnerFactory,
    settings: SimulationSettings,
    *,
    model: str,
    test_inputs: Callable[[list[np.ndarray]], np.ndarray],
    progress: Callable[[str], None] = lambda _: None,
) -> SimulationResult:
    """Every (fold, seed): each strategy's loop and full supervision. `test_inputs` makes the
    learner's inputs from test images (for a Keras learner: resized to its input size)."""
    samples = list(range(len(data)))
    labels = data.labels()
    if settings.limit is not None and settings.limit < len(data):
        samples, _ = train_test_split(
            samples, train_size=settings.limit, stratify=labels, random_state=settings.split_seed
        )
        samples = sorted(samples)
    images = data.images()
    images, labels = [images[i] for i in samples], labels[samples]
    runs: list[RunRecord] = []
    for fold, (train, test) in enumerate(folds_of(labels, settings)):
        test_x, test_y = test_inputs([images[i] for i in test]), labels[test]
        for seed in settings.seeds:
            pool, validation = train_test_split(
                train, test_size=settings.validation_share, stratify=labels[train], random_state=seed
            )
            pool_y = labels[pool]
            learner = make_learner([images[i] for i in pool], [images[i] for i in validation], labels[validation])

            def evaluate(trained: SimulationLearner, x=test_x, y=test_y) -> dict[str, float]:
                return _metrics(y, trained.probabilities(x))

            loop = settings.loop.model_copy(update={"seed": seed})
            for strategy in settings.strategies:
                progress(f"fold {fold}, seed {seed}: {strategy}")
                result = run_loop(learner, pool_y, strategy, loop, evaluate=evaluate)
                curve = " ".join(f"{c.metrics['accuracy']:.3f}" for c in result.cycles)
                progress(f"fold {fold}, seed {seed}: {strategy} accuracy by cycle {curve}")
                runs.append(
                    RunRecord(
                        fold=fold,
                        seed=seed,
                        strategy=strategy,
                        pool=result.pool,
                        pool_gore=result.pool_gore,
                        test=len(test),
                        cycles=result.cycles,
                        stopped=result.stopped,
                    )
                )
            progress(f"fold {fold}, seed {seed}: full supervision")
            learner.start(seed)
            everything = np.arange(len(pool))
            for _ in range(settings.full_fits or loop_cycles(pool_y, loop)):
                learner.fit(everything, pool_y)
            full = Cycle(
                cycle=0, labelled=len(pool), share=1.0, gore_shown=int(pool_y.sum()), metrics=evaluate(learner)
            )
            progress(f"fold {fold}, seed {seed}: full supervision accuracy {full.metrics['accuracy']:.3f}")
            runs.append(
                RunRecord(
                    fold=fold,
                    seed=seed,
                    strategy="full",
                    pool=len(pool),
                    pool_gore=int(pool_y.sum()),
                    test=len(test),
                    cycles=[full],
                    stopped="pool empty",
                )
            )
    return SimulationResult(
        data=data.name,
        images=len(labels),
        gore=int(labels.sum()),
        model=model,
        settings=settings,
        runs=runs,
    )
