"""Collection jobs: a folder under the jobs root censored in the background, surviving a restart,
every good file with exactly one record, every bad one with its error, every video stored and
censored in the background like one sent to POST /videos."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import threading
import time

import httpx
import numpy as np
import pytest
from images import GREEN, RED
from PIL import Image
from serving import bentoml_server, grant
from videos import Clip, wait_done, write_clip

from pipeline.errors import Forbidden, NotFound, Unavailable
from pipeline.serving.jobs import JobRunner
from pipeline.stores.database import SQLiteDatabase
from pipeline.stores.jobs import JobRequest, JobStore, Outcome


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


def test_paths_outside_the_root_are_refused(tmp_path, place):
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    store = JobStore(place.tables("jobs.db"))
    with pytest.raises(Forbidden, match="not inside the jobs root"):
        store.create(JobRequest(folder="escape"), root, by="t")
    with pytest.raises(ValueError):
        JobRequest(folder="../outside")  # Refused by the request's own pattern.
    with pytest.raises(ValueError):
        JobRequest(files=["/etc/passwd"])
    with pytest.raises(NotFound, match="no folder"):
        store.create(JobRequest(folder="absent"), root, by="t")
    assert store.create(JobRequest(folder="inside"), root, by="t").state == "done", "an empty folder is done at once"


def test_claims_are_released_after_a_stop_and_results_recorded(tmp_path, place):
    root = tmp_path / "root"
    good, bad = write_collection(root, 4)
    store = JobStore(place.tables("jobs.db"))
    job = store.create(JobRequest(folder="seized"), root, by="t")
    assert job.total == 7 and job.remaining == 7 and job.state == "queued"
    claim = store.claim(5)
    assert [item.state for item in claim.items] == ["working"] * 5 and store.status(job.id).state == "running"
    assert store.release_claims() == 5, "a restart puts claimed items back"
    claim = store.claim(10)
    outcomes = [
        Outcome(item.seq, 422, error="bad") if item.path in bad else Outcome(item.seq, 200, image_id="ab" * 32)
        for item in claim.items
    ]
    passing = next(i for i, item in enumerate(claim.items) if item.path in good)
    outcomes[passing] = Outcome(claim.items[passing].seq, 503, error="busy")  # Passing: back to pending.
    store.record(job.id, outcomes)
    status = store.status(job.id)
    assert status.remaining == 1 and status.state == "running"
    store.record(job.id, [Outcome(store.claim(10).items[0].seq, 200, image_id="cd" * 32, reused=True)])
    status = store.status(job.id)
    assert (status.state, status.done, status.failed, status.remaining, status.already_analysed) == ("done", 4, 3, 0, 1)
    assert status.images_per_s is not None


def test_a_claim_is_a_lease_and_only_its_holder_records(tmp_path, place):
    """A worker that stops renewing (killed, its host lost) loses its items to the next claimer once
    the lease runs out; what it records afterwards is dropped, so no item ends twice."""
    root = tmp_path / "root"
    write_collection(root, 4)
    store, other = JobStore(place.tables("jobs.db")), JobStore(place.tables("jobs.db"))  # Two replicas.
    job = store.create(JobRequest(folder="seized"), root, by="t")
    lost = store.claim(3, lease_s=0.5)
    kept = other.claim(3, lease_s=30)
    assert {i.seq for i in lost.items}.isdisjoint(i.seq for i in kept.items), "no item in two live claims"
    assert store.renew(kept, 30) == 3
    time.sleep(0.7)
    taken = other.claim(10, lease_s=30)
    assert {i.seq for i in lost.items} <= {i.seq for i in taken.items}, "the run-out lease's items are claimed again"
    assert not {i.seq for i in kept.items} & {i.seq for i in taken.items}, "a renewed lease is not"
    store.record(job.id, [Outcome(item.seq, 200, image_id="ab" * 32) for item in lost.items], lost.id)
    assert store.status(job.id).done == 0, "the lost claim's outcomes were dropped"
    other.record(job.id, [Outcome(i.seq, 422, error="bad") for i in taken.items], taken.id)
    other.record(job.id, [Outcome(i.seq, 200, image_id="cd" * 32) for i in kept.items], kept.id)
    status = store.status(job.id)
    assert (status.state, status.done, status.failed, status.remaining) == ("done", 3, 4, 0)


def test_claimers_at_once_never_share_an_item(tmp_path, place):
    root = tmp_path / "root"
    (root / "many").mkdir(parents=True)
    for n in range(120):
        (root / "many" / f"{n:03d}.jpg").write_bytes(b"x")
    store = JobStore(place.tables("jobs.db"))
    store.create(JobRequest(folder="many"), root, by="t")
    claimed: list[list[int]] = [[] for _ in range(6)]

    def work(n: int) -> None:
        mine = JobStore(place.tables("jobs.db"))
        while (claim := mine.claim(4)) is not None:
            claimed[n] += [item.seq for item in claim.items]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = sorted(seq for seqs in claimed for seq in seqs)
    assert every == list(range(120)), "each item claimed exactly once"
    assert sum(1 for seqs in claimed if seqs) >= 2, "the claimers shared the work"


def test_a_worker_stopped_mid_chunk_gives_its_items_back_at_once(tmp_path, place):
    """A shutdown cancels the runner mid-chunk: its items are pending again at once, not when the
    lease runs out (a restarted replica's work goes on elsewhere without waiting a minute)."""
    root = tmp_path / "root"
    write_collection(root, 4)
    store = JobStore(place.tables("jobs.db"))
    job = store.create(JobRequest(folder="seized"), root, by="t")

    censoring = threading.Event()

    class Stuck:  # A censorer that never answers: the runner is mid-chunk when stopped.
        def options(self):
            return None

        async def censor(self, uploads, options):
            censoring.set()
            await asyncio.Event().wait()

    async def stuck() -> Stuck:
        return Stuck()

    runner = JobRunner(store, stuck, chunk=3, lease_s=600)

    async def stop_mid_chunk() -> None:
        working = asyncio.get_running_loop().create_task(runner.step())
        while not censoring.is_set():  # Mid-chunk: past the claim, in the work.
            await asyncio.sleep(0.01)
        working.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await working

    asyncio.run(stop_mid_chunk())
    assert len(store.claim(10).items) == 7, "every item claimable at once, though the lease had 10 minutes"

    stop = threading.Event()  # SIGTERM (DRAINING): the chunk is given back while the work still hangs.
    store.release_claims()
    censoring.clear()

    async def drain_mid_chunk() -> tuple[int, int, bool]:
        working = asyncio.get_running_loop().create_task(runner.step(stop.is_set))
        while not censoring.is_set():  # Mid-chunk (a claim answered after SIGTERM is not worked at all).
            await asyncio.sleep(0.01)
        held = store.items(job.id, state="working")
        stop.set()
        deadline = time.monotonic() + 5
        while (after := store.items(job.id, state="working")) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        hanging = not working.done()
        working.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await working
        return len(held), len(after), hanging

    assert asyncio.run(drain_mid_chunk()) == (3, 0, True), "given back on SIGTERM, while the step still hangs"


@pytest.mark.parametrize(
    ("held", "how"),
    [("before", "cancelled"), ("after", "cancelled"), ("before", "cancelled twice"), ("after", "stopped")],
)
def test_a_claim_being_taken_as_the_worker_stops_is_given_back(tmp_path, place, held, how):
    """SIGTERM while the runner's claim is still in its thread (held there, `before` or `after` its
    UPDATE commits), then the shutdown cancels the runner (`cancelled`; `twice`: again while it
    waits for the claim to end, so the claim's thread gives its items back itself), or it stops on
    its own (`stopped`): once it has all ended, none of the items that claim took is held, and none
    was worked. (A cancelled `to_thread` forgot the claim its thread went on to commit: its chunk
    waited for the lease.)"""
    root = tmp_path / "root"
    write_collection(root, 4)
    store = JobStore(place.tables("jobs.db"))
    job = store.create(JobRequest(folder="seized"), root, by="t")
    inside, go_on, answered = threading.Event(), threading.Event(), threading.Event()
    taken: list = []
    claim = store.claim

    def held_claim(*args, **kwargs):
        try:
            if held == "before":
                inside.set()
                go_on.wait(10)
            taken.append(claim(*args, **kwargs))
            if held == "after":
                inside.set()
                go_on.wait(10)
            return taken[-1]
        finally:
            answered.set()

    store.claim = held_claim
    asked: list[str] = []

    async def censorer():  # Asked only by a runner that works a chunk after SIGTERM.
        asked.append("censorer")
        raise Unavailable("shutting down")

    runner = JobRunner(store, censorer, chunk=3, idle_s=0.01, lease_s=600)
    stop = threading.Event()

    async def stop_while_claiming() -> None:
        running = asyncio.get_running_loop().create_task(runner.run(stop.is_set))
        assert await asyncio.to_thread(inside.wait, 10), "the runner is claiming"
        stop.set()
        if how.startswith("cancelled"):
            running.cancel()  # Lands while the claim is held in its thread.
        if how == "cancelled twice":
            for _ in range(3):  # Turns of the loop (no time passes): the runner takes the first one.
                await asyncio.sleep(0)
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(running, 10)
            assert not answered.is_set(), "the runner ended with its claim still in its thread"
        go_on.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, 10)

    asyncio.run(stop_while_claiming())  # Returns once the loop's threads have ended too.
    assert answered.is_set(), "the claim's thread ended"
    assert taken and taken[0] is not None and len(taken[0].items) == 3, "the claim took a chunk"
    assert store.items(job.id, state="working") == [], "nothing left held for the lease (10 minutes)"
    assert not asked, "a chunk claimed after SIGTERM is given back unworked"
    store.claim = claim
    other = store.claim(10, worker="other")
    assert len(other.items) == 7, "another worker takes every item at once"
    assert store.release_ids([taken[0].id]) == 0, "given back once; the other worker's claim untouched"
    assert store.renew(other, 600) == 7


