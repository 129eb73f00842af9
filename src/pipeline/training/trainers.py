"""Training loops: a classifier member, the vote on frozen members, the segmenter.

Each takes loaded splits (`Dataset` views) and the profile's `TrainingSpec`. Each run writes to
its own folder: `best.weights.h5` (best validation score so far), `last.weights.h5` and
`log.csv` (one row per epoch). `resume=True` continues from the last weights at the epoch after
the last logged one (the optimizer starts afresh). Checkpoints are weights only: the model is
rebuilt from its spec, as the model store does, which is fast and needs no custom objects.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tf_keras

from pipeline.architectures import build_member, build_segmenter, build_voting_ensemble
from pipeline.architectures.layers import WeightedVote
from pipeline.data.dataset import Dataset
from pipeline.imaging.model_input import model_batch, model_masks
from pipeline.metrics import classification_metrics, segmentation_metrics
from pipeline.profiles import MemberSpec, SegmenterSpec, TrainingSpec
from pipeline.training.batches import ClassifierBatches, SegmenterBatches
from pipeline.training.losses import CLASSIFICATION_LOSSES, SEGMENTATION_LOSSES

BEST, LAST = "best.weights.h5", "last.weights.h5"
VOTE_EPOCHS, VOTE_LEARNING_RATE = 50, 0.05  # A handful of weights on member outputs: fits in seconds.


class ValidationScore(tf_keras.callbacks.Callback):
    """Puts `val_<name>` into each epoch's logs, for early stopping and checkpoints to watch."""

    def __init__(self, name: str, inputs: np.ndarray, score: Callable[[np.ndarray], float]):
        super().__init__()
        self.name, self.inputs, self.score = name, inputs, score

    def on_epoch_end(self, epoch, logs=None):
        predictions = self.model.predict(self.inputs, batch_size=16, verbose=0)
        if logs is not None:
            logs[f"val_{self.name}"] = float(self.score(predictions))


def follow_batch_statistics(model: tf_keras.Model, momentum: float = 0.9) -> None:
    """From scratch, BatchNorm's moving statistics (Keras applications: momentum 0.99 to 0.999)
    lag hundreds of steps behind the weights, and inference-mode outputs collapse to one class.
    A lower momentum lets them keep up on short runs; pretrained encoders keep theirs."""
    for layer in model.submodules:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = momentum


def _layers(model: tf_keras.Model):
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def copy_encoder(source: tf_keras.Model, target: tf_keras.Model) -> int:
    """Start `target` from `source`'s layers of the same name and weight shapes (for example a
    member's MobileNetV2 encoder from a trained FPN-MobileNetV2 segmenter's). Returns the count."""
    by_name = {layer.name: layer for layer in _layers(source) if layer.weights}
    copied = 0
    for layer in _layers(target):
        other = by_name.get(layer.name)
        if layer.weights and other is not None and [w.shape for w in other.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(other.get_weights())
            copied += 1
    return copied


def _logged_epochs(log: Path) -> int:
    if not log.is_file():
        return 0
    with open(log) as file:
        return max(0, sum(1 for _ in csv.reader(file)) - 1)


def _fit(
    model: tf_keras.Model,
    loss,
    batches,
    score: ValidationScore,
    run_dir: Path,
    spec: TrainingSpec,
    *,
    resume: bool,
    verbose: int,
) -> tf_keras.Model:
    run_dir.mkdir(parents=True, exist_ok=True)
    log, last, best = run_dir / "log.csv", run_dir / LAST, run_dir / BEST
    initial_epoch = 0
    if resume and last.is_file():
        model.load_weights(last)
        initial_epoch = _logged_epochs(log)
    if spec.weights is None:
        follow_batch_statistics(model)
    model.compile(tf_keras.optimizers.Adam(spec.learning_rate), loss=loss)
    monitor = f"val_{score.name}"
    callbacks = [
        score,  # First: the others read what it logs.
        tf_keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=spec.patience, restore_best_weights=True
        ),
        tf_keras.callbacks.ModelCheckpoint(
            str(best), monitor=monitor, mode="max", save_best_only=True, save_weights_only=True
        ),
        tf_keras.callbacks.ModelCheckpoint(str(last), save_weights_only=True),
        tf_keras.callbacks.CSVLogger(str(log), append=resume),
    ]
    if initial_epoch < spec.epochs:
        model.fit(batches, epochs=spec.epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose)
    model.load_weights(best if best.is_file() else last)
    return model


