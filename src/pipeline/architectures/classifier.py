"""Classifier members and the voting ensemble (thesis chapter 5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import tf_keras
from tf_keras import layers

from pipeline.architectures.layers import EncoderPreprocessing, InferenceDropout, PreprocessingMode, WeightedVote
from pipeline.architectures.pretrained import with_weights


@dataclass(frozen=True)
class MemberArchitecture:
    """A Keras application encoder and the preprocessing its ImageNet weights expect."""

    encoder: Callable[..., tf_keras.Model]
    preprocessing: PreprocessingMode
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    trainable_from: str | None = None
    """Fine-tuning: the first encoder layer (a name prefix) that trains; the layers before it stay
    frozen (BatchNorm in inference mode). None: the whole encoder trains (the thesis)."""


apps = tf_keras.applications
MEMBER_ARCHITECTURES: dict[str, MemberArchitecture] = {
    "vgg16": MemberArchitecture(apps.VGG16, "caffe"),
    "vgg19": MemberArchitecture(apps.VGG19, "caffe"),
    "mobilenetv2": MemberArchitecture(apps.MobileNetV2, "tf"),
    "densenet121": MemberArchitecture(apps.DenseNet121, "torch"),
    "resnet50v2": MemberArchitecture(apps.ResNet50V2, "tf"),
    "resnet101v2": MemberArchitecture(apps.ResNet101V2, "tf"),
    # Light member for the demo profile: CPU-trainable in minutes.
    "mobilenetv2_035": MemberArchitecture(apps.MobileNetV2, "tf", {"alpha": 0.35}),
    # The active-learning paper's model (seed 002): ResNet50V2, its ImageNet top replaced by our
    # head, layers from conv5_block3_1 on trainable (Adam 1e-3, batch 32: `gore-censor al`).
    "resnet50v2_al": MemberArchitecture(apps.ResNet50V2, "tf", trainable_from="conv5_block3_1"),
}


def freeze_before(encoder: tf_keras.Model, prefix: str) -> int:
    """Freeze the encoder's layers before the first one named `prefix...`; returns how many trainable remain."""
    names = [layer.name for layer in encoder.layers]
    first = next((i for i, name in enumerate(names) if name.startswith(prefix)), None)
    if first is None:
        raise ValueError(f"{encoder.name} has no layer named {prefix!r}...; its last layers: {names[-5:]}")
    for layer in encoder.layers[:first]:
        layer.trainable = False
    return len(names) - first


def build_member(
    architecture: str,
    *,
    weights: str | None = "imagenet",
    input_size: int = 224,
    inference_dropout: bool = False,
    name: str | None = None,
    trainable_from: str | None = None,
) -> tf_keras.Model:
    """Encoder -> GAP -> BN -> Dense(512, relu) -> BN -> Dense(1, sigmoid), the thesis head.

    With `inference_dropout`, Dropout(0.5) stays on at inference between encoder and pooling.
    `trainable_from` (a layer name prefix) freezes the encoder below that layer; default: the
    architecture's own (`resnet50v2_al`: conv5_block3_1), else every layer trains.
    """
    try:
        arch = MEMBER_ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(
            f"unknown member architecture {architecture!r}; choose one of {sorted(MEMBER_ARCHITECTURES)}"
        ) from None
    shape = (input_size, input_size, 3)
    encoder = with_weights(
        lambda w: arch.encoder(include_top=False, weights=w, input_shape=shape, **arch.encoder_kwargs),
        weights,
        f"classifier member {architecture}",
    )
    if trainable_from or arch.trainable_from:
        freeze_before(encoder, trainable_from or arch.trainable_from)
    inputs = layers.Input(shape, name="image")
    x = EncoderPreprocessing(arch.preprocessing, name="preprocessing")(inputs)
    x = encoder(x)
    if inference_dropout:
        x = InferenceDropout(0.5, name="inference_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="pooling")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="gore_probability")(x)
    return tf_keras.Model(inputs, outputs, name=name or architecture)


def build_voting_ensemble(
    members: Sequence[tf_keras.Model], *, name: str = "voting_ensemble", freeze_members: bool = True
) -> tf_keras.Model:
    """Members' raw probabilities -> learned weighted mean (thesis 5.2.6.2).

    Members are frozen: only the vote is trained on top of them.
    """
    if not members:
        raise ValueError("a voting ensemble needs at least one member")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"member names must be unique, got {names}")
    inputs = layers.Input(members[0].input_shape[1:], name="image")
    for member in members:
        member.trainable = not freeze_members
    probabilities = [member(inputs) for member in members]
    stacked = layers.Concatenate(name="member_probabilities")(probabilities) if len(members) > 1 else probabilities[0]
    outputs = WeightedVote(name="vote")(stacked)
    return tf_keras.Model(inputs, outputs, name=name)
