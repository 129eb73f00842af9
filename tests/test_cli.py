"""`gore-censor`: the offline path writes what the service writes; models in and out of the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from images import red_blob_pixels
from PIL import Image

GORE_CENSOR = str(Path(sys.executable).with_name("gore-censor"))


def run(*args, env=None):
    return subprocess.run(
        [GORE_CENSOR, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300
    )


def test_censor_files_offline_like_the_service(red_model_tags, sample_images, tmp_path):
    env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(tmp_path)}
    done = run("censor", str(sample_images.red_blob), str(sample_images.green), env=env)
    assert done.returncode == 0, done.stderr
    red, green = (json.loads(line) for line in done.stdout.splitlines())
    assert red["gore"] and not green["gore"] and red["models"]["classifier"] == red_model_tags["classifier"]
    folder = tmp_path / "images" / red["id"]
    names = sorted(p.name.split("-")[0] for p in folder.iterdir() if not p.name.startswith("."))
    assert names == ["censored", "maps", "mask", "original.png", "record.json"]
    [censored_png], [mask_png] = folder.glob("censored-*.png"), folder.glob("mask-*.png")
    censored, mask = np.asarray(Image.open(censored_png)), np.asarray(Image.open(mask_png))
    original = red_blob_pixels()
    assert np.array_equal(censored[mask == 0], original[mask == 0]) and not censored[mask == 255].any()
    record = json.loads((folder / "record.json").read_text())
    [analysis] = record["analyses"].values()
    assert analysis["gore_probability"] == red["gore_probability"] and analysis["segmentation"] is not None


def test_censor_offline_runs_the_dropout_passes_and_the_cascade(red_vote_tags, red_model_tags, sample_images, tmp_path):
    env = {"GORE_PROFILE": "redvote", "GORE_DATA_DIR": str(tmp_path), "GORE_UNCERTAINTY_PASSES": "8"}
    done = run("censor", str(sample_images.red_blob), str(sample_images.green), "--cascade", env=env)
    assert done.returncode == 0, done.stderr
    red, green = (json.loads(line)["uncertainty"] for line in done.stdout.splitlines())
    assert red["passes"] == 8 and red["std"] > 0 and red["cascade"]["source"] == "wrl" and red["censors"]
    assert green["std"] < 1e-6 and not green["censors"] and [m["loss"] for m in green["members"]] == ["wrl", "bce"]
    refused = run("censor", str(sample_images.green), "--uncertainty", env={**env, "GORE_PROFILE": "redtest"})
    assert refused.returncode == 1 and "imported whole" in refused.stdout + refused.stderr


def test_censor_reports_bad_files_and_exits_non_zero(red_model_tags, sample_images, tmp_path):
    env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(tmp_path)}
    done = run("censor", str(sample_images.not_an_image), str(sample_images.green), "--style", "blur", env=env)
    assert done.returncode == 1
    assert "not an image format" in done.stderr and json.loads(done.stdout)["style"] == "blur"


def test_censor_without_models_says_what_to_run(tmp_path, sample_images):
    done = run("censor", str(sample_images.green), env={"GORE_PROFILE": "absent", "GORE_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2 and "make models" in done.stderr and "Traceback" not in done.stderr


def test_models_list_shows_what_the_store_holds(red_model_tags):
    done = run("models", "list")
    assert done.returncode == 0 and red_model_tags["classifier"] in done.stdout.replace("\n", "")


def test_import_reports_a_missing_file_clearly(tmp_path):
    done = run(
        "models",
        "import",
        "--profile",
        "demo",
        "--classifier",
        str(tmp_path / "c.keras"),
        "--segmenter",
        str(tmp_path / "s.h5"),
    )
    assert done.returncode == 2 and "no such weights file" in done.stderr and "Traceback" not in done.stderr


def test_a_collection_job_offline_records_every_file_and_reuses_analyses(red_model_tags, sample_images, tmp_path):
    import shutil

    folder = tmp_path / "collection"
    folder.mkdir()
    for name in ("red_blob", "green", "not_an_image"):
        path = getattr(sample_images, name)
        shutil.copy(path, folder / path.name)
    env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(tmp_path / "data")}
    first = run("job", str(folder), env=env)
    assert first.returncode == 1 and "2 done, 1 failed" in first.stderr, first.stderr
    again = run("job", str(folder), env=env)
    assert "2 done, 1 failed" in again.stderr and "2 already analysed" in again.stderr, again.stderr
    from pipeline.stores.jobs import JobStore

    [latest, _] = JobStore.in_data_dir(tmp_path / "data").jobs()
    failed = [item for item in JobStore.in_data_dir(tmp_path / "data").items(latest.id) if item.state == "failed"]
    assert [item.path for item in failed] == ["notes.txt.jpg"] and "not an image" in failed[0].error
