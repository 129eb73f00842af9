"""ONNX Runtime as a model backend: every registered model is also exported with tf2onnx, checked
against the Keras model, kept beside it, and served when GORE_BACKEND (or the profile) says so."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import bentoml
import httpx
import numpy as np
import pytest
from PIL import Image
from serving import bentoml_server, grant

from pipeline.architectures import build_profile_model
from pipeline.errors import ModelNotReady
from pipeline.model_store.loading import backend_for, load_stored, stored_model
from pipeline.model_store.onnx import ONNX_FILE, OnnxModel
from pipeline.model_store.registry import register_model
from pipeline.profiles import ClassifierSpec, MemberSpec, Profile, SegmenterSpec

SMALL = Profile(
    name="onnxtest",
    demo=True,
    description="DEMO test models: 64 px, untrained, for the ONNX backend.",
    classifier=ClassifierSpec(
        input_size=64,
        backend="onnx",
        members=[
            MemberSpec(name="a", architecture="mobilenetv2"),
            MemberSpec(name="b", architecture="mobilenetv2", loss="bce"),
        ],
    ),
    segmenter=SegmenterSpec(input_size=64, backbone="mobilenetv2", backend="keras"),
)


@pytest.fixture(scope="module")
def registered():
    tags, models = {}, {}
    for role in ("classifier", "segmenter"):
        models[role] = build_profile_model(SMALL, role, weights=None)
        tags[role] = register_model(models[role], role=role, profile=SMALL, trained=True, source="tests/test_onnx.py")
    return tags, models


@pytest.mark.parametrize("role", ["classifier", "segmenter"])
def test_the_onnx_copy_gives_the_keras_models_outputs(registered, role):
    tags, models = registered
    stored = stored_model(tags[role])
    assert stored.info.metadata["backends"] == ["keras", "onnx"] and os.path.isfile(stored.path_of(ONNX_FILE))
    images = np.random.default_rng(5).uniform(0, 255, (5, 64, 64, 3)).astype(np.float32)  # Another batch size too.
    onnx = load_stored(stored, "onnx")
    assert isinstance(onnx, OnnxModel) and onnx.input_shape == (None, 64, 64, 3)
    np.testing.assert_allclose(onnx.predict_on_batch(images), models[role].predict_on_batch(images), rtol=0, atol=1e-4)


def test_the_backend_is_the_profiles_unless_the_setting_names_one(registered):
    tags, _ = registered
    assert backend_for(stored_model(tags["classifier"])) == "onnx", "the profile says onnx"
    assert backend_for(stored_model(tags["segmenter"])) == "keras"
    assert backend_for(stored_model(tags["segmenter"]), "onnx") == "onnx"


def test_a_model_stored_without_an_onnx_copy_refuses_the_onnx_backend():
    from red_pixel_models import TEST_PROFILE, red_classifier

    tag = register_model(
        red_classifier(),
        role="classifier",
        profile=TEST_PROFILE,
        trained=True,
        source="test",
        architecture="red_pixel_fraction",
        with_onnx=False,
    )
    with pytest.raises(ModelNotReady, match="has no onnx copy"):
        backend_for(stored_model(tag), "onnx")
    bentoml.models.delete(tag)


def test_models_check_verifies_the_onnx_copy(registered):
    tags, _ = registered
    gore_censor = os.path.join(os.path.dirname(sys.executable), "gore-censor")
    done = subprocess.run(
        [gore_censor, "models", "check", tags["segmenter"], "--backend", "onnx"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_service_serves_with_onnx_runtime_and_answers_as_keras_does(red_model_tags, tmp_path):
    """On an image the red-pixel classifier is unsure of (sigmoid(100 x 5.9% red - 5), about 0.72,
    far from 0 and 1 where any two backends agree), both backends give the same probability."""
    pixels = np.full((300, 300, 3), 30, np.uint8)
    pixels[100:173, 100:173] = (200, 20, 20)  # 73 x 73 of 300 x 300: 5.9% red.
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    answers = {}
    for backend in ("onnx", "keras"):
        data = tmp_path / backend
        env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(data), "GORE_BACKEND": backend}
        with bentoml_server(env, tmp_path / f"{backend}.log") as url:
            response = httpx.post(
                f"{url}/censor",
                files={"image": ("r.png", buffer.getvalue())},
                headers=grant(data, "ingest"),
                timeout=120,
            )
        assert response.status_code == 200, response.text
        answers[backend] = response.json()
    expected = 1 / (1 + np.exp(-(100 * 73 * 73 / 300**2 - 5)))
    assert answers["keras"]["gore_probability"] == pytest.approx(expected, abs=0.05), "unsure, as the model says"
    assert answers["onnx"]["gore"] is True
    assert answers["onnx"]["gore_probability"] == pytest.approx(answers["keras"]["gore_probability"], abs=1e-4)
    assert answers["onnx"]["censored_fraction"] == pytest.approx(answers["keras"]["censored_fraction"], abs=1e-3)


def test_a_model_service_says_which_backend_runs_its_model(red_model_tags, tmp_path):
    with bentoml_server(
        {"GORE_PROFILE": "redtest", "GORE_BACKEND": "onnx"}, tmp_path / "c.log", target="service:Classifier"
    ) as url:
        info = httpx.post(f"{url}/info", json={}, timeout=60).json()
    assert info["backend"] == "onnx" and info["tag"] == red_model_tags["classifier"]
