"""Serving the active-learning loop and the models' uncertainty (README: Active learning).

One real `bentoml serve` with the red-pixel voting ensemble (profile `redvote`: two members with
the thesis head's shape, `red_wrl` 0.5 at 5% red pixels, `red_bce` at 3%, the vote 3 to 1) and
an annotation root holding a pool of images whose red share is known.

- POST /censor with `uncertainty` runs the members' inference-dropout passes: mean, standard
  deviation, and doubt censors (mean + std reaching the threshold); `cascade` adds the thesis' rule.
- POST /annotation/next ranks the pool's unlabelled images with a strategy; POST
  /annotation/labels takes CSV or VIA labels into the data set folder; both need `annotator`.
"""

from __future__ import annotations

import io
import json
import math
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from images import red_square
from PIL import Image
from serving import bentoml_server, grant

# File name -> share of red pixels (gore to the red models above 5%, or 3% for `red_bce`).
POOL = {f"red{round(share * 1000):03d}.png": share for share in (0.0, 0.01, 0.02, 0.03, 0.045, 0.06, 0.1, 0.3)}


def vote(share: float) -> float:
    """What the ensemble's plain vote says, worked out by hand (the model input is 224 px)."""
    wrl, bce = (1 / (1 + math.exp(-(100 * share + bias))) for bias in (-5.0, -3.0))
    return 0.75 * wrl + 0.25 * bce


@pytest.fixture(scope="module")
def served(red_vote_tags, tmp_path_factory):
    root = tmp_path_factory.mktemp("annotation-root")
    (root / "pool").mkdir()
    for name, share in POOL.items():
        (root / "pool" / name).write_bytes(red_square(share))
    (root / "pool" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "elsewhere").mkdir()
    data_dir = tmp_path_factory.mktemp("annotation-data")
    env = {"GORE_PROFILE": "redvote", "GORE_DATA_DIR": str(data_dir), "GORE_ANNOTATION_ROOT": str(root)}
    with bentoml_server(env, tmp_path_factory.mktemp("annotation-logs") / "serve.log") as url:
        yield url, root, data_dir


def post_image(url: str, headers, share: float, **fields) -> httpx.Response:
    files = {"image": (f"share{share}.png", red_square(share))}
    return httpx.post(f"{url}/censor", files=files, data=fields, headers=headers, timeout=120)


# ---- uncertainty served ----


def test_uncertainty_answers_the_votes_mean_and_spread_over_dropout_passes(served):
    url, _, data_dir = served
    ingest = grant(data_dir, "ingest")
    clean = post_image(url, ingest, 0.0, uncertainty="true").json()
    sure = clean["uncertainty"]
    assert sure["passes"] == 30 and [(m["name"], m["loss"]) for m in sure["members"]] == [
        ("red_wrl", "wrl"),
        ("red_bce", "bce"),
    ]
    # No red pixel: dropout has nothing to drop, every pass agrees with the plain vote.
    assert sure["std"] < 1e-6 and sure["mean"] == pytest.approx(vote(0.0), abs=1e-4)
    assert not sure["uncertain"] and not sure["censors"] and not clean["gore"] and clean["censored"] is None
    assert sure["members"][0]["probability"] == pytest.approx(1 / (1 + math.exp(5)), abs=1e-4)

    red = post_image(url, ingest, 0.045, uncertainty="true").json()
    spread = red["uncertainty"]
    assert red["gore_probability"] == pytest.approx(vote(0.045), abs=0.02)
    assert 0.003 < spread["std"] < 0.1  # Dropping half the red pixels' features moves the vote.
    assert abs(spread["mean"] - red["gore_probability"]) < 3 * spread["std"]
    assert spread["uncertain"] == (spread["mean"] - spread["std"] <= 0.5 <= spread["mean"] + spread["std"])
    assert "uncertainty" in red["timings_ms"]
    # The stored record stays the models' deterministic answer: passes are per request.
    record = httpx.get(f"{url}/images/{red['id']}", headers=grant(data_dir, "analyst"), timeout=30).json()
    assert record["uncertainty"] is None and record["gore_probability"] == red["gore_probability"]


