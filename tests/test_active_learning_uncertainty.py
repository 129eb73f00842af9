"""The uncertainty library (thesis 5.2.5, 5.2.6.1) and the paper's ResNet50V2 member."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras

from pipeline.architectures import build_member, build_voting_ensemble
from pipeline.architectures.uncertainty import (
    DropoutSampler,
    Uncertainty,
    cascade,
    is_uncertain,
    mc_dropout_uncertainty,
    member_uncertainty,
)
from pipeline.errors import WeightsUnavailable


def _u(mean, std) -> Uncertainty:
    return Uncertainty(mean=np.array(mean), std=np.array(std), passes=30)


def test_uncertain_means_the_threshold_lies_within_one_standard_deviation():
    assert is_uncertain(np.array([0.45, 0.45, 0.7, 0.5]), np.array([0.05, 0.04, 0.3, 0.0])).tolist() == [
        True,  # 0.5 is the interval's upper end: inside.
        False,
        True,
        True,
    ]


def test_the_cascade_consults_the_bce_model_only_when_the_wrl_model_is_unsure():
    wrl = _u([0.90, 0.55, 0.45, 0.10], [0.05, 0.10, 0.10, 0.30])
    bce = _u([0.20, 0.20, 0.52, 0.20], [0.05, 0.05, 0.10, 0.05])
    decision = cascade(wrl, bce)
    # Sure WRL; unsure WRL and sure BCE; both unsure: the average; WRL sure (0.1 + 0.3 stays below 0.5).
    assert decision.source == ["wrl", "bce", "average", "wrl"]
    assert decision.probability == pytest.approx([0.90, 0.20, (0.45 + 0.52) / 2, 0.10])
    # At 0.3, WRL's 0.1 +- 0.3 is unsure and BCE's 0.2 +- 0.05 is not.
    assert cascade(wrl, bce, threshold=0.3).source[3] == "bce"


@pytest.fixture(scope="module")
def tiny_member():
    tf_keras.utils.set_random_seed(0)
    return build_member("mobilenetv2_035", weights=None, input_size=32, name="tiny_a")


def test_dropout_sampler_without_dropout_is_the_member_itself(tiny_member):
    images = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype(np.float32)
    draws = DropoutSampler([tiny_member], rate=0.0).draws(images, passes=2)
    assert draws.shape == (2, 6)
    np.testing.assert_allclose(draws[0], tiny_member.predict(images, verbose=0).ravel(), atol=1e-5)


def test_mc_dropout_gives_a_spread_and_weighs_members_by_the_vote(tiny_member):
    images = np.random.default_rng(1).uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)
    other = build_member("mobilenetv2_035", weights=None, input_size=32, name="tiny_b")
    ensemble = build_voting_ensemble([tiny_member, other])
    ensemble.get_layer("vote").set_weights([np.array([[3.0], [1.0]], np.float32)])
    sampler = DropoutSampler.of(ensemble, rate=0.0)
    assert sampler.weights.tolist() == pytest.approx([0.75, 0.25])
    np.testing.assert_allclose(sampler.draws(images, 1)[0], ensemble.predict(images, verbose=0).ravel(), atol=1e-5)
    result = mc_dropout_uncertainty(ensemble, images, passes=20)
    assert result.mean.shape == (5,) and result.std.shape == (5,) and (result.std > 0).all()
    each = member_uncertainty(ensemble, images, passes=3)
    assert sorted(each) == ["tiny_a", "tiny_b"] and each["tiny_b"].std.shape == (5,)
    with pytest.raises(ValueError, match="at least 2 passes"):
        mc_dropout_uncertainty(ensemble, images, passes=1)


def test_the_papers_resnet50v2_trains_from_conv5_block3_1_on():
    model = build_member("resnet50v2_al", weights=None, input_size=32)
    assert model.count_params() == 24_624_641  # The thesis head on ResNet50V2: the same parameters.
    encoder = model.get_layer("resnet50v2")
    trainable = [layer.name for layer in encoder.layers if layer.trainable]
    assert trainable[0] == "conv5_block3_1_conv" and "conv5_block3_preact_bn" not in trainable
    assert trainable[-1] == "post_relu" and len(trainable) == 11


def test_the_papers_resnet50v2_offline_with_imagenet_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(WeightsUnavailable, match="weights=None"):
        build_member("resnet50v2_al", weights="imagenet", input_size=32)
