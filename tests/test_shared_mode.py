"""Past one machine: two Censor replicas (two real `bentoml serve`, each with its own local data
directory) over one PostgreSQL database and one S3-compatible bucket (moto's server) share every
piece of state. Whatever one replica did, the other sees at once; a replica killed mid-job loses
nothing; no start-up of one disturbs the other's work.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import av
import httpx
import numpy as np
import pytest
from browser import redness as red
from images import GREEN, RED
from PIL import Image
from serving import bentoml_process, kill_service
from shared_stores import S3_ENV, new_bucket
from videos import Clip, wait_done, write_clip

from pipeline.stores.access import AccessStore
from pipeline.stores.database import PostgresDatabase
from pipeline.stores.people import People

PASSWORD = "a long enough password"


def stored(database: str, image_id: str) -> dict:
    """The record as stored in the shared database (the API shows one analysis; this is all of them)."""
    with PostgresDatabase(database).connect() as db:
        row = db.execute("SELECT record FROM records WHERE id = ?", (image_id,)).fetchone()
    return json.loads(row[0])


def png(color, size=(64, 48), seed: int = 0) -> bytes:
    pixels = np.full((size[1], size[0], 3), color, np.uint8)
    pixels[0, 0] = (seed % 256, seed // 256 % 256, 7)  # A different file (and id) per seed.
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def replicas(red_model_tags, postgres, s3_endpoint, tmp_path_factory):
    """Replicas A and B, started one after the other (the second's start must not disturb the first)."""
    base = tmp_path_factory.mktemp("shared")
    jobs_root = base / "collections"
    jobs_root.mkdir()
    database, bucket = postgres.new_database(), new_bucket()
    common = {
        "GORE_PROFILE": "redtest",
        "GORE_MARGIN": "0",
        "GORE_DATABASE_URL": database,
        "GORE_OBJECT_STORE": bucket,
        "GORE_S3_ENDPOINT_URL": s3_endpoint,
        "GORE_JOBS_ROOT": str(jobs_root),
        "GORE_LEASE_S": "4",
        "GORE_MAX_BATCH_SIZE": "2",  # Small claims: a job's items spread over both replicas.
        **S3_ENV,
    }
    admin = AccessStore(database).create_token("tests", ["admin"], created_by="tests")
    People(database).create_user("ana", ["analyst"], PASSWORD, "tests")
    env = {name: {**common, "GORE_DATA_DIR": str(base / f"data-{name}")} for name in "ab"}
    with (
        bentoml_process(env["a"], base / "a.log") as (a, a_process),
        bentoml_process(env["b"], base / "b.log") as (b, b_process),
    ):
        yield {
            "a": a,
            "b": b,
            "processes": {"a": a_process, "b": b_process},
            "env": env,
            "base": base,
            "jobs_root": jobs_root,
            "database": database,
            "headers": {"Authorization": f"Bearer {admin.secret}"},
        }
    PostgresDatabase.close_all()


def test_the_same_image_posted_through_both_at_once_gives_one_analysis(replicas):
    image = png(RED, seed=1)
    headers = replicas["headers"]

    def post(url: str) -> httpx.Response:
        return httpx.post(f"{url}/censor", files={"image": ("same.png", image)}, headers=headers, timeout=120)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, [replicas["a"], replicas["b"]] * 2))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    image_id = answers[0].json()["id"]
    for url in (replicas["a"], replicas["b"]):
        assert httpx.get(f"{url}/images/{image_id}", headers=headers).json()["gore"] is True
        censored = httpx.get(f"{url}/images/{image_id}/censored", headers=headers)
        pixels = np.asarray(Image.open(io.BytesIO(censored.content)).convert("RGB"))
        assert censored.status_code == 200 and not (pixels == RED).all(axis=-1).any(), "no red pixel left, either side"
    assert len(stored(replicas["database"], image_id)["analyses"]) == 1
    with PostgresDatabase(replicas["database"]).connect() as db:
        assert db.execute("SELECT COUNT(*) FROM records WHERE id = ?", (image_id,)).fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM images WHERE id = ?", (image_id,)).fetchone()[0] == 1
    assert not (replicas["base"] / "data-a" / "images").exists(), "nothing of it in a replica's own folder"