def load_member(run_dir: Path, member: MemberSpec, *, input_size: int) -> tf_keras.Model:
    """A trained member from its run folder: the architecture rebuilt, the best weights loaded."""
    model = build_member(member.architecture, weights=None, input_size=input_size, name=member.name)
    model.load_weights(Path(run_dir) / BEST)
    return model


def train_member(
    train: Dataset,
    validation: Dataset,
    member: MemberSpec,
    run_dir: Path,
    spec: TrainingSpec,
    *,
    input_size: int,
    resume: bool = False,
    encoder_from: tf_keras.Model | None = None,
    verbose: int = 1,
) -> tuple[tf_keras.Model, dict[str, float]]:
    """One classifier member, early-stopped on validation Double F1; `encoder_from` starts its
    encoder from another trained model's matching layers (see `copy_encoder`)."""
    batches = ClassifierBatches(
        train.images(), train.labels(), batch_size=spec.batch_size, size=input_size, augment=True, seed=spec.seed
    )
    val_x, val_y = model_batch(validation.images(), input_size), validation.labels()
    score = ValidationScore("double_f1", val_x, lambda p: classification_metrics(val_y, p)["double_f1"])
    tf_keras.utils.set_random_seed(spec.seed)
    model = build_member(member.architecture, weights=spec.weights, input_size=input_size, name=member.name)
    if encoder_from is not None and not copy_encoder(encoder_from, model):
        raise ValueError(f"{encoder_from.name} shares no layers with a {member.architecture} member")
    loss = CLASSIFICATION_LOSSES[member.loss]()
    model = _fit(model, loss, batches, score, Path(run_dir), spec, resume=resume, verbose=verbose)
    return model, classification_metrics(val_y, model.predict(val_x, batch_size=16, verbose=0))


def train_vote(
    train: Dataset,
    validation: Dataset,
    members: list[tf_keras.Model],
    *,
    input_size: int,
    name: str = "voting_ensemble",
) -> tuple[tf_keras.Model, dict[str, float]]:
    """The learned weighted vote on frozen members, fitted on the members' training-set probabilities."""
    train_x = model_batch(train.images(), input_size)
    votes = np.concatenate([m.predict(train_x, batch_size=16, verbose=0) for m in members], axis=1)
    head_input = tf_keras.Input((len(members),))
    head = tf_keras.Model(head_input, WeightedVote(name="vote")(head_input))
    head.compile(tf_keras.optimizers.Adam(VOTE_LEARNING_RATE), loss="binary_crossentropy")
    head.fit(votes, train.labels().astype(np.float32), epochs=VOTE_EPOCHS, batch_size=64, verbose=0)
    ensemble = build_voting_ensemble(members, name=name)
    ensemble.get_layer("vote").set_weights(head.get_layer("vote").get_weights())
    val_x = model_batch(validation.images(), input_size)
    return ensemble, classification_metrics(validation.labels(), ensemble.predict(val_x, batch_size=16, verbose=0))


def train_segmenter(
    train: Dataset,
    validation: Dataset,
    segmenter: SegmenterSpec,
    run_dir: Path,
    spec: TrainingSpec,
    *,
    resume: bool = False,
    verbose: int = 1,
) -> tuple[tf_keras.Model, dict[str, float]]:
    """FPN on random patches with joint augmentation, the profile's loss (IoU in the thesis),
    early-stopped on validation IoU. Pass the splits' images with masks; the thesis trains on
    gore images only (in the pipeline the classifier keeps other images away)."""
    size = segmenter.input_size
    batches = SegmenterBatches(train.images(), train.masks(), batch_size=spec.batch_size, size=size, seed=spec.seed)
    val_x, val_masks = model_batch(validation.images(), size), model_masks(validation.masks(), size)
    score = ValidationScore(
        "iou", val_x, lambda p: segmentation_metrics(val_masks, p[..., 0], segmenter.threshold)["iou"]
    )
    tf_keras.utils.set_random_seed(spec.seed)
    model = build_segmenter(
        segmenter.backbone, weights=spec.weights, input_size=size, pyramid_block_filters=segmenter.pyramid_block_filters
    )
    loss = SEGMENTATION_LOSSES[segmenter.loss]()
    model = _fit(model, loss, batches, score, Path(run_dir), spec, resume=resume, verbose=verbose)
    return model, segmentation_metrics(
        val_masks, model.predict(val_x, batch_size=8, verbose=0)[..., 0], segmenter.threshold
    )
