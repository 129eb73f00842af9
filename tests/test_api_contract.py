"""The API description tells the truth: schemathesis, every check and every phase (examples,
coverage, fuzzing, stateful), against a real `bentoml serve`, with zero failures.

Token revocation is left out (it would revoke the test's own token mid-run; tests/test_access.py
covers it). Generated files are small real images (tests/schemathesis_hooks.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serving import bentoml_server, grant

ST = str(Path(sys.executable).with_name("st"))
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def served(red_model_tags, sample_images, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("contract-data")
    env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(data_dir), "GORE_MAX_BATCH_IMAGES": "4"}
    headers = grant(data_dir, "admin", name="schemathesis")
    with bentoml_server(env, tmp_path_factory.mktemp("contract-logs") / "serve.log") as url:
        known = httpx.post(
            f"{url}/censor",
            files={"image": ("r.png", sample_images.red_blob.read_bytes())},
            headers=headers,
            timeout=120,
        ).json()["id"]
        yield url, headers, known


def test_schemathesis_finds_no_failure(served, tmp_path):
    url, headers, known = served
    config = tmp_path / "schemathesis.toml"  # A real image id, so the image routes are exercised past 404.
    config.write_text(f'[parameters]\n"path.image_id" = "{known}"\n')
    command = [
        ST,
        "--config-file",
        str(config),
        "run",
        f"{url}/docs.json",
        "--checks",
        "all",
        "-H",
        f"Authorization: {headers['Authorization']}",
        "--exclude-path-regex",
        "/admin/tokens/",
        "--max-examples",
        "20",
        "--seed",
        "1",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": str(TESTS)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    assert "passed" in report and "failure" not in report.split("Test cases:")[-1], report[-3000:]


def test_what_this_deployment_cannot_do_answers_409_with_the_reason(served, sample_images):
    """The red test classifier is one model, not our members: no inference dropout. And this
    deployment has no annotation root."""
    url, headers, _ = served
    image = {"image": ("r.png", sample_images.red_blob.read_bytes())}
    for option in ("uncertainty", "cascade"):
        answer = httpx.post(f"{url}/censor", files=image, data={option: "true"}, headers=headers, timeout=120)
        assert answer.status_code == 409 and "imported whole" in answer.json()["error"]
    off = httpx.post(f"{url}/annotation/next", json={}, headers=headers, timeout=30)
    assert off.status_code == 409 and "GORE_ANNOTATION_ROOT" in off.json()["error"]
    off = httpx.post(f"{url}/annotation/labels", content=b"image,label\n", headers=headers, timeout=30)
    assert off.status_code == 409
