"""Model profiles: which architectures make up a deployment, and how they train (`models/<name>.yaml`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from pipeline.config import get_settings

Role = Literal["classifier", "segmenter"]
Backend = Literal["keras", "onnx"]
ClassificationLoss = Literal["wrl", "bce", "macro_soft_f1", "double_soft_f1"]
SegmentationLoss = Literal["iou", "dice", "tversky", "focal", "bce"]
EncoderWeights = Literal["imagenet", "none"]


class TrainingSpec(BaseModel):
    """Hyper-parameters of one training run (the thesis' values in the thesis profile)."""

    learning_rate: float = Field(gt=0)
    epochs: int = Field(gt=0, description="Most epochs; early stopping may end sooner.")
    patience: int = Field(gt=0, description="Epochs without a better validation score before stopping.")
    batch_size: int = Field(gt=0)
    encoder_weights: EncoderWeights = Field("imagenet", description="Where encoders start: ImageNet, or random.")
    seed: int = 0

    @property
    def weights(self) -> str | None:
        return None if self.encoder_weights == "none" else self.encoder_weights


class MemberSpec(BaseModel):
    name: str
    architecture: str
    loss: ClassificationLoss = "wrl"


class ClassifierSpec(BaseModel):
    input_size: int = 224
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="The gore probability the classifier was tuned for.")
    backend: Backend = Field("keras", description="What serves it by default: the faster on `make bench`.")
    members: list[MemberSpec] = Field(min_length=1)

    @property
    def architecture(self) -> str:
        return "voting_ensemble(" + ", ".join(f"{m.architecture}:{m.loss}" for m in self.members) + ")"


class SegmenterSpec(BaseModel):
    input_size: int = 224
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Pixel probability above which a pixel is gore.")
    backend: Backend = Field("keras", description="What serves it by default: the faster on `make bench`.")
    backbone: str = "efficientnetb7"
    pyramid_block_filters: int = 24
    loss: SegmentationLoss = "iou"

    @property
    def architecture(self) -> str:
        return f"fpn{self.pyramid_block_filters}_{self.backbone}"


class TrainingPlan(BaseModel):
    member: TrainingSpec = Field(description="Each classifier member (the vote on top trains on its own).")
    segmenter: TrainingSpec


class Profile(BaseModel):
    name: str
    demo: bool
    description: str
    classifier: ClassifierSpec
    segmenter: SegmenterSpec
    training: TrainingPlan | None = Field(None, description="How `gore-censor train` trains this profile's models.")

    def training_plan(self) -> TrainingPlan:
        if self.training is None:
            raise ValueError(f"the {self.name} profile has no `training:` section: add one to train its models")
        return self.training


def _directory(directory: Path | None) -> Path:
    return Path(directory) if directory is not None else get_settings().profiles_dir


def available_profiles(directory: Path | None = None) -> list[str]:
    return sorted(path.stem for path in _directory(directory).glob("*.yaml"))


def load_profile(name: str, directory: Path | None = None) -> Profile:
    folder = _directory(directory)
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {name!r}; profiles in {folder}: {available_profiles(folder)}")
    return Profile.model_validate(yaml.safe_load(path.read_text()))
