"""The video store in both modes (a folder; or the shared database and bucket, with a local copy of
what a replica reads): a video is added once, claimed by one worker at a time, its outputs placed
before the record says done, and listed newest first, a page at a time."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from datetime import timedelta

import pytest

from pipeline.errors import Conflict, NotFound
from pipeline.stores import open_videos
from pipeline.stores.records import utc_now
from pipeline.stores.video_records import VideoResult


def result(video_id: str, outputs: dict[str, str]) -> VideoResult:
    return VideoResult(
        id=video_id, filename="clip.mp4", container="mp4", codec="h264", width=64, height=48, rotation=0,
        fps=10.0, seconds=2.0, frames=20, audio="none", demo=True, classifier="c:1", segmenter="s:1",
        threshold=0.5, gore=True, gore_seconds=1.0, segments=[], sampled=[], segmented_frames=5, masked_frames=5,
        hidden_frames=[], outputs=outputs, timings_ms={},
    )  # fmt: skip


def replicas(place, tmp_path):
    """Two stores as two workers see them: one data directory (embedded), or two (shared)."""
    other = place.data_dir if place.mode == "embedded" else tmp_path / "replica"
    return open_videos(place.data_dir, place.shared), open_videos(other, place.shared)


def add(store, data: bytes, name: str = "clip.mp4"):
    spooled = store.spool()
    spooled.write_bytes(data)
    return store.add(spooled, hashlib.sha256(data).hexdigest(), ".mp4", name, "tests")


def test_a_video_is_added_once_claimed_by_one_worker_and_its_outputs_placed_before_done(place, tmp_path):
    store, replica = replicas(place, tmp_path)
    record = add(store, b"\x00\x00\x00\x18ftypmp42 first video")
    assert add(store, b"\x00\x00\x00\x18ftypmp42 first video").submitted_at == record.submitted_at, "sent twice: one"
    assert store.original(record.id).read_bytes() == b"\x00\x00\x00\x18ftypmp42 first video"
    with store.claim() as claimed:
        assert claimed is not None and claimed.id == record.id
        with replica.claim() as other:
            assert other is None, "a video is worked by one worker at a time"
        store.save(claimed.model_copy(update={"state": "working"}))
        with pytest.raises(Conflict, match="working"):
            replica.output(record.id, "video")
        made = store.work_folder(record.id)
        (made / "censored.mp4").write_bytes(b"censored bytes")
        (made / "strip.png").write_bytes(b"strip bytes")
        done = result(record.id, {"video": "censored.mp4", "strip": "strip.png"})
        store.place_outputs(record.id, made, done)
        store.save(claimed.model_copy(update={"state": "done", "result": done, "finished_at": utc_now()}))
    with replica.claim() as other:
        assert other is None, "a done video is not claimed again"
    assert replica.output(record.id, "video").read_bytes() == b"censored bytes", "read on the other replica too"
    assert replica.output(record.id, "strip").read_bytes() == b"strip bytes"
    assert replica.get(record.id).result.gore and replica.summary(record.id).segments == 0
    with pytest.raises(NotFound):
        replica.get("ab" * 32)


def test_videos_are_listed_newest_first_a_page_at_a_time(place):
    store = open_videos(place.data_dir, place.shared)
    ids = [add(store, b"\x00\x00\x00\x18ftypmp42 video %d" % n, f"{n}.mp4").id for n in range(5)]
    first = store.summaries(limit=2)
    second = store.summaries(limit=2, after=first[-1].id)
    third = store.summaries(limit=2, after=second[-1].id)
    assert [s.id for s in first + second + third] == list(reversed(ids))
    with pytest.raises(NotFound):
        store.summaries(after="cd" * 32)


def test_a_video_whose_worker_stopped_renewing_is_taken_by_another_replica(place, tmp_path):
    if place.mode == "embedded":
        pytest.skip("embedded: the kernel drops a dead worker's lock (tests/test_video_served.py kills one)")
    store, replica = replicas(place, tmp_path)
    record = add(store, b"\x00\x00\x00\x18ftypmp42 a long one")
    with store.database.connect() as db:  # What a worker killed mid-video leaves: working, its lease run out.
        db.execute(
            "UPDATE videos SET state = 'working', claim = 'dead', lease_until = ? WHERE id = ?",
            ((utc_now() - timedelta(seconds=1)).isoformat(), record.id),
        )
    with replica.claim() as taken:
        assert taken is not None and taken.id == record.id
        with store.claim() as other:
            assert other is None, "the new lease holds"


def test_a_worker_told_to_stop_gives_its_video_back_queued_at_once(place, tmp_path):
    """SIGTERM mid-video (a restart, a rolling update): the work is dropped and the video queued
    again for another worker now, not when the lease runs out (shared) or the process dies."""
    from pipeline.config import Settings
    from pipeline.serving.videos import VideoRunner

    store, replica = replicas(place, tmp_path)
    record = add(store, b"\x00\x00\x00\x18ftypmp42 stopped half way")

    async def never_ready():
        await asyncio.Event().wait()  # The model services never answer: the worker is mid-video.

    runner = VideoRunner(store, never_ready, Settings())
    stop = threading.Event()

    async def stop_mid_video() -> tuple[str, bool, float]:
        working = asyncio.get_running_loop().create_task(runner.step(stop.is_set))
        while replica.get(record.id).state != "working":
            await asyncio.sleep(0.05)
        stop.set()
        started = time.monotonic()
        worked = await working
        return replica.get(record.id).state, worked, time.monotonic() - started

    state, worked, took = asyncio.run(stop_mid_video())
    assert (state, worked) == ("queued", True) and took < 3, (state, worked, took)
    with replica.claim() as taken:
        assert taken is not None and taken.id == record.id, "another worker takes it at once"