def test_a_review_on_one_replica_is_read_on_the_other(replicas):
    headers = replicas["headers"]
    posted = httpx.post(f"{replicas['a']}/censor", files={"image": ("r.png", png(GREEN, seed=2))}, headers=headers)
    image_id = posted.json()["id"]
    review = httpx.post(
        f"{replicas['b']}/images/{image_id}/review", json={"verdict": "gore", "note": "seen"}, headers=headers
    )
    assert review.status_code == 200, review.text
    assert httpx.get(f"{replicas['a']}/images/{image_id}", headers=headers).json()["review"]["verdict"] == "gore"
    assert [r["verdict"] for r in stored(replicas["database"], image_id)["reviews"]] == ["gore"]
    audit = httpx.get(f"{replicas['a']}/admin/audit", params={"image_id": image_id}, headers=headers).json()
    assert "review" in " ".join(entry["action"] for entry in audit), audit


def test_a_token_revoked_on_one_replica_is_refused_on_the_other_at_once(replicas):
    headers = replicas["headers"]
    made = httpx.post(f"{replicas['a']}/admin/tokens", json={"name": "temp", "roles": ["analyst"]}, headers=headers)
    assert made.status_code in (200, 201), made.text
    token = {"Authorization": f"Bearer {made.json()['secret']}"}
    assert httpx.get(f"{replicas['b']}/jobs", headers=token).status_code != 401, "made on A, known on B"
    revoked = httpx.delete(f"{replicas['a']}/admin/tokens/{made.json()['token']['id']}", headers=headers)
    assert revoked.status_code == 200, revoked.text
    assert httpx.get(f"{replicas['b']}/jobs", headers=token).status_code == 401


def test_a_web_session_made_on_one_replica_works_on_the_other(replicas):
    with httpx.Client(base_url=replicas["a"] + "/app", follow_redirects=False, timeout=60) as a:
        csrf = re.search(r'name="csrf" value="([^"]+)"', a.get("/signin").text).group(1)
        signed = a.post("/signin", data={"csrf": csrf, "name": "ana", "password": PASSWORD, "next": "/app/gallery"})
        assert signed.status_code == 303, signed.text[-300:]
        cookies = dict(a.cookies)
    with httpx.Client(base_url=replicas["b"] + "/app", follow_redirects=False, timeout=60, cookies=cookies) as b:
        gallery = b.get("/gallery")
        assert gallery.status_code == 200 and "Sign out" in gallery.text, gallery.status_code
        page_csrf = re.search(r'name="csrf-token" content="([^"]+)"', gallery.text).group(1)
        out = b.post("/signout", data={"csrf": page_csrf}, headers={"X-CSRF-Token": page_csrf})
        assert out.status_code in (303, 200), out.text[-300:]
    with httpx.Client(base_url=replicas["a"] + "/app", follow_redirects=False, timeout=60, cookies=cookies) as a:
        assert a.get("/gallery").status_code == 303, "signed out on B: refused on A at once"


