"""Query strategies: which unlabelled images an annotator should label next.

Every strategy turns the classifier's predictions on the unlabelled pool into one utility per
image (higher: ask sooner); `rank` returns the k best. The uncertainty and disagreement scores
are scikit-activeml's, fed with probability arrays (binary: [P(clean), P(gore)] per image).

- `random`: the paper's baseline.
- `least_confidence`, `entropy` (the paper's), `margin`: uncertainty of the gore probability.
  With two classes all three are monotone in |p - 0.5|, so they rank images the same way (only
  ties may differ); they are kept apart to match the paper and multi-class use.
- `mc_dropout`: standard deviation of N inference-dropout passes (thesis 5.2.5).
- `disagreement`: average KL divergence between the voting members' probabilities.
- `gore_averse` (ours): entropy x P(clean). Informative images that are probably clean come
  first, confident gore last, so an annotator opens fewer gore images for the same information.

Light on purpose (no TensorFlow): the services may rank with it.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Strategy = Literal["random", "least_confidence", "entropy", "margin", "mc_dropout", "disagreement", "gore_averse"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
Needs = Literal["nothing", "probabilities", "mc_draws", "members"]
STRATEGY_NEEDS: dict[str, Needs] = {
    "random": "nothing",
    "least_confidence": "probabilities",
    "entropy": "probabilities",
    "margin": "probabilities",
    "mc_dropout": "mc_draws",
    "disagreement": "members",
    "gore_averse": "probabilities",
}
_SKACTIVEML_METHOD = {"least_confidence": "least_confident", "entropy": "entropy", "margin": "margin_sampling"}


def _float_array(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


FloatArray = Annotated[np.ndarray, BeforeValidator(_float_array)]


class PoolPredictions(BaseModel):
    """What the classifier said about `count` unlabelled images. Strategies say what they need
    (`STRATEGY_NEEDS`): gore probabilities (N,), MC-dropout draws (passes, N), or the members'
    probabilities (members, N)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    count: int = Field(ge=0, description="How many unlabelled images.")
    probabilities: FloatArray | None = None
    mc_draws: FloatArray | None = None
    mc_std: FloatArray | None = Field(
        None, description="(N,) the draws' standard deviation, when the draws stay with the model service."
    )
    members: FloatArray | None = None

    @model_validator(mode="after")
    def _shapes(self) -> PoolPredictions:
        for name, ndim in (("probabilities", 1), ("mc_draws", 2), ("mc_std", 1), ("members", 2)):
            array = getattr(self, name)
            if array is None:
                continue
            if array.ndim != ndim or array.shape[-1] != self.count:
                raise ValueError(f"{name}: expected {ndim} dimension(s) ending in {self.count}, got {array.shape}")
            if not np.all((array >= 0) & (array <= 1)):
                raise ValueError(f"{name}: gore probabilities (and their spread) must lie in [0, 1]")
        return self


class Ranking(BaseModel):
    """The k images to label next, best first: positions in the pool and their utilities."""

    strategy: Strategy
    indices: list[int]
    scores: list[float]


def _binary(p: np.ndarray) -> np.ndarray:
    """(..., N) gore probabilities -> (..., N, 2) class probabilities [clean, gore]."""
    return np.stack([1.0 - p, p], axis=-1)


NEED_NAMES = {
    "probabilities": "gore probabilities",
    "mc_draws": "MC-dropout draws",
    "members": "members' probabilities",
}


def _required(predictions: PoolPredictions, strategy: str) -> np.ndarray:
    need = STRATEGY_NEEDS[strategy]
    array = getattr(predictions, need)
    if array is None and need == "mc_draws":
        array = predictions.mc_std
    if array is None:
        raise ValueError(f"strategy {strategy!r} needs the classifier's {NEED_NAMES[need]}")
    return array


def load() -> None:
    """Import scikit-activeml, and scikit-learn under it, now. It takes over a second in which the
    event loop of the process barely runs (compiled modules' set-up holds Python's lock), so a
    serving worker that ranks does it as it starts, not in its first ranking."""
    import skactiveml.pool  # noqa: F401
    import skactiveml.utils  # noqa: F401


def utilities(strategy: Strategy, predictions: PoolPredictions, *, seed: int = 0) -> np.ndarray:
    """One utility per unlabelled image (higher: label it sooner)."""
    from skactiveml.pool import average_kl_divergence, uncertainty_scores

    if strategy not in STRATEGY_NEEDS:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    if strategy == "random":
        return np.random.default_rng(seed).random(predictions.count)
    if predictions.count == 0:
        return np.zeros(0)
    array = _required(predictions, strategy)
    if strategy in _SKACTIVEML_METHOD:
        return uncertainty_scores(_binary(array), method=_SKACTIVEML_METHOD[strategy])
    if strategy == "mc_dropout":
        return array.std(axis=0) if array.ndim == 2 else array
    if strategy == "disagreement":
        if array.shape[0] < 2:
            raise ValueError("strategy 'disagreement' needs at least two voting members")
        return average_kl_divergence(_binary(array))
    # gore_averse: the label's information times the chance that looking at the image shows no gore.
    return uncertainty_scores(_binary(array), method="entropy") * (1.0 - array)


def rank(strategy: Strategy, predictions: PoolPredictions, k: int, *, seed: int = 0) -> Ranking:
    """The k unlabelled images with the highest utility (exact ties broken at random, by seed)."""
    from skactiveml.utils import simple_batch

    if k < 0:
        raise ValueError("k must be at least 0")
    scores = utilities(strategy, predictions, seed=seed)
    k = min(k, predictions.count)
    if k == 0:
        return Ranking(strategy=strategy, indices=[], scores=[])
    chosen = simple_batch(scores.astype(np.float64).copy(), random_state=np.random.RandomState(seed), batch_size=k)
    return Ranking(strategy=strategy, indices=[int(i) for i in chosen], scores=[float(scores[i]) for i in chosen])
