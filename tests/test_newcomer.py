"""A newcomer's path (README "Newcomer's path"): `make serve` installs no TensorFlow and trains
nothing. The service imports no TensorFlow; the demo models come from the repository as ONNX
graphs with int8 weights, are checked on the way into the store, meet the demo bar on the
held-out synthetic test split, and come from the recipe in this repository (which, trained
again here, gives models of the same quality). A process that cannot import the training extras
(tests/without_training: as a serving-only install) prepares the store and serves from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from serving import REPO, bentoml_server, grant

from pipeline.config import REPOSITORY_PROFILES
from pipeline.model_store.onnx import OnnxModel
from pipeline.model_store.shipped import read_manifest, recipe_digest, shipped_folder, unpack

GORE_CENSOR = str(Path(sys.executable).with_name("gore-censor"))
WITHOUT_TRAINING = Path(__file__).resolve().parent / "without_training"
DEMO_BAR = {"classifier double F1": 0.90, "pipeline IoU": 0.60}  # README "Demo models".
MANIFEST = read_manifest(REPOSITORY_PROFILES)


def serving_only(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that cannot import TensorFlow, tf_keras, segmentation_models..."""
    return {**os.environ, **(env or {}), "PYTHONPATH": str(WITHOUT_TRAINING)}


def test_the_blocker_really_blocks():
    done = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], env=serving_only(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "a serving-only install" in done.stderr


def test_the_service_imports_no_tensorflow(tmp_path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import service, pipeline.cli; "
        "print(sorted(m for m in ('tensorflow', 'tf_keras', 'segmentation_models', 'tf2onnx') if m in sys.modules))"
    )
    env = {**os.environ, "GORE_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", code, str(REPO)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_repository_demo_models_come_from_this_recipe_and_are_the_files_it_wrote():
    assert MANIFEST is not None and MANIFEST.profile == "demo"
    assert MANIFEST.recipe == recipe_digest(REPOSITORY_PROFILES), (
        "the demo recipe (models/demo.yaml, data/synthetic.py, demo.py) changed since models/demo-weights was "
        "made: run `make demo-weights` and commit models/demo-weights"
    )
    total = 0
    for role, shipped in MANIFEST.models.items():
        data = (shipped_folder(REPOSITORY_PROFILES) / shipped.file).read_bytes()
        total += len(data)
        assert shipped.metadata.demo and shipped.metadata.trained and "DEMO" in shipped.metadata.source, role
        assert shipped.metadata.backends == ["onnx"] or "onnx" in shipped.metadata.backends
    assert total < 10 * 2**20, f"{total / 2**20:.1f} MB of demo weights in every clone"


@pytest.fixture(scope="module")
def synthetic_test_split(tmp_path_factory):
    """The recipe's data (480 images, seed 0) and the split it holds out."""
    from pipeline.data.synthetic import generate

    folder = tmp_path_factory.mktemp("demo-data")
    return generate(folder, 480, seed=0).split(seed=0)


def test_the_repository_demo_models_meet_the_demo_bar_as_recorded(synthetic_test_split, tmp_path):
    from pipeline.evaluation.evaluate import evaluate_classifier, evaluate_pipeline

    models = {}
    for role, shipped in MANIFEST.models.items():
        path = tmp_path / f"{role}.onnx"
        path.write_bytes(unpack((shipped_folder(REPOSITORY_PROFILES) / shipped.file).read_bytes()))
        models[role] = OnnxModel(path)
    test = synthetic_test_split.require("test")
    report = evaluate_classifier(models["classifier"], test, tmp_path / "c", threshold=0.5, mc_passes=0)
    classifier = next(iter(report.tables.values()))
    pipeline = evaluate_pipeline(
        models["classifier"], models["segmenter"], test, tmp_path / "p", threshold=0.5, seg_threshold=0.5, leaks=False
    )
    masks = list(pipeline.tables.values())[-1]
    assert classifier["double_f1"] >= DEMO_BAR["classifier double F1"] and masks["iou"] >= DEMO_BAR["pipeline IoU"]
    recorded = MANIFEST.models["classifier"].metadata.metrics["test"]
    assert abs(recorded["double_f1"] - classifier["double_f1"]) < 1e-6, "the figures recorded are the ones measured"
    assert abs(MANIFEST.models["segmenter"].metadata.metrics["pipeline_test"]["iou"] - masks["iou"]) < 1e-6


def test_a_serving_only_install_prepares_the_store_and_answers_from_it(tmp_path):
    store = {"BENTOML_HOME": tempfile.mkdtemp(prefix="gore-test-newcomer-")}
    ensured = subprocess.run(
        [GORE_CENSOR, "models", "ensure", "--profile", "demo"],
        env=serving_only(store),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ensured.returncode == 0, ensured.stderr[-3000:]
    said = " ".join((ensured.stdout + ensured.stderr).split())  # Rich wraps lines at 80 columns in a pipe.
    assert "DEMO models" in said and "ONNX only" in said
    again = subprocess.run(
        [GORE_CENSOR, "models", "ensure", "--profile", "demo"], env=serving_only(store), capture_output=True, text=True
    )
    assert "the store holds the demo models" in " ".join((again.stdout + again.stderr).split()), "nothing twice"
    data = tmp_path / "data"
    env = {**store, "PYTHONPATH": str(WITHOUT_TRAINING), "GORE_PROFILE": "demo", "GORE_DATA_DIR": str(data)}
    with bentoml_server(env, tmp_path / "serve.log") as url:
        headers = grant(data, "ingest")
        picture = {"image": ("positive.png", (REPO / "docs" / "demo" / "positive.png").read_bytes())}
        answer = httpx.post(f"{url}/censor", files=picture, headers=headers, timeout=120)
        doubt = httpx.post(f"{url}/censor", files=picture, data={"uncertainty": "true"}, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["demo"] is True and "DEMO MODELS" in body["notice"] and body["gore"] is True and body["censored"]
    assert doubt.status_code == 409 and "ONNX only" in doubt.json()["error"], "a clear refusal, not a 500"


# A run of the recipe trained afresh: CPU training is not repeatable run to run (thread scheduling),
# so a fresh run is held to a floor below the shipped models' 0.90; three runs on 2026-12-02 gave
# classifier Double F1 0.908, 0.923, 0.984 and pipeline IoU 0.737 to 0.744 (docs/demo-models.md).
RETRAINED_BAR = {"classifier double F1": 0.85, "pipeline IoU": 0.60}


@pytest.mark.slow
def test_the_recipe_trained_here_makes_demo_models_that_meet_the_bar(tmp_path):
    """`make demo-weights` is `gore-censor train demo` then `models pack-demo`: the recipe in this
    checkout, trained again from nothing, must give models that do what the shipped ones claim."""
    store = {"BENTOML_HOME": tempfile.mkdtemp(prefix="gore-test-recipe-")}
    done = subprocess.run(
        [GORE_CENSOR, "train", "demo", "--work-dir", str(tmp_path / "demo")],
        env={**os.environ, **store},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = subprocess.run(
        [sys.executable, "-c", LATEST_METRICS], env={**os.environ, **store}, capture_output=True, text=True, timeout=120
    )
    trained = json.loads(listed.stdout.strip().splitlines()[-1])
    measured = {
        "classifier double F1": trained["classifier"]["test"]["double_f1"],
        "pipeline IoU": trained["segmenter"]["pipeline_test"]["iou"],
    }
    assert all(measured[name] >= floor for name, floor in RETRAINED_BAR.items()), measured


LATEST_METRICS = """
import json
from pipeline.model_store.loading import stored_metadata, stored_model
roles = ("classifier", "segmenter")
print(json.dumps({r: stored_metadata(stored_model(f"gore-{r}-demo:latest")).metrics for r in roles}))
"""


@pytest.mark.parametrize(
    "command",
    [["train", "demo", "--work-dir", "unused"], ["models", "build", "--profile", "demo", "--weights", "none"]],
    ids=lambda c: " ".join(c[:2]),
)
def test_what_needs_tensorflow_says_what_to_install_in_a_serving_only_install(command, tmp_path):
    store = {"BENTOML_HOME": str(tmp_path / "store")}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *command],
        env=serving_only(store),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "needs the training extras" in said and "pip install -e '.[train]'" in said
    assert "Traceback" not in done.stderr
