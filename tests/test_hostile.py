"""Hostile input against a real `bentoml serve` (red-pixel test models, one token of each role):
every attack is answered with a clear 4xx within seconds, nothing is read outside its root, no
reveal happens without its confirmation, and all the while `/livez` answers within a second and
the Censor worker's memory stays within its bound (README "Hostile input"). The attacks
themselves live in tests/attacks.py; `make hostile` times them against the demo models."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from attacks import (
    BODY_IDLE_S,
    PASSWORD,
    ROLES,
    outside_names,
    parallel_guesses,
    post_image,
    post_labels,
    press_everywhere,
    raw_post,
    run_job,
    salted_folders,
    serving_env,
    share_seen,
    sign_in_attempt,
    signed_in,
    stalled_post,
    timed,
    unique_red,
)
from hostile_files import HOSTILE, gif_growing_canvas
from serving import Watch, bentoml_process, grant

from pipeline.stores.people import MAX_FAILURES, People

GORE_CENSOR = str(Path(sys.executable).with_name("gore-censor"))
MOST_GROWTH_MB = 400  # The Censor worker's memory over everything below (README "Hostile input").


@pytest.fixture(scope="module")
def attacked(red_model_tags, tmp_path_factory):
    """The service over folders salted with pipes and links, a token per role, the watch over it."""
    base = tmp_path_factory.mktemp("hostile")
    folders = salted_folders(base)
    people = People.in_data_dir(folders.data)
    people.create_user("ana", ["analyst", "ingest"], PASSWORD, "tests")
    with bentoml_process(serving_env(folders, "redtest"), base / "serve.log") as (url, process):
        watch = Watch(url, process)
        tokens = {role: grant(folders.data, role, name=role) for role in ROLES}
        yield {"url": url, "folders": folders, "tokens": tokens, "watch": watch, "people": people}
        watch.stop()


def still_standing(site) -> None:
    """What every attack must leave: liveness within a second, memory within its bound."""
    watch: Watch = site["watch"]
    assert not watch.failures, watch.failures[:5]
    assert watch.slowest_s < 1.0, f"/livez took {watch.slowest_s:.2f} s at worst"
    grown = watch.peak_mb - watch.baseline_mb
    assert grown < MOST_GROWTH_MB, f"the Censor worker grew by {grown:.0f} MB"


def new_gore_image(site, seed: int) -> tuple[str, int, int]:
    answer, _ = post_image(site["url"], site["tokens"]["ingest"], f"{seed}.png", unique_red(seed))
    body = answer.json()
    assert body["gore"] is True
    return body["id"], body["width"], body["height"]


# ---- decoding under a budget ----


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_image_is_refused_within_two_seconds(attacked, name):
    make, status = HOSTILE[name]
    answer, took = post_image(attacked["url"], attacked["tokens"]["ingest"], name, make())
    assert answer.status_code == status, answer.text
    assert answer.json()["error"].startswith(name), "the message names the file and says what is wrong"
    assert took < 2.0, f"{name}: refused after {took:.2f} s"
    still_standing(attacked)


def test_a_batch_refuses_each_hostile_file_alone_and_censors_the_rest(attacked):
    files = [("images", (name, make())) for name, (make, _) in sorted(HOSTILE.items())]
    files.append(("images", ("red.png", unique_red(1))))
    answer = httpx.post(
        f"{attacked['url']}/censor/batch", files=files, headers=attacked["tokens"]["ingest"], timeout=120
    )
    assert answer.status_code == 200, answer.text
    statuses = {item["filename"]: item["status"] for item in answer.json()}
    assert statuses == {**{name: status for name, (_, status) in HOSTILE.items()}, "red.png": 200}
    still_standing(attacked)


def test_the_web_upload_refuses_the_growing_gif_too(attacked):
    client, csrf = signed_in(attacked["url"], "ana")
    answer = client.post("/upload/file?name=canvas.gif", content=gif_growing_canvas(), headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 422 and "reaches past" in answer.json()["error"]
    still_standing(attacked)


# ---- files from folders ----


def test_a_jobs_folder_of_pipes_links_and_sockets_is_worked_without_reading_them(attacked):
    url, headers, folders = attacked["url"], attacked["tokens"]["ingest"], attacked["folders"]
    items = run_job(url, headers, "drop")
    assert items["drop/good.png"]["state"] == items["drop/red.png"]["state"] == "done"
    reasons = {
        "drop/pipe.png": "named pipe",
        "drop/zero.png": "symbolic link",
        "drop/escape.png": "symbolic link",
        "drop/outside": "symbolic link",
        "drop/socket.png": "socket",
        "drop/canvas.gif": "reaches past",
        "drop/pages.tif": "every frame or page",
    }
    for path, reason in reasons.items():
        assert items[path]["state"] == "failed" and reason in items[path]["error"], items[path]
    secret_id = hashlib.sha256(folders.secret.read_bytes()).hexdigest()
    assert not (folders.data / "images" / secret_id).exists(), "nothing outside the jobs root was read"
    through_link = httpx.post(f"{url}/jobs", json={"files": ["drop/outside/secret.png"]}, headers=headers, timeout=30)
    assert through_link.status_code == 403
    still_standing(attacked)


def test_an_annotation_pool_with_a_pipe_and_links_is_ranked_and_they_are_skipped(attacked):
    answer = httpx.post(
        f"{attacked['url']}/annotation/next",
        json={"pool": "pool", "dataset": "ranked", "k": 5},
        headers=attacked["tokens"]["annotator"],
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    ranked = answer.json()
    assert sorted(item["file"] for item in ranked["items"]) == ["good.png", "red.png"]
    skipped = "\n".join(ranked["skipped"])
    assert "pipe.png: is a named pipe" in skipped and "zero.png: is a symbolic link" in skipped
    assert "escape.png: is a symbolic link" in skipped
    still_standing(attacked)


@pytest.mark.parametrize("fmt", ["via", "csv"])
def test_labels_cannot_name_a_file_outside_the_pool_or_tell_whether_it_exists(attacked, fmt):
    folders = attacked["folders"]
    answer = post_labels(attacked["url"], attacked["tokens"]["annotator"], outside_names(folders), fmt)
    assert answer.status_code == 422 and answer.json()["taken"] == 0, answer.text
    reasons = {p["item"]: p["reason"] for p in answer.json()["problems"]}
    assert len(reasons) == 6 and len(set(reasons.values())) == 1, f"one message, path or no path: {reasons}"
    stolen = folders.annotation / "stolen"
    copied = [p for p in stolen.rglob("*") if p.is_file() and p.suffix in (".png", ".jpg")] if stolen.exists() else []
    assert copied == [], "nothing from outside the pool was copied into the data set"
    still_standing(attacked)


# ---- bodies and parameters ----


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "chunked"])
def test_a_300_mb_json_body_is_refused_with_413_after_reading_at_most_its_limit(attacked, declared):
    status, took, sent = raw_post(attacked["url"], "/jobs/", attacked["tokens"]["ingest"], 300, declared)
    assert status == 413 and took < 5, (status, took)
    assert sent < 64 * 2**20, f"{sent:,} bytes went in before the refusal"
    still_standing(attacked)


def test_a_hash_list_past_its_limit_is_refused_with_413_and_a_hostile_one_with_400(attacked):
    """Hash lists are files from outside: over GORE_HASH_LIST_MAX_BYTES, 413 after reading at most
    its limit; not UTF-8, a line of a megabyte, binary junk, a CSV field across lines: a 400 that
    says what, and no list made."""
    admin = attacked["tokens"]["admin"]
    status, took, sent = raw_post(attacked["url"], "/admin/hash-lists?name=big&source=s&label=gore", admin, 300, True)
    assert status == 413 and took < 5, (status, took)
    assert sent < 64 * 2**20, f"{sent:,} bytes went in before the refusal"
    good = "pdq " + "ab" * 32 + "\n"
    for body, fmt, says in (
        (good.encode() + b"\xff\xfe not utf-8\n", "signals", "UTF-8"),
        ((good + "pdq " + "a" * 1_000_000 + "\n").encode(), "signals", "line 2"),
        (bytes(range(1, 128)) * 100, "signals", "line 1"),
        (("ab" * 32 + ',1,2,"2026\n-11-01",gore\n').encode(), "hma-csv", "line 1"),
    ):
        answer, took = timed(
            httpx.post,
            f"{attacked['url']}/admin/hash-lists",
            params={"name": "hostile", "source": "s", "label": "gore", "format": fmt},
            content=body,
            headers={**admin, "Content-Type": "text/plain"},
            timeout=60,
        )
        assert answer.status_code == 400 and says in answer.json()["error"] and took < 5, (answer.text, took)
    assert httpx.get(f"{attacked['url']}/admin/hash-lists", headers=admin).json() == []
    still_standing(attacked)


def test_labels_and_forms_have_limits_too(attacked):
    labels = httpx.post(
        f"{attacked['url']}/annotation/labels",
        content=b"image,label\n" + b"x.png,gore\n" * 2_000_000,
        headers={**attacked["tokens"]["annotator"], "Content-Type": "text/csv"},
        timeout=60,
    )
    assert labels.status_code == 413 and "limit" in labels.json()["error"]
    form = httpx.post(f"{attacked['url']}/app/signin", data={"name": "x" * 3_000_000, "password": "y"}, timeout=60)
    assert form.status_code == 413 and "limit" in form.text
    still_standing(attacked)


def test_renderings_per_image_stay_few_whatever_margin_is_asked(attacked):
    url, headers = attacked["url"], attacked["tokens"]["analyst"]
    image, _, _ = new_gore_image(attacked, 77)
    for asked in np.random.default_rng(3).uniform(0, 8, 40).round(4):
        answer = httpx.get(f"{url}/images/{image}/mask", params={"margin": str(asked)}, headers=headers, timeout=60)
        assert answer.status_code == 200
    masks = list((attacked["folders"].data / "images" / image).glob("mask-*.png"))
    assert len(masks) <= 17, f"{len(masks)} masks kept for one image: margins are on a grid of 0.5"
    again = httpx.post(
        f"{url}/censor",
        files={"image": ("m.png", unique_red(77))},
        data={"margin": "1.01"},
        headers=attacked["tokens"]["ingest"],
        timeout=60,
    ).json()
    assert again["margin"] == 1.5, "rounded up: more censored, never less"
    still_standing(attacked)


# ---- /metrics ----


def test_metrics_name_route_templates_never_ids_and_need_their_token_here(attacked):
    url = attacked["url"]
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
    assert httpx.get(f"{url}/metrics", headers=attacked["tokens"]["analyst"], timeout=10).status_code == 403
    asked = [secrets.token_hex(32) for _ in range(50)]
    for image in asked:
        httpx.get(f"{url}/images/{image}", headers=attacked["tokens"]["analyst"], timeout=10)
    httpx.get(f"{url}/no/such/{secrets.token_hex(8)}", timeout=10)
    metrics = httpx.get(f"{url}/metrics", headers=attacked["tokens"]["metrics"], timeout=10)
    assert metrics.status_code == 200
    assert not any(image in metrics.text for image in asked), "no image id in /metrics"
    endpoints = set(re.findall(r'endpoint="([^"]*)"', metrics.text))
    assert "/images/{image_id}" in endpoints and "/{unrouted}" in endpoints
    assert len(endpoints) < 40, sorted(endpoints)
    still_standing(attacked)


# ---- signing in ----


def test_parallel_guesses_lock_the_name_and_the_right_password_then_fails_too(attacked):
    url, people = attacked["url"], attacked["people"]
    people.create_user("guessed", ["analyst"], PASSWORD, "tests")
    assert parallel_guesses(url, "guessed") == [401] * 40
    assert sign_in_attempt(url, "guessed", PASSWORD, "127.0.2.1")[0] == 401, "locked: the right password fails too"
    unlocked = subprocess.run(
        [GORE_CENSOR, "users", "unlock", "guessed"],
        env={**os.environ, "GORE_DATA_DIR": str(attacked["folders"].data)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unlocked.returncode == 0, unlocked.stderr
    assert sign_in_attempt(url, "guessed", PASSWORD, "127.0.2.2")[0] == 303, "an admin unlocks from the shell"
    still_standing(attacked)


def test_unknown_wrong_and_locked_cost_the_same_and_answer_the_same(attacked):
    url, people = attacked["url"], attacked["people"]
    people.create_user("locked", ["analyst"], PASSWORD, "tests")
    people.create_user("wrong", ["analyst"], PASSWORD, "tests")
    for i in range(MAX_FAILURES + 1):
        sign_in_attempt(url, "locked", "wrong password!", f"127.0.3.{i + 1}")
    times: dict[str, list[float]] = {"nobody at all": [], "wrong": [], "locked": []}
    for i in range(7):
        for name, spent in times.items():
            status, took = sign_in_attempt(url, name, "not the password", f"127.0.4.{i + 1}")
            assert status == 401
            spent.append(took)
        people.unlock(people.user_named("wrong").id)  # Stays below its own lock.
    medians = {name: statistics.median(spent) for name, spent in times.items()}
    # One password hash each (about 50 ms): a locked name no longer answers in a fraction of that.
    assert min(medians.values()) > 0.4 * max(medians.values()), medians
    still_standing(attacked)


def test_one_address_is_slowed_after_its_burst_of_sign_ins(attacked):
    statuses = [sign_in_attempt(attacked["url"], "nobody", "guess number one", "127.0.5.1")[0] for _ in range(25)]
    assert statuses[:20] == [401] * 20 and statuses[20:].count(429) >= 3, statuses
    still_standing(attacked)


# ---- partial reveal ----


def test_press_and_hold_stops_at_a_quarter_of_the_image_until_the_reveal_is_confirmed(attacked):
    image, width, height = new_gore_image(attacked, 401)
    attacked["people"].create_user("presser", ["analyst"], PASSWORD, "tests")
    client, csrf = signed_in(attacked["url"], "presser")
    boxes, refused = press_everywhere(client, csrf, image, width, height)
    assert refused is not None and refused.status_code == 403 and "confirm the reveal" in refused.json()["error"]
    assert 0.15 < share_seen(boxes, width, height) <= 0.25, "areas up to a quarter of the image, never more"
    confirmed = client.post(f"/images/{image}/reveal", data={"csrf": csrf, "confirm": "yes"})
    assert confirmed.status_code == 303
    after = client.post(f"/images/{image}/patch?x=5&y=5", headers={"X-CSRF-Token": csrf})
    assert after.status_code == 200, "after the confirmation, areas are the original's anyway"
    page = client.get("/exposure").text
    assert re.search(r'<td class="patches">(\d+)</td>', page).group(1) == str(len(boxes) + 1), "every area counted"
    still_standing(attacked)


def test_parallel_presses_cannot_slip_past_the_budget(attacked):
    image, width, height = new_gore_image(attacked, 402)
    attacked["people"].create_user("racer", ["analyst"], PASSWORD, "tests")
    client, csrf = signed_in(attacked["url"], "racer")
    points = [(x, y) for y in range(0, height, 48) for x in range(0, width, 48)]

    def press(point):
        return client.post(f"/images/{image}/patch?x={point[0]}&y={point[1]}", headers={"X-CSRF-Token": csrf})

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(press, points))
    boxes = [
        [int(a.headers[f"x-patch-{k}"]) for k in ("left", "top", "width", "height")]
        for a in answers
        if a.status_code == 200
    ]
    assert {a.status_code for a in answers} == {200, 403}
    assert share_seen(boxes, width, height) <= 0.25
    still_standing(attacked)


@pytest.mark.parametrize(
    ("path", "content_type", "first"),
    [
        (
            "/censor",
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="image"; '
            b'filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG',
        ),
        ("/jobs", "application/json", b'{"folder": "'),
        ("/videos", "application/octet-stream", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 50_000),
    ],
    ids=["upload form", "JSON", "video"],
)
def test_a_body_that_stops_arriving_is_dropped_with_a_408(attacked, path, content_type, first):
    """Slowloris: a client that sends the start of a body and then nothing holds no connection for long."""
    answer, took = stalled_post(attacked["url"], path, attacked["tokens"]["ingest"], content_type, first)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"no bytes of the request body arrived for 3 s" in answer and took < BODY_IDLE_S + 5
    assert not list((attacked["folders"].data / "tmp").glob("video-*")), "nothing of a video kept"