def test_doubt_censors_an_image_the_plain_vote_would_show(served):
    url, _, data_dir = served
    ingest = grant(data_dir, "ingest")
    plain = post_image(url, ingest, 0.03).json()
    threshold = round(plain["gore_probability"] + 0.004, 4)  # Just out of the plain vote's reach.
    shown = post_image(url, ingest, 0.03, threshold=str(threshold)).json()
    assert not shown["gore"] and shown["censored"] is None
    doubted = post_image(url, ingest, 0.03, threshold=str(threshold), uncertainty="true").json()
    spread = doubted["uncertainty"]
    assert spread["mean"] + spread["std"] >= threshold and spread["censors"]
    assert doubted["gore"] and doubted["censored"], "an image the models are unsure of is censored"
    censored = httpx.get(url + doubted["censored"], headers=grant(data_dir, "analyst"), timeout=60)
    pixels = np.asarray(Image.open(io.BytesIO(censored.content)).convert("RGB")).astype(int)
    assert not (pixels[..., 0] - (pixels[..., 1] + pixels[..., 2]) / 2 > 60).any(), "a red pixel shows"


def test_the_cascade_lets_the_wrl_member_decide_when_it_is_sure(served):
    url, _, data_dir = served
    ingest = grant(data_dir, "ingest")
    for share in (0.0, 0.3):
        answer = post_image(url, ingest, share, cascade="true").json()["uncertainty"]
        wrl = answer["members"][0]
        assert answer["cascade"]["source"] == "wrl"
        assert answer["cascade"]["probability"] == pytest.approx(wrl["mean"], abs=1e-6)
    refused = post_image(url, ingest, 0.0, cascade="maybe")
    assert refused.status_code == 400 and "true or false" in refused.json()["error"]


# ---- the endpoints and their roles ----


def test_the_annotation_routes_need_the_annotator_role(served):
    url, _, data_dir = served
    assert httpx.post(f"{url}/annotation/next", json={}, timeout=30).status_code == 401
    for role in ("ingest", "analyst"):
        headers = grant(data_dir, role)
        assert httpx.post(f"{url}/annotation/next", json={}, headers=headers, timeout=30).status_code == 403
        labels = httpx.post(f"{url}/annotation/labels", content=b"image,label\n", headers=headers, timeout=30)
        assert labels.status_code == 403 and "'annotator'" in labels.json()["error"]
    annotator = grant(data_dir, "annotator")
    assert httpx.get(f"{url}/annotation/annotators", headers=annotator, timeout=30).status_code == 403
    rates = httpx.get(f"{url}/annotation/annotators", headers=grant(data_dir, "admin"), timeout=30)
    assert rates.status_code == 200 and isinstance(rates.json(), list)


def test_next_ranks_the_unlabelled_pool_with_the_chosen_strategy(served):
    url, _, data_dir = served
    headers = grant(data_dir, "annotator", name="ann")
    answer = httpx.post(f"{url}/annotation/next", json={"k": 20}, headers=headers, timeout=300).json()
    assert answer["strategy"] == "gore_averse" and answer["pool"] == len(POOL) and answer["labelled"] == 0
    assert len(answer["skipped"]) == 1 and answer["skipped"][0].startswith("broken.jpg")
    items = answer["items"]
    assert sorted(i["file"] for i in items) == sorted(POOL) and [i["rank"] for i in items] == list(range(1, 9))
    # gore_averse: binary entropy x P(clean), highest first: informative images that are probably clean.
    for item in items:
        p = item["gore_probability"]
        entropy = -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)
        assert item["score"] == pytest.approx(entropy * (1 - p), abs=1e-5)
        assert item["gore"] == (p >= 0.5) and (item["censored"] is not None) == item["gore"]
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    assert items[-1]["file"] == "red300.png"  # Confident gore: shown last.

    top = httpx.post(f"{url}/annotation/next", json={"k": 3, "strategy": "entropy"}, headers=headers, timeout=300)
    closest = sorted(items, key=lambda i: abs(i["gore_probability"] - 0.5))[:3]
    assert [i["file"] for i in top.json()["items"]] == [i["file"] for i in closest]

    spread = httpx.post(f"{url}/annotation/next", json={"k": 8, "strategy": "mc_dropout"}, headers=headers, timeout=300)
    ranked = spread.json()["items"]
    # No red pixel, or so many that the vote is saturated: the passes agree, last in the queue.
    assert {i["file"] for i in ranked[-2:]} == {"red000.png", "red300.png"} and ranked[-1]["score"] < 1e-4
    assert ranked[0]["score"] > 0.003

    disagreement = httpx.post(
        f"{url}/annotation/next", json={"k": 2, "strategy": "disagreement"}, headers=headers, timeout=300
    ).json()
    # The members disagree most between 3% and 5% red: one says gore, the other not yet.
    assert {i["file"] for i in disagreement["items"]} <= {"red030.png", "red045.png", "red020.png"}