def test_a_job_survives_a_restart_and_every_file_ends_with_one_record_or_one_error(red_model_tags, tmp_path):
    root, data = tmp_path / "collections", tmp_path / "data"
    good, bad = write_collection(root, 60)
    clip = "seized/drive1/deeper/clip.mkv"  # A video among the images: a wound crosses it.
    write_clip(root / clip, Clip(seconds=2, wound_from_s=0.5, wound_to_s=1.5))
    env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(data), "GORE_JOBS_ROOT": str(root), "GORE_MARGIN": "0"}
    headers = grant(data, "ingest", "analyst")
    with bentoml_server(env, tmp_path / "first.log") as url:
        assert httpx.post(f"{url}/jobs", json={"folder": "seized"}, headers=grant(data, "analyst")).status_code == 403
        assert httpx.post(f"{url}/jobs", json={"folder": "../etc"}, headers=headers).status_code == 400
        made = httpx.post(f"{url}/jobs", json={"folder": "seized"}, headers=headers)
        assert made.status_code == 202, made.text
        job = made.json()["id"]
        assert made.json()["total"] == 64
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/jobs/{job}", headers=headers).json()["done"] < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        before = httpx.get(f"{url}/jobs/{job}", headers=headers).json()
    assert 0 < before["done"] + before["failed"] < 64, f"stopped mid-job: {before}"
    with bentoml_server(env, tmp_path / "second.log") as url:  # The same data directory: the job resumes.
        deadline = time.monotonic() + 300
        while (status := httpx.get(f"{url}/jobs/{job}", headers=headers).json())["state"] != "done":
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        items = httpx.get(f"{url}/jobs/{job}/items", headers=headers).json()
        listed = httpx.get(f"{url}/jobs", headers=headers).json()
        red = next(i for i in items if i["path"].endswith("img000.png"))  # Every third image has a red patch.
        record = httpx.get(f"{url}/images/{red['image_id']}", headers=headers).json()
        video = next(i for i in items if i["path"] == clip)
        censored = wait_done(url, headers, video["video_id"])
    assert (status["done"], status["failed"], status["remaining"], status["videos"]) == (61, 3, 0, 1)
    assert listed[0]["id"] == job
    assert video["state"] == "done" and video["image_id"] is None and video["status"] == 202
    assert censored["state"] == "done" and censored["result"]["gore"] and censored["filename"] == clip
    by_path = {item["path"]: item for item in items if item["path"] != clip}
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


def test_a_jobs_file_from_before_videos_gains_the_video_column(tmp_path):
    old_schema = """
    CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, source TEXT NOT NULL, created_at TEXT NOT NULL,
        created_by TEXT NOT NULL, started_at TEXT, finished_at TEXT, root TEXT NOT NULL);
    CREATE TABLE items (job_id TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT NOT NULL, state TEXT NOT NULL,
        image_id TEXT, status INTEGER, error TEXT, reused INTEGER NOT NULL DEFAULT 0, done_at TEXT,
        PRIMARY KEY (job_id, seq));
    """
    SQLiteDatabase(tmp_path / "jobs.db", old_schema)
    root = tmp_path / "root"
    write_collection(root, 1)
    store = JobStore(tmp_path / "jobs.db")
    job = store.create(JobRequest(folder="seized"), root, by="t")
    seq = store.claim(1).items[0].seq
    store.record(job.id, [Outcome(seq, 202, video_id="ef" * 32)])
    assert store.items(job.id, videos=True)[0].video_id == "ef" * 32 and store.status(job.id).videos == 1
    assert JobStore(tmp_path / "jobs.db").status(job.id).videos == 1, "opened again: nothing added twice"
