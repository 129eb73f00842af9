"""Collection jobs: a folder under the jobs root censored in the background, surviving a restart,
every good file with exactly one record, every bad one with its error."""

from __future__ import annotations

import io
import json
import os
import time

import httpx
import numpy as np
import pytest
from images import GREEN, RED
from PIL import Image
from serving import bentoml_server, grant

from pipeline.errors import Forbidden, NotFound
from pipeline.stores.jobs import JobRequest, JobStore


def write_collection(root, good: int) -> tuple[list[str], list[str]]:
    """`good` unique PNGs (every third with a red patch) and three bad files, in nested folders."""
    folder = root / "seized" / "drive1"
    (folder / "deeper").mkdir(parents=True)
    good_paths = []
    for i in range(good):
        pixels = np.full((240, 320, 3), GREEN, np.uint8)
        pixels[0, 0] = (i % 256, i // 256, 7)  # Unique bytes.
        if i % 3 == 0:
            pixels[60:180, 80:240] = RED
        path = folder / ("deeper" if i % 2 else ".") / f"img{i:03d}.png"
        Image.fromarray(pixels).save(path)
        good_paths.append(os.path.relpath(path.resolve(), root.resolve()))
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(np.full((200, 200, 3), RED, np.uint8)).save(buffer, format="JPEG")
    (folder / "deeper" / "cut.jpg").write_bytes(buffer.getvalue()[:300])
    bad = ["seized/drive1/notes.txt", "seized/drive1/empty.jpg", "seized/drive1/deeper/cut.jpg"]
    return sorted(good_paths), bad


def test_paths_outside_the_root_are_refused(tmp_path):
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    store = JobStore(tmp_path / "jobs.db")
    with pytest.raises(Forbidden, match="not inside the jobs root"):
        store.create(JobRequest(folder="escape"), root, by="t")
    with pytest.raises(ValueError):
        JobRequest(folder="../outside")  # Refused by the request's own pattern.
    with pytest.raises(ValueError):
        JobRequest(files=["/etc/passwd"])
    with pytest.raises(NotFound, match="no folder"):
        store.create(JobRequest(folder="absent"), root, by="t")
    assert store.create(JobRequest(folder="inside"), root, by="t").state == "done", "an empty folder is done at once"


def test_claims_are_released_after_a_stop_and_results_recorded(tmp_path):
    root = tmp_path / "root"
    good, bad = write_collection(root, 4)
    store = JobStore(tmp_path / "jobs.db")
    job = store.create(JobRequest(folder="seized"), root, by="t")
    assert job.total == 7 and job.remaining == 7 and job.state == "queued"
    claim = store.claim(5)
    assert [item.state for item in claim.items] == ["working"] * 5 and store.status(job.id).state == "running"
    assert store.release_claims() == 5, "a restart puts claimed items back"
    claim = store.claim(10)
    outcomes = [
        (item.seq, None, 422, "bad", False) if item.path in bad else (item.seq, "ab" * 32, 200, None, False)
        for item in claim.items
    ]
    passing = next(i for i, item in enumerate(claim.items) if item.path in good)
    outcomes[passing] = (claim.items[passing].seq, None, 503, "busy", False)  # Passing: back to pending.
    store.record(job.id, outcomes)
    status = store.status(job.id)
    assert status.remaining == 1 and status.state == "running"
    store.record(job.id, [(store.claim(10).items[0].seq, "cd" * 32, 200, None, True)])
    status = store.status(job.id)
    assert (status.state, status.done, status.failed, status.remaining, status.already_analysed) == ("done", 4, 3, 0, 1)
    assert status.images_per_s is not None


def test_a_job_survives_a_restart_and_every_file_ends_with_one_record_or_one_error(red_model_tags, tmp_path):
    root, data = tmp_path / "collections", tmp_path / "data"
    good, bad = write_collection(root, 60)
    env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(data), "GORE_JOBS_ROOT": str(root), "GORE_MARGIN": "0"}
    headers = grant(data, "ingest", "analyst")
    with bentoml_server(env, tmp_path / "first.log") as url:
        assert httpx.post(f"{url}/jobs", json={"folder": "seized"}, headers=grant(data, "analyst")).status_code == 403
        assert httpx.post(f"{url}/jobs", json={"folder": "../etc"}, headers=headers).status_code == 400
        made = httpx.post(f"{url}/jobs", json={"folder": "seized"}, headers=headers)
        assert made.status_code == 202, made.text
        job = made.json()["id"]
        assert made.json()["total"] == 63
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/jobs/{job}", headers=headers).json()["done"] < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        before = httpx.get(f"{url}/jobs/{job}", headers=headers).json()
    assert 0 < before["done"] + before["failed"] < 63, f"stopped mid-job: {before}"
    with bentoml_server(env, tmp_path / "second.log") as url:  # The same data directory: the job resumes.
        deadline = time.monotonic() + 300
        while (status := httpx.get(f"{url}/jobs/{job}", headers=headers).json())["state"] != "done":
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        items = httpx.get(f"{url}/jobs/{job}/items", headers=headers).json()
        listed = httpx.get(f"{url}/jobs", headers=headers).json()
        red = next(i for i in items if i["path"].endswith("img000.png"))  # Every third image has a red patch.
        record = httpx.get(f"{url}/images/{red['image_id']}", headers=headers).json()
    assert (status["done"], status["failed"], status["remaining"]) == (60, 3, 0) and listed[0]["id"] == job
    by_path = {item["path"]: item for item in items}
    assert sorted(by_path) == sorted(good + bad)
    assert all(by_path[p]["state"] == "done" and by_path[p]["image_id"] for p in good)
    assert all(
        by_path[p]["state"] == "failed" and by_path[p]["status"] in (415, 422) and by_path[p]["error"] for p in bad
    )
    ids = [by_path[p]["image_id"] for p in good]
    assert len(set(ids)) == 60, "every good file is its own image"
    stored = {p.name for p in (data / "images").iterdir() if (p / "record.json").is_file()}
    assert stored == set(ids), "exactly one record per good file, none for a bad one"
    assert all(len(json.loads((data / "images" / i / "record.json").read_text())["analyses"]) == 1 for i in ids)
    assert record["gore"] is True and record["censored"]


def test_jobs_are_off_without_a_root(red_model_tags, tmp_path):
    env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(tmp_path)}
    with bentoml_server(env, tmp_path / "serve.log") as url:
        response = httpx.post(f"{url}/jobs", json={"folder": "x"}, headers=grant(tmp_path, "ingest"))
    assert response.status_code == 409 and "GORE_JOBS_ROOT" in response.json()["error"]
