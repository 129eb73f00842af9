"""Keras builders for the thesis architectures (SPEC sections 2 and 3).

Every model takes raw RGB in [0, 255], shape (N, S, S, 3): its encoder's own preprocessing is
a layer inside it, so no caller can feed the wrong scaling.
"""

from pipeline.architectures.classifier import MEMBER_ARCHITECTURES, build_member, build_voting_ensemble
from pipeline.architectures.from_spec import build_classifier, build_from_spec, build_profile_model, role_spec
from pipeline.architectures.segmenter import SEGMENTER_BACKBONES, build_segmenter

__all__ = [
    "MEMBER_ARCHITECTURES",
    "SEGMENTER_BACKBONES",
    "build_classifier",
    "build_from_spec",
    "build_member",
    "build_profile_model",
    "build_segmenter",
    "build_voting_ensemble",
    "role_spec",
]
