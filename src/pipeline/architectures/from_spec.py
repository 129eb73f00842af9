"""A profile's models built from its spec: the only way models of a profile come to exist."""

from __future__ import annotations

import tf_keras

from pipeline.architectures.classifier import build_member, build_voting_ensemble
from pipeline.architectures.segmenter import build_segmenter
from pipeline.profiles import ClassifierSpec, Profile, Role, SegmenterSpec


def build_classifier(
    spec: ClassifierSpec, *, profile: str, weights: str | None = None, inference_dropout: bool = False
) -> tf_keras.Model:
    """The voting ensemble of the spec's members; with `inference_dropout`, for MC dropout."""
    members = [
        build_member(
            m.architecture,
            weights=weights,
            input_size=spec.input_size,
            name=m.name,
            inference_dropout=inference_dropout,
        )
        for m in spec.members
    ]
    return build_voting_ensemble(members, name=f"{profile}_classifier")


def build_from_spec(
    role: Role, spec: ClassifierSpec | SegmenterSpec, *, profile: str, weights: str | None = None
) -> tf_keras.Model:
    if role == "classifier":
        assert isinstance(spec, ClassifierSpec)
        return build_classifier(spec, profile=profile, weights=weights)
    assert isinstance(spec, SegmenterSpec)
    return build_segmenter(
        spec.backbone, weights=weights, input_size=spec.input_size, pyramid_block_filters=spec.pyramid_block_filters
    )


def role_spec(profile: Profile, role: Role) -> ClassifierSpec | SegmenterSpec:
    return profile.classifier if role == "classifier" else profile.segmenter


def build_profile_model(profile: Profile, role: Role, *, weights: str | None = "imagenet") -> tf_keras.Model:
    """A fresh model of the profile's architecture (ImageNet encoders where reachable)."""
    return build_from_spec(role, role_spec(profile, role), profile=profile.name, weights=weights)
