"""Every architecture we can build loads back from the model store the way a service loads it.

A model service imports no model builders, so a model that loads only in the process that
built it (custom layers registered as a side effect) is not servable. These tests load in a
fresh process, as `bentoml serve` does, and compare outputs with the model that was registered.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tf_keras
from images import upright
from serving import REPO, bentoml_server, free_port, grant, serve_command

from pipeline.architectures import MEMBER_ARCHITECTURES, SEGMENTER_BACKBONES
from pipeline.model_store.probes import probe_images
from pipeline.model_store.registry import ModelDoesNotLoad, register_model
from pipeline.profiles import ClassifierSpec, MemberSpec, Profile, SegmenterSpec

SIZE = 64  # The smallest input every architecture here accepts (FPN: a multiple of 32).
GORE_CENSOR = str(Path(sys.executable).with_name("gore-censor"))

LOAD_IN_A_FRESH_PROCESS = """
import json, sys
import pipeline
from pipeline.model_store.probes import probe_images
from pipeline.model_store.loading import load_for_serving, stored_model
answers = {}
for tag in sys.argv[1:]:
    try:
        model, info = load_for_serving(stored_model(tag), allow_untrained=True)
        answers[tag] = model.predict_on_batch(probe_images(info.input_size)).tolist()
    except Exception as error:
        answers[tag] = f"{type(error).__name__}: {error}"
print(json.dumps(answers))
"""


def load_elsewhere(tags: list[str]) -> dict[str, list | str]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, *tags],
        capture_output=True,
        text=True,
        timeout=1200,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def profile_for(role: str, architecture: str) -> Profile:
    return Profile(
        name=f"loadtest-{architecture}",
        demo=False,
        description="Load test: untrained, 64 px.",
        classifier=ClassifierSpec(
            input_size=SIZE, members=[MemberSpec(name=f"{architecture}_member", architecture=architecture)]
        ),
        segmenter=SegmenterSpec(input_size=SIZE, backbone=architecture if role == "segmenter" else "mobilenetv2"),
    )


# EfficientNet B1 to B6 are B0's layers scaled (the same custom layers, the same loading path): B0
# and the thesis' B7 stand for them, which saves building the six in every test run.
SCALED_ALIKE = {f"efficientnetb{n}" for n in range(1, 7)}
CASES = [("segmenter", backbone) for backbone in sorted(set(SEGMENTER_BACKBONES) - SCALED_ALIKE)] + [
    ("classifier", member) for member in sorted(MEMBER_ARCHITECTURES)
]


@pytest.fixture(scope="module")
def registered() -> dict[tuple[str, str], tuple[str, np.ndarray]]:
    """Each architecture built (untrained, weights=None), registered, and its outputs on the probes."""
    from pipeline.architectures import build_profile_model

    out = {}
    for role, architecture in CASES:
        profile = profile_for(role, architecture)
        model = build_profile_model(profile, role, weights=None)
        tag = register_model(  # Keras only: the ONNX export is tested in tests/test_onnx.py.
            model, role=role, profile=profile, trained=False, source="tests/test_stored_models_load.py", with_onnx=False
        )
        out[(role, architecture)] = (tag, model.predict_on_batch(probe_images(SIZE)))
        tf_keras.backend.clear_session()  # Keep the test's memory to one model at a time.
    return out


@pytest.fixture(scope="module")
def loaded_elsewhere(registered) -> dict[str, list | str]:
    return load_elsewhere([tag for tag, _ in registered.values()])


@pytest.mark.parametrize(("role", "architecture"), CASES, ids=[f"{r}-{a}" for r, a in CASES])
def test_a_stored_model_loads_in_a_fresh_process_and_answers_the_same(registered, loaded_elsewhere, role, architecture):
    tag, expected = registered[(role, architecture)]
    answer = loaded_elsewhere[tag]
    assert not isinstance(answer, str), f"{tag} does not load: {answer}"
    np.testing.assert_allclose(np.asarray(answer), expected, rtol=0, atol=1e-5)


def test_a_model_that_would_not_load_back_is_refused_before_it_reaches_the_store(monkeypatch):
    import bentoml
    from red_pixel_models import TEST_PROFILE, red_segmenter

    from pipeline.model_store import files

    def broken(folder, meta):
        raise TypeError("'str' object is not callable")

    def stored() -> int:
        return sum(m.tag.name == "gore-segmenter-redtest" for m in bentoml.models.list())

    monkeypatch.setattr(files, "load_model_files", broken)
    before = stored()
    with pytest.raises(ModelDoesNotLoad, match="would not load back from the model store: TypeError"):
        register_model(
            red_segmenter(),
            role="segmenter",
            profile=TEST_PROFILE,
            trained=True,
            source="test",
            architecture="red_pixel_map",
        )
    assert stored() == before, "nothing was stored"


def test_models_check_reports_a_model_whose_weights_were_damaged(tmp_path):
    home = _store_with_damaged_segmenter(tmp_path)
    done = subprocess.run(
        [GORE_CENSOR, "models", "check", "gore-segmenter-redtest:latest"],
        capture_output=True,
        text=True,
        env={**os.environ, "BENTOML_HOME": home},
        timeout=300,
    )
    assert done.returncode == 2 and "does not load" in done.stderr and "Traceback" not in done.stderr


def _store_with_damaged_segmenter(tmp_path: Path) -> str:
    """A separate store with the red-pixel models, the segmenter's weights file cut in half."""
    home = tempfile.mkdtemp(prefix="gore-test-damaged-")
    code = "import pipeline; from red_pixel_models import register_red_models; register_red_models()"
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO / "tests",
        env={**os.environ, "BENTOML_HOME": home},
        check=True,
        timeout=300,
    )
    [weights] = Path(home).glob("models/gore-segmenter-redtest/*/weights.h5")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return home


