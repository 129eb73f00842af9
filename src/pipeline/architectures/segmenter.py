"""The gore segmenter: `segmentation_models` FPN (thesis chapter 6)."""

from __future__ import annotations

import tf_keras
from tf_keras import layers

from pipeline.architectures.layers import EncoderPreprocessing, PreprocessingMode
from pipeline.architectures.pretrained import with_weights

# segmentation_models backbones we support, with the preprocessing their ImageNet weights expect
# (what `sm.get_preprocessing(backbone)` applies outside the model; we put it inside).
SEGMENTER_BACKBONES: dict[str, PreprocessingMode] = {
    **{f"efficientnetb{i}": "torch" for i in range(8)},
    "mobilenetv2": "tf",
    "densenet121": "torch",
    "vgg16": "caffe",
}


def build_segmenter(
    backbone: str = "efficientnetb7",
    *,
    weights: str | None = "imagenet",
    input_size: int = 224,
    pyramid_block_filters: int = 24,
) -> tf_keras.Model:
    """FPN, one sigmoid class, raw RGB in: the thesis' FPN24-EfficientNetB7 by default."""
    import segmentation_models as sm  # Heavy, and it must see SM_FRAMEWORK (set by `pipeline`).

    try:
        mode = SEGMENTER_BACKBONES[backbone]
    except KeyError:
        raise ValueError(
            f"unknown segmenter backbone {backbone!r}; choose one of {sorted(SEGMENTER_BACKBONES)}"
        ) from None
    shape = (input_size, input_size, 3)
    fpn = with_weights(
        lambda w: sm.FPN(
            backbone,
            input_shape=shape,
            classes=1,
            activation="sigmoid",
            encoder_weights=w,
            pyramid_block_filters=pyramid_block_filters,
        ),
        weights,
        f"segmenter encoder {backbone}",
    )
    inputs = layers.Input(shape, name="image")
    x = EncoderPreprocessing(mode, name="preprocessing")(inputs)
    outputs = fpn(x)
    return tf_keras.Model(inputs, outputs, name=f"fpn{pyramid_block_filters}_{backbone}")
