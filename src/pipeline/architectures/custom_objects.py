"""Every custom layer or function a saved model of ours may name, for loading Keras configs.

`segmentation_models`' EfficientNet encoders use `FixedDropout` and `swish`, which exist only
once `efficientnet.tfkeras` has been imported (a side effect). A process that loads a model
without building one first (a model service) never imports it, so the loader passes them
explicitly, made by the efficientnet package's own factories.
"""

from __future__ import annotations

from typing import Any


def keras_custom_objects() -> dict[str, Any]:
    from efficientnet import inject_tfkeras_modules
    from efficientnet import model as efficientnet

    from pipeline.architectures.layers import EncoderPreprocessing, InferenceDropout, WeightedVote

    ours = (EncoderPreprocessing, InferenceDropout, WeightedVote)
    return {
        "swish": inject_tfkeras_modules(efficientnet.get_swish)(),
        "FixedDropout": inject_tfkeras_modules(efficientnet.get_dropout)(),
        **{f"pipeline>{layer.__name__}": layer for layer in ours},
    }
