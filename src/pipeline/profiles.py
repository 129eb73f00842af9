"""Model profiles: which architectures make up a deployment (`models/<name>.yaml`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

# The repository's models/ folder; an installed (non-editable) package is told where it is.
PROFILES_DIR = Path(os.environ.get("GORE_PROFILES_DIR") or Path(__file__).resolve().parents[2] / "models")


class MemberSpec(BaseModel):
    name: str
    architecture: str
    loss: Literal["wrl", "bce", "macro_soft_f1", "double_soft_f1"] = "wrl"


class ClassifierSpec(BaseModel):
    input_size: int = 224
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    members: list[MemberSpec] = Field(min_length=1)

    @property
    def architecture(self) -> str:
        return "voting_ensemble(" + ", ".join(f"{m.architecture}:{m.loss}" for m in self.members) + ")"


class SegmenterSpec(BaseModel):
    input_size: int = 224
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    backbone: str = "efficientnetb7"
    pyramid_block_filters: int = 24

    @property
    def architecture(self) -> str:
        return f"fpn{self.pyramid_block_filters}_{self.backbone}"


class Profile(BaseModel):
    name: str
    demo: bool
    description: str
    classifier: ClassifierSpec
    segmenter: SegmenterSpec


def available_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.yaml"))


def load_profile(name: str, directory: Path = PROFILES_DIR) -> Profile:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {name!r}; profiles in {directory}: {available_profiles(directory)}")
    return Profile.model_validate(yaml.safe_load(path.read_text()))