def test_bentoml_serve_stops_with_the_reason_when_a_model_does_not_load(tmp_path):
    env = {
        **os.environ,
        "BENTOML_HOME": _store_with_damaged_segmenter(tmp_path),
        "GORE_PROFILE": "redtest",
        "GORE_DATA_DIR": str(tmp_path / "data"),
    }
    started = time.monotonic()
    done = subprocess.run(serve_command(free_port()), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "gore-segmenter-redtest" in output and "cannot be served" in output and "does not load" in output
    assert time.monotonic() - started < 120, "stopped within a bounded time, no restart loop"


@pytest.fixture(scope="module")
def thesis_store():
    """A separate model store with the thesis profile built untrained (no ImageNet weights offline)."""
    home = tempfile.mkdtemp(prefix="gore-test-thesis-")
    done = subprocess.run(
        [GORE_CENSOR, "models", "build", "--profile", "thesis", "--weights", "none", "--no-onnx"],
        capture_output=True,
        text=True,
        env={**os.environ, "BENTOML_HOME": home},
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_the_thesis_profile_serves_a_segmentation_as_a_dry_run(thesis_store, sample_images, tmp_path):
    """Voting_Mixed and FPN24-EfficientNetB7, untrained: threshold=0 forces the gore branch."""
    env = {
        "BENTOML_HOME": thesis_store,
        "GORE_PROFILE": "thesis",
        "GORE_ALLOW_UNTRAINED": "1",
        "GORE_DATA_DIR": str(tmp_path / "data"),
    }
    headers = grant(tmp_path / "data", "ingest", "analyst")
    with bentoml_server(env, tmp_path / "serve.log", timeout_s=900) as url:
        response = httpx.post(
            f"{url}/censor",
            files={"image": ("r.png", sample_images.red_blob.read_bytes())},
            data={"threshold": "0"},
            timeout=300,
            headers=headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        censored = np.asarray(upright_png(httpx.get(url + body["censored"], timeout=60, headers=headers).content))
        mask = np.asarray(upright_png(httpx.get(url + body["mask"], timeout=60, headers=headers).content))
    assert body["dry_run"] is True and body["gore"] is True and "segment" in body["timings_ms"]
    assert body["models"]["segmenter"].startswith("gore-segmenter-thesis:")
    original = upright(sample_images.red_blob)
    assert mask.shape == original.shape[:2] and set(np.unique(mask)) <= {0, 255}
    assert np.array_equal(censored[mask == 0], original[mask == 0]) and not censored[mask == 255].any()
    assert body["censored_fraction"] == pytest.approx((mask == 255).mean(), abs=1e-6)


def upright_png(data: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data))
