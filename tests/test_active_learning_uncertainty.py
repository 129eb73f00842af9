"""The uncertainty library (thesis 5.2.5, 5.2.6.1) and the paper's ResNet50V2 member."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras

from pipeline.architectures import build_member, build_voting_ensemble
from pipeline.errors import WeightsUnavailable
from pipeline.uncertainty.dropout import (
    DropoutSampler,
    Uncertainty,
    cascade,
    is_uncertain,
    mc_dropout_uncertainty,
    member_uncertainty,
)


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


def test_the_served_summary_weighs_the_members_like_the_vote_and_censors_in_doubt():
    from pipeline.uncertainty.served import ClassifierSample, MemberSample, cascade_refusal, summarise

    # Columns: image 0 (a still), then image 1's two frames. Four passes each.
    wrl = MemberSample(
        name="m_wrl",
        loss="wrl",
        weight=0.75,
        probabilities=[0.5, 0.1, 0.2],
        draws=[[0.45, 0.1, 0.2], [0.55, 0.1, 0.2], [0.45, 0.1, 0.2], [0.55, 0.1, 0.2]],
    )
    bce = MemberSample(
        name="m_bce", loss="bce", weight=0.25, probabilities=[0.8, 0.1, 0.3], draws=[[0.8, 0.1, 0.3]] * 4
    )
    sample = ClassifierSample(passes=4, members=[wrl, bce])
    still, animation = summarise(sample, [1, 2], threshold=0.5, with_cascade=True)
    # The vote's passes on image 0: 0.75 * (0.45 | 0.55) + 0.25 * 0.8 = 0.5375 | 0.6125.
    assert still.mean == pytest.approx(0.575) and still.std == pytest.approx(0.0375)
    assert still.uncertain is False and still.censors is True
    assert [(m.name, m.mean, m.std) for m in still.members] == [("m_wrl", 0.5, 0.05), ("m_bce", 0.8, 0.0)]
    # WRL unsure (0.5 within 0.45..0.55), BCE sure: the BCE member decides.
    assert (still.cascade.source, still.cascade.probability) == ("bce", 0.8)
    # Image 1: its most doubtful frame (the second) speaks for it; nobody is unsure there.
    assert animation.frame == 1 and animation.mean == pytest.approx(0.75 * 0.2 + 0.25 * 0.3) and animation.std == 0
    assert (animation.cascade.source, animation.cascade.probability, animation.censors) == ("wrl", 0.2, False)
    # A lower threshold within the spread: doubt censors.
    [doubtful] = summarise(sample, [1], threshold=0.6, with_cascade=False)
    assert doubtful.uncertain and doubtful.censors and doubtful.cascade is None

    only_wrl = ClassifierSample(passes=4, members=[wrl])
    assert cascade_refusal(sample) is None and "WRL and BCE" in cascade_refusal(only_wrl)


def test_the_dropout_sampler_gives_each_members_plain_answer_from_the_same_features():
    from red_pixel_models import red_vote

    ensemble = red_vote()  # Members whose features are red pixels: an untrained encoder's are all ~0.
    images = np.full((3, 224, 224, 3), (50, 110, 70), np.float32)
    images[1, :50, :50] = images[2, :120, :120] = (230, 20, 20)
    plain, draws = DropoutSampler.of(ensemble).sample(images, passes=5)
    assert plain.shape == (2, 3) and draws.shape == (2, 5, 3)
    members = [ensemble.get_layer(name) for name in ("red_wrl", "red_bce")]
    assert np.allclose(plain, [m.predict(images, verbose=0).ravel() for m in members], atol=1e-5)
    spread = draws.std(axis=1)
    assert (spread[:, 0] < 1e-6).all() and (spread[:, 1] > 1e-3).all()  # Dropout drops red features only.
