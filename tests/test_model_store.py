"""Profiles and the BentoML model store: what is registered, and what may be served."""

from __future__ import annotations

import bentoml
import numpy as np
import pytest

from pipeline.architectures import build_profile_model
from pipeline.errors import ModelNotReady
from pipeline.model_store.imports import load_weights_file
from pipeline.model_store.loading import load_for_serving, stored_model
from pipeline.model_store.probes import probe_images
from pipeline.model_store.registry import register_model
from pipeline.profiles import available_profiles, load_profile


def test_the_two_profiles():
    assert {"thesis", "demo"} <= set(available_profiles())
    thesis, demo = load_profile("thesis"), load_profile("demo")
    assert [m.architecture for m in thesis.classifier.members] == ["vgg16", "mobilenetv2", "densenet121", "vgg16"]
    assert [m.loss for m in thesis.classifier.members] == ["wrl", "wrl", "wrl", "bce"]
    assert (thesis.segmenter.backbone, thesis.segmenter.pyramid_block_filters) == ("efficientnetb7", 24)
    assert not thesis.demo and demo.demo and "DEMO" in demo.description


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ValueError, match="thesis"):
        load_profile("nope")


@pytest.fixture(scope="module")
def demo_profile():
    return load_profile("demo")


@pytest.fixture(scope="module")
def demo_classifier(demo_profile):
    return build_profile_model(demo_profile, "classifier", weights=None)


def test_registered_models_carry_their_metadata(demo_profile, demo_classifier):
    tag = register_model(demo_classifier, role="classifier", profile=demo_profile, trained=False, source="test")
    meta = bentoml.models.get(tag).info.metadata
    assert tag.startswith("gore-classifier-demo:")
    fingerprint = meta.pop("fingerprint")
    assert meta == {
        "profile": "demo",
        "role": "classifier",
        "architecture": demo_profile.classifier.architecture,
        "input_size": demo_profile.classifier.input_size,
        "threshold": 0.5,
        "parameters": demo_classifier.count_params(),
        "trained": False,
        "demo": True,
        "source": "test",
        "metrics": {},
        "spec": demo_profile.classifier.model_dump(),
        "backends": ["keras", "onnx"],
        "backend": demo_profile.classifier.backend,
    }
    probes = probe_images(demo_profile.classifier.input_size)
    assert fingerprint == pytest.approx(demo_classifier.predict_on_batch(probes).ravel().tolist(), abs=1e-6), (
        "outputs on the probes"
    )
    assert bentoml.models.get(tag).info.labels["demo"] == "true"


def test_untrained_models_are_refused_unless_dry_run(demo_profile, demo_classifier):
    tag = register_model(demo_classifier, role="classifier", profile=demo_profile, trained=False, source="test")
    with pytest.raises(ModelNotReady, match="never trained.*GORE_ALLOW_UNTRAINED=1"):
        load_for_serving(stored_model(tag), allow_untrained=False)
    model, info = load_for_serving(stored_model(tag), allow_untrained=True, backend="keras")
    assert not info.trained and info.demo and model.count_params() == demo_classifier.count_params()


def test_a_missing_model_says_how_to_make_one():
    with pytest.raises(ModelNotReady, match="make models"):
        stored_model("gore-classifier-absent:latest")


def test_models_round_trip_through_the_store(red_model_tags):
    model, info = load_for_serving(stored_model(red_model_tags["classifier"]), allow_untrained=False)
    red = np.zeros((1, 224, 224, 3), np.float32)
    red[..., 0] = 220
    assert model.predict(red, verbose=0).item() > 0.99 and info.trained and info.architecture == "red_pixel_fraction"


def test_import_a_whole_keras_model(tmp_path, demo_profile, demo_classifier):
    path = tmp_path / "mine.keras"
    demo_classifier.save(path)
    imported, architecture = load_weights_file(path, demo_profile, "classifier")
    assert architecture is None, "the profile's own architecture: rebuilt from the spec on load"
    size = demo_profile.classifier.input_size
    image = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    np.testing.assert_allclose(imported.predict(image, verbose=0), demo_classifier.predict(image, verbose=0), rtol=1e-5)


def test_import_bare_h5_weights_into_the_profile_architecture(tmp_path, demo_profile):
    segmenter = build_profile_model(demo_profile, "segmenter", weights=None)
    fpn = segmenter.layers[-1]  # The thesis' code saved weights of a bare sm.FPN.
    fpn.set_weights([w + 0.01 for w in fpn.get_weights()])
    path = tmp_path / "fpn_weights.h5"
    fpn.save_weights(path)
    imported, architecture = load_weights_file(path, demo_profile, "segmenter")
    assert architecture is None
    size = demo_profile.segmenter.input_size
    image = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    np.testing.assert_allclose(
        imported.predict(image, verbose=0), segmenter.predict(image, verbose=0), rtol=1e-4, atol=1e-6
    )


def test_import_refuses_files_that_do_not_fit(tmp_path, demo_profile):
    with pytest.raises(FileNotFoundError):
        load_weights_file(tmp_path / "absent.h5", demo_profile, "classifier")
    wrong = tmp_path / "notes.txt"
    wrong.write_text("x")
    with pytest.raises(ValueError, match=".keras or .h5"):
        load_weights_file(wrong, demo_profile, "classifier")
    from red_pixel_models import red_classifier

    small = red_classifier()
    small.save_weights(tmp_path / "other.h5")
    with pytest.raises(ValueError, match="do not fit"):
        load_weights_file(tmp_path / "other.h5", demo_profile, "classifier")
