"""Our classifier members as the loop's learner: the paper's ResNet50V2, or any member.

Per cycle each member trains for at most `epochs` on every image labelled so far, continuing
from the previous cycle's weights, and stops early on validation loss keeping its best weights
(paper: 5 epochs, Adam 1e-3, batch 32). Batches come from the training code
(`ClassifierBatches`) with the paper's augmentations. Images are resized to the model's input
once, up front, so each epoch augments small images.
"""

from __future__ import annotations

from typing import Literal

import albumentations as A
import cv2
import numpy as np
import tf_keras
from pydantic import BaseModel, Field

from pipeline.active_learning.predict import Committee
from pipeline.active_learning.strategies import PoolPredictions
from pipeline.architectures import build_member
from pipeline.imaging.model_input import model_input
from pipeline.profiles import MemberSpec
from pipeline.training.batches import ClassifierBatches, classifier_augmentation
from pipeline.training.losses import CLASSIFICATION_LOSSES
from pipeline.training.trainers import copy_encoder, follow_batch_statistics

Augmentation = Literal["paper", "thesis", "none"]


def paper_augmentation() -> A.Compose:
    """The paper's list: horizontal and vertical flips, shifts, shear, rotation, zoom. It gives
    no magnitudes; these are Keras' common ImageDataGenerator values."""
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Affine(
                translate_percent={"x": (-0.1, 0.1), "y": (-0.1, 0.1)},
                shear=(-10, 10),
                rotate=(-20, 20),
                scale=(0.9, 1.1),
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.8,
            ),
        ]
    )


AUGMENTATIONS = {"paper": paper_augmentation, "thesis": classifier_augmentation, "none": lambda: None}


class CycleTraining(BaseModel):
    """How members train in each cycle (the paper's values by default)."""

    epochs: int = Field(5, gt=0, description="Most epochs per cycle.")
    patience: int = Field(2, gt=0, description="Epochs without a lower validation loss before stopping.")
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    augmentation: Augmentation = "paper"


class KerasLearner:
    """Members trained on positions of a pool of images (`Learner` of `loop`)."""

    def __init__(
        self,
        pool_images: list[np.ndarray],
        validation_images: list[np.ndarray],
        validation_labels: np.ndarray,
        members: list[MemberSpec],
        *,
        input_size: int,
        training: CycleTraining | None = None,
        weights: str | None = None,
        trainable_from: str | None = None,
        encoder_from: tf_keras.Model | None = None,
    ):
        if not members:
            raise ValueError("the learner needs at least one member")
        self.size, self.training, self.specs = input_size, training or CycleTraining(), members
        self.pool = [model_input(image, input_size) for image in pool_images]
        self.pool_x = np.stack(self.pool).astype(np.float32)
        self.validation = (
            np.stack([model_input(image, input_size) for image in validation_images]).astype(np.float32),
            np.asarray(validation_labels, np.float32)[:, None],
        )
        self.models = []
        for spec in members:
            model = build_member(
                spec.architecture, weights=weights, input_size=input_size, name=spec.name, trainable_from=trainable_from
            )
            if encoder_from is not None and not copy_encoder(encoder_from, model):
                raise ValueError(f"{encoder_from.name} shares no layers with a {spec.architecture} member")
            # Few steps per cycle: BatchNorm's moving statistics must keep up (see `follow_batch_statistics`).
            follow_batch_statistics(model)
            self.models.append(model)
        self.initial = [model.get_weights() for model in self.models]
        self.committee = Committee(self.models)
        self.seed, self.fits = 0, 0

    def start(self, seed: int) -> None:
        tf_keras.utils.set_random_seed(seed)
        self.seed, self.fits = seed, 0
        for model, weights, spec in zip(self.models, self.initial, self.specs, strict=True):
            model.set_weights(weights)
            model.compile(
                tf_keras.optimizers.Adam(self.training.learning_rate), loss=CLASSIFICATION_LOSSES[spec.loss]()
            )

    def fit(self, indices: np.ndarray, labels: np.ndarray) -> None:
        t = self.training
        for model in self.models:
            batches = ClassifierBatches(
                [self.pool[i] for i in indices],
                np.asarray(labels),
                batch_size=t.batch_size,
                size=self.size,
                augment=True,  # Shuffled; the augmentation is chosen below.
                seed=self.seed * 10_007 + self.fits,
            )
            batches.augmentation = AUGMENTATIONS[t.augmentation]()
            stop = tf_keras.callbacks.EarlyStopping(monitor="val_loss", patience=t.patience, restore_best_weights=True)
            model.fit(batches, validation_data=self.validation, epochs=t.epochs, callbacks=[stop], verbose=0)
        self.fits += 1

    def predict(self, indices: np.ndarray, *, mc_passes: int = 0, members: bool = False) -> PoolPredictions:
        return self.committee.predict(self.pool_x[np.asarray(indices)], mc_passes=mc_passes, members=members)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Gore probabilities of model inputs (evaluation)."""
        predictions = self.committee.predict(images)
        assert predictions.probabilities is not None
        return predictions.probabilities


class FeatureCache:
    """A frozen encoder's outputs, computed once per image: the plain view and `views` augmented ones.

    Keyed by the image array itself (the simulation passes the same arrays to every fold, seed
    and strategy), so each image goes through the encoder once per view in the whole run.
    """

    def __init__(self, encoder: tf_keras.Model, *, views: int = 3, augmentation: Augmentation = "paper", seed: int = 0):
        self.encoder, self.views, self.size = encoder, views, encoder.input_shape[1]
        self.augment = AUGMENTATIONS[augmentation]()
        self.rng = np.random.default_rng(seed)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> (image kept alive, views)

    def _encode(self, images: list[np.ndarray]) -> np.ndarray:
        batch = np.stack([model_input(image, self.size) for image in images]).astype(np.float32)
        return self.encoder.predict(batch, batch_size=32, verbose=0)

    def of(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, 1 + views, *feature shape): the plain view first."""
        missing = [image for image in images if id(image) not in self._cache]
        if missing:
            small = [model_input(image, self.size) for image in missing]
            stacks = [self._encode(small)]
            for _ in range(self.views):
                shown = [self.augment(image=s)["image"] if self.augment else s for s in small]
                stacks.append(self._encode(shown))
            for i, image in enumerate(missing):
                self._cache[id(image)] = (image, np.stack([s[i] for s in stacks]))
        return np.stack([self._cache[id(image)][1] for image in images])

    def plain(self, images: list[np.ndarray]) -> np.ndarray:
        return self.of(images)[:, 0]


