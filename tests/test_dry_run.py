"""Untrained models: the service refuses them, unless told this is a dry run, and then says so."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import httpx
import pytest
from serving import REPO, bentoml_server, free_port, grant, serve_command


@pytest.fixture(scope="module")
def untrained_store():
    """A separate model store holding the red-pixel models registered as untrained."""
    home = tempfile.mkdtemp(prefix="gore-test-untrained-")
    code = "import pipeline; from red_pixel_models import register_red_models; register_red_models(trained=False)"
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO / "tests",
        env={**os.environ, "BENTOML_HOME": home},
        check=True,
        timeout=300,
    )
    return {"BENTOML_HOME": home, "GORE_PROFILE": "redtest"}


def test_serving_untrained_models_is_refused_with_a_reason(untrained_store, tmp_path):
    done = subprocess.run(
        serve_command(free_port()),
        cwd=REPO,
        env={**os.environ, **untrained_store, "GORE_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "never trained" in done.stdout + done.stderr and "GORE_ALLOW_UNTRAINED=1" in done.stdout + done.stderr


def test_a_dry_run_serves_and_flags_every_answer(untrained_store, sample_images, tmp_path):
    env = {**untrained_store, "GORE_DATA_DIR": str(tmp_path), "GORE_ALLOW_UNTRAINED": "1"}
    with bentoml_server(env, tmp_path / "serve.log") as url:
        response = httpx.post(
            f"{url}/censor",
            files={"image": ("r.png", sample_images.red_blob.read_bytes())},
            timeout=120,
            headers=grant(tmp_path, "ingest"),
        )
    assert response.status_code == 200
    assert response.json()["dry_run"] is True and "DRY RUN" in response.json()["notice"]
    assert "DRY RUN" in (tmp_path / "serve.log").read_text()