def test_labels_land_in_the_data_set_and_leave_the_queue(served):
    """Into a data set of its own (`landed`): the ranking test sees a pool nobody has labelled."""
    url, root, data_dir = served
    labels = f"{url}/annotation/labels?dataset=landed"
    headers = {**grant(data_dir, "annotator", name="ann"), "content-type": "text/csv"}
    body = b"image,label\nred000.png,not_gore\nred300.png,gore\nred100.png,maybe\nmissing.png,gore\n"
    taken = httpx.post(labels, content=body, headers=headers, timeout=60)
    assert taken.status_code == 200, taken.text
    answer = taken.json()
    assert (answer["taken"], answer["gore"], answer["not_gore"], answer["unsplit"]) == (2, 1, 1, 2)
    assert {p["item"] for p in answer["problems"]} == {"red100.png", "missing.png"}
    assert (root / "landed" / "gore" / "red300.png").read_bytes() == (root / "pool" / "red300.png").read_bytes()
    manifest = json.loads((root / "landed" / "dataset.json").read_text())
    assert {s["image"]: s["gore"] for s in manifest["samples"]} == {
        "not_gore/red000.png": False,
        "gore/red300.png": True,
    }

    queue = httpx.post(
        f"{url}/annotation/next", json={"k": 20, "dataset": "landed"}, headers=headers, timeout=300
    ).json()
    assert queue["labelled"] == 2 and {i["file"] for i in queue["items"]} == set(POOL) - {"red000.png", "red300.png"}

    # VIA: a region makes a mask; relabelling moves an image to its new class.
    region = {
        "shape_attributes": {"name": "rect", "x": 20, "y": 10, "width": 40, "height": 40},
        "region_attributes": {},
    }
    project = {"x": {"filename": "red045.png", "size": 1, "regions": [region], "file_attributes": {}}}
    via = httpx.post(labels, json=project, headers={k: v for k, v in headers.items() if k != "content-type"})
    assert via.status_code == 200 and via.json()["taken"] == 1, via.text
    assert (root / "landed" / "masks" / "red045.png").is_file()
    again = httpx.post(labels, content=b"image,label\nred300.png,clean\n", headers=headers)
    assert again.json()["taken"] == 1 and (root / "landed" / "not_gore" / "red300.png").is_file()
    assert not (root / "landed" / "gore" / "red300.png").exists()

    audit = httpx.get(f"{url}/admin/audit", headers=grant(data_dir, "admin"), timeout=30).json()
    assert any(e["action"] == "annotation labels" and e["actor"] == "ann" for e in audit)
    assert any(e["action"] == "annotation queue" and e["actor"] == "ann" for e in audit)


def test_labels_sent_at_once_are_all_kept(served):
    url, root, data_dir = served
    headers = {**grant(data_dir, "annotator"), "content-type": "text/csv"}
    names = ["red010.png", "red020.png", "red030.png", "red060.png"]

    def send(name: str) -> int:
        body = f"image,label\n{name},{'gore' if name == 'red060.png' else 'not_gore'}\n".encode()
        return httpx.post(f"{url}/annotation/labels?dataset=together", content=body, headers=headers).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(send, names)) == [200] * 4
    manifest = json.loads((root / "together" / "dataset.json").read_text())
    assert sorted(s["image"].rsplit("/", 1)[-1] for s in manifest["samples"]) == sorted(names)


def test_bad_annotation_requests_get_clear_errors(served):
    url, _, data_dir = served
    headers = grant(data_dir, "annotator")

    def next_with(body):
        return httpx.post(f"{url}/annotation/next", json=body, headers=headers, timeout=60)

    outside = next_with({"pool": "../"})
    assert outside.status_code == 403 and "annotation root" in outside.json()["error"]
    assert next_with({"pool": "no-such-pool"}).status_code == 404
    assert next_with({"k": 0}).status_code == 400
    assert next_with({"strategy": "psychic"}).status_code == 400
    assert next_with({"pool": "pool", "colour": "red"}).status_code == 400
    wrong_type = httpx.post(f"{url}/annotation/labels", content=b"x", headers={**headers, "content-type": "text/plain"})
    assert wrong_type.status_code == 400 and "text/csv" in wrong_type.json()["error"]
    nothing = httpx.post(
        f"{url}/annotation/labels",
        content=b"image,label\nmissing.png,gore\n",
        headers={**headers, "content-type": "text/csv"},
    )
    assert nothing.status_code == 422 and nothing.json()["problems"][0]["item"] == "missing.png"
    headerless = httpx.post(f"{url}/annotation/labels", content=b"", headers={**headers, "content-type": "text/csv"})
    assert headerless.status_code == 400 and "header" in headerless.json()["error"]
    not_json = httpx.post(
        f"{url}/annotation/labels", content=b"{oops", headers={**headers, "content-type": "application/json"}
    )
    assert not_json.status_code == 400
