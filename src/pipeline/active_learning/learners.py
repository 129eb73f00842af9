"""What a simulation trains: the paper's and the quick presets, the members named on a command
line, and the learner factory the loop calls once per fold, seed and strategy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.active_learning.keras_learner import CycleTraining, FeatureCache, FrozenEncoderLearner, KerasLearner
from pipeline.active_learning.keras_learner import frozen_encoder as build_frozen_encoder
from pipeline.active_learning.simulate import LearnerFactory
from pipeline.architectures import MEMBER_ARCHITECTURES
from pipeline.imaging.model_input import model_batch
from pipeline.profiles import MemberSpec

# The paper's settings, and a configuration sized for a 2-core CPU (`--quick`).
PAPER: dict[str, Any] = {
    "members": ["resnet50v2_al:bce"],
    "input_size": 224,
    "weights": "imagenet",
    "folds": 5,
    "run_folds": None,
    "seeds": [0, 1, 2, 3, 4],
    "query_size": 500,
    "mc_passes": 30,
    "epochs": 5,
    "patience": 2,
    "batch_size": 32,
    "limit": None,
    "frozen_encoder": False,
    "encoder_from": None,
}
QUICK: dict[str, Any] = {
    "members": ["mobilenetv2:bce", "mobilenetv2:wrl"],
    "input_size": 128,
    "weights": "none",
    "frozen_encoder": True,
    "encoder_from": "gore-segmenter-demo:latest",
    "folds": 5,
    "run_folds": None,
    "seeds": [0],
    "query_size": 32,
    "mc_passes": 10,
    "epochs": 5,
    "patience": 2,
    "batch_size": 32,
    "limit": None,
}


def member_specs(choices: list[str]) -> list[MemberSpec]:
    """`ARCHITECTURE[:LOSS]` each (loss: bce unless named), as members of one committee."""
    specs = []
    for i, choice in enumerate(choices):
        architecture, _, loss = choice.partition(":")
        if architecture not in MEMBER_ARCHITECTURES:
            raise ValueError(
                f"unknown member architecture {architecture!r}; choose one of {sorted(MEMBER_ARCHITECTURES)}"
            )
        specs.append(
            MemberSpec(name=f"{architecture}_{loss or 'bce'}_{i}", architecture=architecture, loss=loss or "bce")
        )
    return specs


@dataclass(frozen=True)
class Learners:
    """The factory the simulation calls, the test inputs it scores, and the model in words."""

    make: LearnerFactory
    inputs: Callable[[list[np.ndarray]], np.ndarray]
    described: str


def learners(
    specs: list[MemberSpec],
    *,
    input_size: int,
    training: CycleTraining,
    weights: str,
    trainable_from: str | None = None,
    encoder: Any = None,
    encoder_tag: str | None = None,
    frozen: bool = False,
    views: int = 3,
    augmentation: Literal["paper", "thesis", "none"] = "paper",
    seed: int = 0,
) -> Learners:
    """Fine-tuned Keras members (`KerasLearner`), or heads trained on a frozen encoder's cached
    outputs (`FrozenEncoderLearner`: minutes on a CPU)."""
    described = ", ".join(f"{s.architecture}:{s.loss}" for s in specs)
    described = f"{described} at {input_size} px, weights {weights}" + (
        f", encoder from {encoder_tag}" if encoder_tag else ""
    )
    if frozen:
        if len({s.architecture for s in specs}) != 1:
            raise ValueError("--frozen-encoder shares one encoder: give members of one architecture")
        cache = FeatureCache(
            build_frozen_encoder(specs[0].architecture, input_size=input_size, encoder_from=encoder),
            views=views,
            augmentation=augmentation,
            seed=seed,
        )

        def make_frozen(pool_images, validation_images, validation_labels):
            return FrozenEncoderLearner(
                cache, pool_images, validation_images, validation_labels, specs, training=training
            )

        described += f", encoder frozen (heads trained on cached outputs of 1 + {views} augmented views per image)"
        return Learners(make_frozen, cache.plain, described)

    def make(pool_images, validation_images, validation_labels):
        return KerasLearner(
            pool_images,
            validation_images,
            validation_labels,
            specs,
            input_size=input_size,
            training=training,
            weights=None if weights == "none" else weights,
            trainable_from=trainable_from,
            encoder_from=encoder,
        )

    return Learners(make, lambda images: model_batch(images, input_size), described)
