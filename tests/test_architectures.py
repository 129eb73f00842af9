"""The thesis architectures, rebuilt exactly: parameter counts from SPEC sections 2 and 3."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras

from pipeline.architectures import build_member, build_segmenter, build_voting_ensemble
from pipeline.architectures.layers import EncoderPreprocessing
from pipeline.errors import WeightsUnavailable

# Table 7 (MobileNetV2: the ensemble totals confirm ...537), with the thesis head.
MEMBER_PARAMETERS = {
    "mobilenetv2": 2_921_537,
    "vgg16": 14_981_953,
    "vgg19": 20_291_649,
    "densenet121": 7_568_961,
    "resnet50v2": 24_624_641,
    "resnet101v2": 43_686_401,
}


@pytest.mark.parametrize("architecture", sorted(MEMBER_PARAMETERS))
def test_member_parameter_counts_match_the_thesis(architecture):
    assert build_member(architecture, weights=None).count_params() == MEMBER_PARAMETERS[architecture]


def _members(*specs):
    return [build_member(arch, weights=None, name=name) for arch, name in specs]


def test_voting_mixed_has_40_454_408_parameters():
    members = _members(
        ("vgg16", "vgg16_wrl"), ("mobilenetv2", "mnv2_wrl"), ("densenet121", "dn121_wrl"), ("vgg16", "vgg16_bce")
    )
    assert build_voting_ensemble(members).count_params() == 40_454_408


def test_voting_wrl_has_25_472_454_parameters():
    members = _members(("vgg16", "vgg16_wrl"), ("mobilenetv2", "mnv2_wrl"), ("densenet121", "dn121_wrl"))
    assert build_voting_ensemble(members).count_params() == 25_472_454


def test_fpn24_efficientnetb7_has_64_235_813_parameters():
    assert build_segmenter("efficientnetb7", weights=None, pyramid_block_filters=24).count_params() == 64_235_813


def test_segmenter_outputs_one_probability_per_pixel():
    """The logistic function of the head's per-pixel score, at the input's resolution."""
    model = build_segmenter("mobilenetv2", weights=None)
    images = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    out = model.predict(images, verbose=0)
    [fpn] = [layer for layer in model.layers if isinstance(layer, tf_keras.Model)]  # Its name depends on build order.
    scores = tf_keras.Model(fpn.input, fpn.get_layer("head_conv").output)
    logits = scores.predict(model.get_layer("preprocessing")(images).numpy(), verbose=0)
    assert out.shape == (2, 224, 224, 1)
    np.testing.assert_allclose(out, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocessing_inside_the_model_equals_keras_preprocess_input(mode):
    """Models take raw RGB 0-255; the layer does exactly what each encoder's preprocess_input does."""
    raw = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = tf_keras.applications.imagenet_utils.preprocess_input(raw.copy(), mode=mode)
    np.testing.assert_allclose(EncoderPreprocessing(mode)(raw).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_members_use_their_encoders_own_preprocessing():
    modes = {
        arch: build_member(arch, weights=None).get_layer("preprocessing").mode
        for arch in ("vgg16", "mobilenetv2", "densenet121")
    }
    assert modes == {"vgg16": "caffe", "mobilenetv2": "tf", "densenet121": "torch"}


def test_inference_dropout_stays_active_at_inference():
    """Dropout(0.5) between encoder and pooling that drops units even when training=False."""
    model = build_member("mobilenetv2_035", weights=None, inference_dropout=True)
    names = [layer.name for layer in model.layers]
    assert names.index("inference_dropout") == names.index("pooling") - 1
    dropout = model.get_layer("inference_dropout")
    out = dropout(np.ones((1, 10_000), np.float32), training=False).numpy()
    assert 0.4 < (out == 0).mean() < 0.6
    assert "inference_dropout" not in [layer.name for layer in build_member("mobilenetv2_035", weights=None).layers]


def test_the_vote_is_a_weighted_mean_of_member_probabilities():
    members = _members(("mobilenetv2_035", "a"), ("mobilenetv2_035", "b"))
    ensemble = build_voting_ensemble(members)
    ensemble.get_layer("vote").set_weights([np.array([[3.0], [1.0]], np.float32)])
    image = np.random.default_rng(3).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    p_a, p_b = (m.predict(image, verbose=0) for m in members)
    np.testing.assert_allclose(ensemble.predict(image, verbose=0), (3 * p_a + p_b) / 4, rtol=1e-5)
    assert all(not m.trainable for m in members), "members are frozen while the vote trains"


def test_ensemble_member_names_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        build_voting_ensemble(_members(("mobilenetv2_035", "same"), ("mobilenetv2_035", "same")))


def test_unknown_architectures_are_named_in_the_error():
    with pytest.raises(ValueError, match="choose one of"):
        build_member("alexnet", weights=None)
    with pytest.raises(ValueError, match="choose one of"):
        build_segmenter("alexnet", weights=None)


def test_imagenet_weights_offline_fail_with_a_clear_message(tmp_path, monkeypatch):
    """No network: the download fails at once (a dead proxy), and the error says what to do."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(WeightsUnavailable, match="weights=None"):
        build_member("mobilenetv2_035", weights="imagenet")
