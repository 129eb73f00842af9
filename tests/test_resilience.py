"""Staying up: model calls retried through connection faults, 503 with Retry-After past a
deadline, a bound on work in flight, a full disk as 507 with nothing partial left behind."""

from __future__ import annotations

import asyncio
import errno
import os

import aiohttp
import pytest

from pipeline.errors import StoreFull, Unavailable
from pipeline.serving import resilience
from pipeline.serving.resilience import Admission, with_retries
from pipeline.stores.images import FileSystemStore

ID = "cd" * 32


def flaky(failures: list[BaseException], answer="ok"):
    calls = []

    async def call():
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return answer

    return call, calls


def test_connection_faults_are_retried_until_the_call_succeeds():
    faults = [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientConnectionResetError(),
        RuntimeError("Connector is closed"),
    ]
    call, calls = flaky(faults)
    assert asyncio.run(with_retries(call, stage="classify", deadline_s=10)) == "ok" and len(calls) == 4


def test_a_model_service_down_past_the_deadline_is_a_503_naming_the_stage():
    async def down():
        raise aiohttp.ClientOSError(errno.ECONNREFUSED, "Connection refused")

    with pytest.raises(Unavailable, match="segment: the segment model service did not answer") as raised:
        asyncio.run(with_retries(down, stage="segment", deadline_s=0.5))
    assert int(raised.value.status) == 503 and raised.value.headers() == {"Retry-After": "10"}


def test_errors_that_are_not_connection_faults_are_not_retried():
    call, calls = flaky([ValueError("bad input")])
    with pytest.raises(ValueError):
        asyncio.run(with_retries(call, stage="classify", deadline_s=10))
    assert len(calls) == 1


def test_a_draining_process_stops_waiting_for_model_services(monkeypatch):
    draining = resilience.Draining()
    draining.event.set()
    monkeypatch.setattr(resilience, "DRAINING", draining)
    call, calls = flaky([aiohttp.ServerDisconnectedError()] * 5)
    with pytest.raises(Unavailable, match="shutting down"):
        asyncio.run(with_retries(call, stage="classify", deadline_s=60))
    assert len(calls) == 1


def test_admission_bounds_images_and_pixels_in_flight():
    async def scenario():
        gate = Admission(max_images=2, max_pixels=1000, wait_s=0.2)
        await gate.acquire(1, 600)
        await gate.acquire(1, 300)
        with pytest.raises(Unavailable, match="busy: 2 images"):
            await gate.acquire(1, 10)  # A third image: over the image bound.
        await gate.release(1, 300)
        with pytest.raises(Unavailable):
            await gate.acquire(1, 500)  # 600 + 500 pixels: over the pixel bound.
        waiting = asyncio.create_task(gate.acquire(1, 500))
        await asyncio.sleep(0.05)
        await gate.release(1, 600)  # Room: the waiting request gets in.
        await waiting
        assert (gate.images, gate.pixels) == (1, 500)
        await gate.release(1, 500)
        await gate.acquire(1, 10**9)  # Alone, one image of any size is admitted.

    asyncio.run(scenario())


def test_a_full_disk_is_507_and_leaves_nothing_partial(tmp_path, monkeypatch):
    store = FileSystemStore(tmp_path)
    store.put_original(ID, ".png", b"first")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(StoreFull, match="the data directory is full") as raised:
        store.put_rendering(ID, "censored-x.png", b"png bytes")
    assert int(raised.value.status) == 507 and raised.value.headers()["Retry-After"] == "60"
    assert sorted(p.name for p in (tmp_path / "images" / ID).iterdir() if not p.name.startswith(".lock")) == [
        "original.png"
    ], "no temporary file is left"
    assert list(store.scratch.iterdir()) == []
    monkeypatch.undo()
    store.put_rendering(ID, "censored-x.png", b"png bytes")  # Room again: the store works again.
    assert store.rendering(ID, "censored-x.png") == b"png bytes"
