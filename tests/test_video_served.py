"""Videos through a real `bentoml serve`: sent as a body, censored in the background, the censored
copy fetched by an analyst; the original never served. Red-pixel test models, real encoded videos."""

from __future__ import annotations

import io
import time

import av
import httpx
import numpy as np
import pytest
from PIL import Image
from serving import bentoml_server, grant
from videos import Clip, wait_done, write_clip, write_sound_only

CLIP = Clip(seconds=2, wound_from_s=0.5, wound_to_s=1.5)


def red(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels.astype(np.int32)
    return rgb[..., 0] - (rgb[..., 1] + rgb[..., 2]) // 2 > 60


@pytest.fixture(scope="module")
def served(red_model_tags, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("video-data")
    env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(data_dir), "GORE_VIDEO_MAX_BYTES": str(3 * 2**20)}
    with bentoml_server(env, tmp_path_factory.mktemp("video-logs") / "serve.log") as url:
        yield url, grant(data_dir, "ingest", name="sender"), grant(data_dir, "analyst", name="analyst"), data_dir


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mkv", CLIP).read_bytes()


def test_a_video_is_answered_at_once_and_censored_in_the_background(served, clip_bytes):
    url, sender, analyst, _ = served
    sent = httpx.post(f"{url}/videos?filename=clip.mkv", content=clip_bytes, headers=sender, timeout=60)
    assert sent.status_code == 202, sent.text
    video_id = sent.json()["video"]["id"]
    assert sent.json()["status_url"] == f"/videos/{video_id}" and sent.json()["video"]["state"] in ("queued", "working")
    record = wait_done(url, analyst, video_id)
    assert record["state"] == "done", record
    result = record["result"]
    assert result["gore"] and [(s["start_s"], s["end_s"]) for s in result["segments"]] == [(0.5, 1.0)]
    assert result["frames"] == CLIP.frames and result["audio"] == "copied" and not result["hidden_frames"]

    censored = httpx.get(f"{url}/videos/{video_id}/censored.mp4", headers=analyst, timeout=60)
    assert censored.status_code == 200 and censored.headers["content-type"] == "video/mp4"
    assert censored.headers["cache-control"] == "no-store"
    with av.open(io.BytesIO(censored.content)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == CLIP.frames
    for index, pixels in enumerate(frames):  # Every frame, not only the sampled ones.
        wound = CLIP.wound_mask(index)
        assert (red(pixels) & wound).sum() <= 0.02 * wound.sum(), index
    strip = Image.open(io.BytesIO(httpx.get(f"{url}/videos/{video_id}/strip.png", headers=analyst).content))
    assert not red(np.asarray(strip.convert("RGB"))).any()
    masks = httpx.get(f"{url}/videos/{video_id}/masks.jsonl", headers=analyst).text.splitlines()
    assert len(masks) == result["masked_frames"] >= 30
    markers = httpx.get(f"{url}/videos/{video_id}/markers.edl", headers=analyst)
    assert markers.headers["content-type"].startswith("text/plain") and "GORE SEGMENT 1" in markers.text

    again = httpx.post(f"{url}/videos?filename=again.mkv", content=clip_bytes, headers=sender, timeout=60)
    assert again.status_code == 200 and again.json()["video"]["id"] == video_id  # Same bytes: the same video.
    listed = httpx.get(f"{url}/videos", headers=sender).json()
    assert [(v["id"], v["state"], v["gore"]) for v in listed] == [(video_id, "done", True)]


def test_the_censored_copy_is_for_analysts_and_the_original_is_never_served(served, clip_bytes):
    url, sender, analyst, data_dir = served
    admin = grant(data_dir, "admin", name="admin")
    video_id = httpx.post(f"{url}/videos", content=clip_bytes, headers=sender, timeout=60).json()["video"]["id"]
    wait_done(url, analyst, video_id)
    refused = httpx.get(f"{url}/videos/{video_id}/censored.mp4", headers=sender)
    assert refused.status_code == 403 and "analyst" in refused.json()["error"]
    for path in ("original", "original.mkv", "censored.mp4/../original.mkv"):
        assert httpx.get(f"{url}/videos/{video_id}/{path}", headers=analyst).status_code == 403, path  # No rule.
        answer = httpx.get(f"{url}/videos/{video_id}/{path}", headers=admin)  # Not even for an admin: no route.
        assert answer.status_code == 404 and "error" in answer.json(), path
    assert httpx.post(f"{url}/videos", content=clip_bytes).status_code == 401


def test_what_is_not_a_video_or_too_big_is_refused_at_once_and_nothing_kept(served, tmp_path):
    url, sender, *_ = served
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    started = time.monotonic()
    answer = httpx.post(f"{url}/videos?filename=a.png", content=png.getvalue(), headers=sender)
    assert answer.status_code == 415 and "not a video this service reads" in answer.json()["error"]
    big = write_clip(tmp_path / "big.mkv", Clip(seconds=2)).read_bytes() * 3  # Over the 3 MiB limit set here.
    answer = httpx.post(f"{url}/videos", content=big, headers=sender, timeout=60)
    assert answer.status_code == 413 and "limit" in answer.json()["error"]
    assert time.monotonic() - started < 10
    assert all(v["filename"] not in ("a.png", "video") for v in httpx.get(f"{url}/videos", headers=sender).json())


def test_a_video_that_cannot_be_censored_ends_failed_with_the_answer_it_deserves(served, tmp_path):
    """Its first bytes say MP4, so it is taken; what is inside is found out in the background."""
    url, sender, analyst, _ = served
    sound = write_sound_only(tmp_path / "sound.mp4")
    sent = httpx.post(f"{url}/videos?filename=sound.mp4", content=sound.read_bytes(), headers=sender, timeout=60)
    assert sent.status_code == 202
    record = wait_done(url, analyst, sent.json()["video"]["id"])
    assert (record["state"], record["status"]) == ("failed", 415) and "no video stream" in record["error"], record
    answer = httpx.get(f"{url}/videos/{record['id']}/censored.mp4", headers=analyst)
    assert answer.status_code == 409 and "failed" in answer.json()["error"]


def test_a_video_sent_to_censor_is_told_where_videos_go(served, clip_bytes):
    url, sender, *_ = served
    answer = httpx.post(f"{url}/censor", files={"image": ("clip.mkv", clip_bytes)}, headers=sender, timeout=60)
    assert answer.status_code == 415 and "a video" in answer.json()["error"]


def test_a_video_whose_worker_is_killed_is_censored_whole_after_the_restart(red_model_tags, tmp_path):
    """kill -9 of the whole service mid-video: the lock dies with the worker, and the next start takes
    the video again from the start; its record ends done, every frame censored, nothing doubled."""
    from serving import bentoml_process, kill_service

    data_dir = tmp_path / "data"
    env = {"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(data_dir)}
    clip = Clip(seconds=10, wound_from_s=2, wound_to_s=8)
    sent = write_clip(tmp_path / "long.mkv", clip).read_bytes()
    with bentoml_process(env, tmp_path / "first.log") as (url, process):
        sender, analyst = grant(data_dir, "ingest", name="sender"), grant(data_dir, "analyst", name="analyst")
        video_id = httpx.post(f"{url}/videos", content=sent, headers=sender, timeout=60).json()["video"]["id"]
        ends = time.monotonic() + 60
        while httpx.get(f"{url}/videos/{video_id}", headers=analyst).json()["state"] != "working":
            assert time.monotonic() < ends, "the video was never taken"
            time.sleep(0.1)
        kill_service(process)  # Every process of the service, workers too, at once, mid-video.
    with bentoml_server(env, tmp_path / "second.log") as url:
        record = wait_done(url, analyst, video_id)
        assert record["state"] == "done" and record["result"]["frames"] == clip.frames, record
        censored = httpx.get(f"{url}/videos/{video_id}/censored.mp4", headers=analyst, timeout=60).content
    with av.open(io.BytesIO(censored)) as container:
        frames = 0
        for index, frame in enumerate(container.decode(video=0)):
            wound = clip.wound_mask(index)
            assert (red(frame.to_ndarray(format="rgb24")) & wound).sum() <= 0.02 * wound.sum(), index
            frames += 1
    assert frames == clip.frames
    assert sorted(p.name for p in (data_dir / "videos" / video_id).iterdir() if not p.name.startswith(".")) == [
        "censored.mp4",
        "markers.edl",
        "masks.jsonl",
        "original.mkv",
        "strip.png",
        "summary.json",
        "timeline.json",
        "video.json",
    ]