def frozen_encoder(architecture: str, *, input_size: int, encoder_from: tf_keras.Model | None) -> tf_keras.Model:
    """A member's encoder (its own preprocessing included) up to the head, started from `encoder_from`."""
    member = build_member(architecture, weights=None, input_size=input_size, name="frozen_encoder")
    if encoder_from is not None and not copy_encoder(encoder_from, member):
        raise ValueError(f"{encoder_from.name} shares no layers with a {architecture} member")
    return tf_keras.Model(member.input, member.get_layer("pooling").input)


class FrozenEncoderLearner:
    """Members whose encoder stays frozen: each cycle trains only their heads (the thesis head),
    on the cached encoder outputs of augmented views. The paper trains its encoder's last block
    too; freezing all of it makes a cycle cost milliseconds on a CPU instead of minutes."""

    def __init__(
        self,
        cache: FeatureCache,
        pool_images: list[np.ndarray],
        validation_images: list[np.ndarray],
        validation_labels: np.ndarray,
        members: list[MemberSpec],
        *,
        training: CycleTraining | None = None,
    ):
        self.training, self.specs = training or CycleTraining(), members
        self.pool = cache.of(pool_images)
        self.validation = (cache.plain(validation_images), np.asarray(validation_labels, np.float32)[:, None])
        self.models = [self._head(self.pool.shape[2:], spec.name) for spec in members]
        self.initial = [model.get_weights() for model in self.models]
        self.committee = Committee(self.models)
        self.seed, self.fits = 0, 0

    @staticmethod
    def _head(shape, name: str) -> tf_keras.Model:
        """The thesis head on an encoder's output (the same layers `build_member` puts on top)."""
        from tf_keras import layers

        inputs = layers.Input(shape)
        x = layers.GlobalAveragePooling2D(name="pooling")(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.Dense(512, activation="relu")(x)
        x = layers.BatchNormalization()(x)
        head = tf_keras.Model(inputs, layers.Dense(1, activation="sigmoid", name="gore_probability")(x), name=name)
        follow_batch_statistics(head)
        return head

    def start(self, seed: int) -> None:
        tf_keras.utils.set_random_seed(seed)
        self.seed, self.fits = seed, 0
        for model, weights, spec in zip(self.models, self.initial, self.specs, strict=True):
            model.set_weights(weights)
            optimizer = tf_keras.optimizers.Adam(self.training.learning_rate)
            model.compile(optimizer, loss=CLASSIFICATION_LOSSES[spec.loss]())

    def fit(self, indices: np.ndarray, labels: np.ndarray) -> None:
        """Each image as one of its views, drawn afresh every cycle. Arrays, not a `Sequence`: Keras
        wraps a Sequence in a generator dataset that TensorFlow keeps alive, with its copy of the
        features, long after `fit` returns (tens of GB over a simulation's thousands of fits)."""
        t = self.training
        rng = np.random.default_rng(self.seed * 10_007 + self.fits)
        indices = np.asarray(indices)
        x = self.pool[indices, rng.integers(0, self.pool.shape[1], len(indices))]
        y = np.asarray(labels, np.float32)[:, None]
        for model in self.models:
            stop = tf_keras.callbacks.EarlyStopping(monitor="val_loss", patience=t.patience, restore_best_weights=True)
            model.fit(
                x,
                y,
                batch_size=t.batch_size,
                validation_data=self.validation,
                epochs=t.epochs,
                callbacks=[stop],
                shuffle=True,
                verbose=0,
            )
        self.fits += 1

    def predict(self, indices: np.ndarray, *, mc_passes: int = 0, members: bool = False) -> PoolPredictions:
        return self.committee.predict(self.pool[np.asarray(indices), 0], mc_passes=mc_passes, members=members)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Gore probabilities of cached plain views (`FeatureCache.plain`)."""
        predictions = self.committee.predict(features)
        assert predictions.probabilities is not None
        return predictions.probabilities