def test_a_video_sent_to_one_replica_is_censored_and_served_by_either(replicas):
    clip = Clip(seconds=2, wound_from_s=0.5, wound_to_s=1.5, audio=False)
    path = write_clip(replicas["base"] / "sent.mkv", clip)
    sent = httpx.post(
        f"{replicas['a']}/videos", params={"filename": "sent.mkv"}, content=path.read_bytes(),
        headers=replicas["headers"], timeout=60,
    )  # fmt: skip
    assert sent.status_code == 202, sent.text
    video_id = sent.json()["video"]["id"]
    record = wait_done(replicas["b"], replicas["headers"], video_id)
    assert record["state"] == "done" and record["result"]["gore"], record
    censored = httpx.get(f"{replicas['b']}/videos/{video_id}/censored.mp4", headers=replicas["headers"], timeout=60)
    assert censored.status_code == 200
    with av.open(io.BytesIO(censored.content)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == clip.frames
    for index, pixels in enumerate(frames):
        wound = clip.wound_mask(index)
        assert (red(pixels) & wound).sum() <= 0.02 * wound.sum(), index
    listed = httpx.get(f"{replicas['a']}/videos", headers=replicas["headers"]).json()
    assert [v["id"] for v in listed][:1] == [video_id] and listed[0]["gore"] is True
    assert not list((replicas["base"] / "data-a").glob("videos/*/censored.mp4")), "A never needed a copy"


def test_a_job_is_worked_by_both_and_a_replica_killed_mid_job_loses_nothing(replicas):
    root, headers = replicas["jobs_root"], replicas["headers"]
    folder = root / "seized"
    folder.mkdir()
    good = []
    for n in range(40):
        (folder / f"img{n:03d}.png").write_bytes(png(RED if n % 3 == 0 else GREEN, seed=100 + n))
        good.append(f"seized/img{n:03d}.png")
    bad = ["seized/broken.png", "seized/notes.txt"]
    (folder / "broken.png").write_bytes(png(RED)[:60])
    (folder / "notes.txt").write_text("not an image")
    write_clip(folder / "clip.mkv", Clip(seconds=1, wound_from_s=0.2, wound_to_s=0.8))
    made = httpx.post(f"{replicas['b']}/jobs", json={"folder": "seized"}, headers=headers)
    assert made.status_code == 202, made.text
    job = made.json()["id"]
    deadline = time.monotonic() + 120
    while True:  # Until each replica has finished some item (host:pid of the worker that claimed it).
        finished = {
            item["worked_by"]
            for item in httpx.get(f"{replicas['a']}/jobs/{job}/items", headers=headers).json()
            if item["state"] in ("done", "failed")
        }
        if len(finished) >= 2:
            break
        assert time.monotonic() < deadline, f"both replicas work the job: {finished}"
        time.sleep(0.2)
    assert httpx.get(f"{replicas['a']}/jobs/{job}", headers=headers).json()["remaining"] > 0
    kill_service(replicas["processes"]["a"])  # kill -9 of every process of replica A, mid-job.
    deadline = time.monotonic() + 240
    while (status := httpx.get(f"{replicas['b']}/jobs/{job}", headers=headers).json())["state"] != "done":
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    items = httpx.get(f"{replicas['b']}/jobs/{job}/items", headers=headers).json()
    assert (status["total"], status["done"], status["failed"], status["remaining"]) == (43, 41, 2, 0)
    by_path = {item["path"]: item for item in items}
    video = by_path.pop("seized/clip.mkv")
    assert video["state"] == "done" and video["status"] == 202 and video["video_id"]
    censored = wait_done(replicas["b"], headers, video["video_id"])  # Whoever took it, even if A died on it.
    assert censored["state"] == "done" and censored["result"]["gore"], censored
    assert all(by_path[p]["state"] == "failed" and by_path[p]["status"] in (415, 422) for p in bad)
    ids = {by_path[p]["image_id"] for p in good}
    assert len(ids) == 40 and None not in ids
    for image_id in ids:  # Analysed exactly once, whoever worked it, however often it was claimed.
        record = stored(replicas["database"], image_id)
        assert len(record["analyses"]) == 1, record
    red = by_path["seized/img000.png"]["image_id"]
    assert httpx.get(f"{replicas['b']}/images/{red}", headers=headers).json()["gore"] is True


def test_the_stores_stay_consistent_under_both_replicas_posting(replicas):
    """Different images through the other replica at the same time as reviews: every write kept."""
    url, headers = replicas["b"], replicas["headers"]
    ids: list[str] = []
    lock = threading.Lock()

    def post(n: int) -> None:
        answer = httpx.post(f"{url}/censor", files={"image": (f"{n}.png", png(GREEN, seed=500 + n))}, headers=headers)
        assert answer.status_code == 200, answer.text
        with lock:
            ids.append(answer.json()["id"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post, range(8)))
    with PostgresDatabase(replicas["database"]).connect() as db:
        indexed = {row[0] for row in db.execute("SELECT id FROM images")}
    assert set(ids) <= indexed, "the gallery index, shared, lists every image"
