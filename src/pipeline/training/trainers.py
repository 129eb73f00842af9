"""Training loops: a classifier member, the vote on frozen members, the segmenter.

Each run writes to its own folder: `best.weights.h5` (best validation score so far),
`last.weights.h5` and `log.csv` (one row per epoch). `resume=True` continues from the last
weights at the epoch after the last logged one (the optimizer starts afresh). Checkpoints are
weights only: the model is rebuilt from its spec, as the model store does, which is fast and
needs no custom objects. Keras prints a progress bar per epoch.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tf_keras

from pipeline.architectures import build_member, build_segmenter, build_voting_ensemble
from pipeline.architectures.layers import WeightedVote
from pipeline.data.manifest import Dataset
from pipeline.losses import CLASSIFICATION_LOSSES, iou_loss
from pipeline.metrics import classification_metrics, segmentation_metrics
from pipeline.profiles import MemberSpec, SegmenterSpec
from pipeline.training.batches import (
    ClassifierBatches,
    SegmenterBatches,
    load_images,
    load_masks,
    split_samples,
    whole_images,
    whole_masks,
)


BEST, LAST = "best.weights.h5", "last.weights.h5"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1000
    batch_size: int = 16
    learning_rate: float = 1e-5
    patience: int = 300
    weights: str | None = "imagenet"
    seed: int = 0
    verbose: int = 1


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
    model: tf_keras.Model, compile_model: Callable[[tf_keras.Model], None], batches, score: ValidationScore,
    run_dir: Path, config: TrainConfig, resume: bool,
) -> tf_keras.Model:
    run_dir.mkdir(parents=True, exist_ok=True)
    log, last, best = run_dir / "log.csv", run_dir / LAST, run_dir / BEST
    initial_epoch = 0
    if resume and last.is_file():
        model.load_weights(last)
        initial_epoch = _logged_epochs(log)
    if config.weights is None:
        follow_batch_statistics(model)
    compile_model(model)
    monitor = f"val_{score.name}"
    callbacks = [
        score,  # First: the others read what it logs.
        tf_keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=config.patience, restore_best_weights=True),
        tf_keras.callbacks.ModelCheckpoint(str(best), monitor=monitor, mode="max", save_best_only=True, save_weights_only=True),
        tf_keras.callbacks.ModelCheckpoint(str(last), save_weights_only=True),
        tf_keras.callbacks.CSVLogger(str(log), append=resume),
    ]
    if initial_epoch < config.epochs:
        model.fit(batches, epochs=config.epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=config.verbose)
    model.load_weights(best if best.is_file() else last)
    return model


def load_member(run_dir: Path, member: MemberSpec, *, input_size: int) -> tf_keras.Model:
    """A trained member from its run folder: the architecture rebuilt, the best weights loaded."""
    model = build_member(member.architecture, weights=None, input_size=input_size, name=member.name)
    model.load_weights(Path(run_dir) / BEST)
    return model


def train_member(data_dir: Path, member: MemberSpec, run_dir: Path, config: TrainConfig, *, input_size: int = 224,
                 resume: bool = False, encoder_from: tf_keras.Model | None = None) -> tuple[tf_keras.Model, dict[str, float]]:
    """One classifier member, early-stopped on validation Double F1; `encoder_from` starts its
    encoder from another trained model's matching layers (see `copy_encoder`)."""
    dataset = Dataset.load(data_dir)
    train, validation = split_samples(dataset, "train"), split_samples(dataset, "validation")
    labels = np.array([s.gore for s in train])
    batches = ClassifierBatches(load_images(data_dir, train), labels, batch_size=config.batch_size, size=input_size,
                                augment=True, seed=config.seed)
    val_x = whole_images(load_images(data_dir, validation), input_size)
    val_y = np.array([s.gore for s in validation])
    score = ValidationScore("double_f1", val_x, lambda p: classification_metrics(val_y, p)["double_f1"])
    tf_keras.utils.set_random_seed(config.seed)
    model = build_member(member.architecture, weights=config.weights, input_size=input_size, name=member.name)
    if encoder_from is not None and not copy_encoder(encoder_from, model):
        raise ValueError(f"{encoder_from.name} shares no layers with a {member.architecture} member")

    def compile_model(m):
        m.compile(tf_keras.optimizers.Adam(config.learning_rate), loss=CLASSIFICATION_LOSSES[member.loss]())

    model = _fit(model, compile_model, batches, score, Path(run_dir), config, resume)
    return model, classification_metrics(val_y, model.predict(val_x, batch_size=16, verbose=0))


def train_vote(data_dir: Path, members: list[tf_keras.Model], config: TrainConfig, *, input_size: int = 224,
               name: str = "voting_ensemble") -> tuple[tf_keras.Model, dict[str, float]]:
    """The learned weighted vote on frozen members, fitted on the members' training-set probabilities."""
    dataset = Dataset.load(data_dir)
    train, validation = split_samples(dataset, "train"), split_samples(dataset, "validation")
    train_x = whole_images(load_images(data_dir, train), input_size)
    votes = np.concatenate([m.predict(train_x, batch_size=16, verbose=0) for m in members], axis=1)
    head_input = tf_keras.Input((len(members),))
    head = tf_keras.Model(head_input, WeightedVote(name="vote")(head_input))
    head.compile(tf_keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    head.fit(votes, np.array([s.gore for s in train], np.float32), epochs=50, batch_size=64, verbose=0)
    ensemble = build_voting_ensemble(members, name=name)
    ensemble.get_layer("vote").set_weights(head.get_layer("vote").get_weights())
    val_x = whole_images(load_images(data_dir, validation), input_size)
    metrics = classification_metrics([s.gore for s in validation], ensemble.predict(val_x, batch_size=16, verbose=0))
    return ensemble, metrics


def train_segmenter(data_dir: Path, spec: SegmenterSpec, run_dir: Path, config: TrainConfig, *, positives_only: bool = True,
                    resume: bool = False) -> tuple[tf_keras.Model, dict[str, float]]:
    """FPN on random patches with joint augmentation, IoU loss, early-stopped on validation IoU.

    `positives_only`: train and validate on images with gore, like the thesis' segmentation set
    (in the pipeline the classifier keeps other images away from the segmenter).
    """
    dataset = Dataset.load(data_dir)

    def chosen(split: str):
        return [s for s in split_samples(dataset, split, with_masks=True) if s.gore or not positives_only]

    train, validation = chosen("train"), chosen("validation")
    batches = SegmenterBatches(load_images(data_dir, train), load_masks(data_dir, train), batch_size=config.batch_size,
                               size=spec.input_size, seed=config.seed)
    val_x = whole_images(load_images(data_dir, validation), spec.input_size)
    val_masks = whole_masks(load_masks(data_dir, validation), spec.input_size)
    score = ValidationScore("iou", val_x, lambda p: segmentation_metrics(val_masks, p[..., 0], spec.threshold)["iou"])
    tf_keras.utils.set_random_seed(config.seed)
    model = build_segmenter(spec.backbone, weights=config.weights, input_size=spec.input_size,
                            pyramid_block_filters=spec.pyramid_block_filters)

    def compile_model(m):
        m.compile(tf_keras.optimizers.Adam(config.learning_rate), loss=iou_loss)

    model = _fit(model, compile_model, batches, score, Path(run_dir), config, resume)
    return model, segmentation_metrics(val_masks, model.predict(val_x, batch_size=8, verbose=0)[..., 0], spec.threshold)
