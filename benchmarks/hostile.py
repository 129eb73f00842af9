"""`make hostile`: every attack of README "Hostile input" against a served profile (demo by default),
one at a time: the answer, the time it took, and how much the Censor worker's memory grew while
it ran (sampled every 0.1 s); `/livez`'s slowest answer over the whole run.

    .venv/bin/python benchmarks/hostile.py [--profile demo] [--only video]

The attacks are tests/attacks.py's (the same `tests/test_hostile.py` asserts on).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from loadgen import Served
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from attacks import (  # noqa: E402
    PASSWORD,
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
)
from hostile_files import HOSTILE  # noqa: E402
from videos import Clip, write_clip, write_sound_only  # noqa: E402

from pipeline.stores.people import MAX_FAILURES, People


def gore_image(url: str, headers: dict[str, str], first_seed: int) -> dict:
    """A synthetic wound-like picture (the demo data's generator) the served models call gore."""
    from pipeline.data.synthetic import background, draw_wound

    for seed in range(first_seed, first_seed + 40):
        rng = np.random.default_rng(seed)
        pixels = background(rng, 480, {})
        draw_wound(rng, pixels)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "PNG")
        answer, _ = post_image(url, headers, f"wound{seed}.png", out.getvalue())
        if answer.json().get("gore") and answer.json().get("censored"):
            return answer.json()
    raise RuntimeError("no synthetic wound was called gore by these models")


class Sampler:
    """The Censor worker's resident memory, and /livez's answer time, in the background."""

    def __init__(self, served: Served) -> None:
        self.served, self.peak, self.slowest_livez = served, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def censor_mb(self) -> float:
        return self.served.rss_mb().get("Censor", 0.0)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.censor_mb())
            started = time.monotonic()
            try:
                httpx.get(f"{self.served.url}/livez", timeout=5)
            except httpx.HTTPError:
                self.slowest_livez = max(self.slowest_livez, 5.0)
            self.slowest_livez = max(self.slowest_livez, time.monotonic() - started)

    def measure(self, call: Callable[[], str]) -> tuple[str, float, float]:
        """The attack's answer, its seconds, and the memory the worker grew by while it ran."""
        before = self.censor_mb()
        self.peak = before
        started = time.monotonic()
        answer = call()
        took = time.monotonic() - started
        time.sleep(0.3)  # One more sample after it.
        return answer, took, max(0.0, self.peak - before)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


VIDEO_MAX_BYTES = 64 * 2**20


def hostile_videos(work: Path) -> dict[str, bytes]:
    """Videos made here with PyAV (tests/videos.py), then broken."""
    mp4 = write_clip(work / "clip.mp4", Clip(seconds=4, wound_from_s=1, wound_to_s=3)).read_bytes()
    mkv = write_clip(work / "clip.mkv", Clip(seconds=4, wound_from_s=1, wound_to_s=3)).read_bytes()
    return {
        "HLS playlist named .mp4": b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n",
        "MP4 cut before its index (moov at the end)": mp4[: len(mp4) // 2],
        "MKV cut at 60%": mkv[: len(mkv) * 6 // 10],
        "sound only, no video stream": write_sound_only(work / "sound.mp4").read_bytes(),
        "one frame": write_clip(work / "one.mp4", Clip(seconds=1 / 30, wound_from_s=0, wound_to_s=1)).read_bytes(),
    }


def send_video(url: str, sender: dict[str, str], analyst: dict[str, str], data: bytes) -> str:
    """Sent, then followed to its end: the upload's answer, and the video's."""
    answer = httpx.post(f"{url}/videos", content=data, headers=sender, timeout=60)
    if answer.status_code not in (200, 202):
        return f"{answer.status_code} at once: {answer.json()['error'][:70]}"
    video_id, ends = answer.json()["video"]["id"], time.monotonic() + 300
    while (record := httpx.get(f"{url}/videos/{video_id}", headers=analyst, timeout=30).json())["state"] not in (
        "done",
        "failed",
    ):
        if time.monotonic() > ends:
            return f"{answer.status_code}, still {record['state']} after 300 s"
        time.sleep(0.2)
    if record["state"] == "failed":
        return f"{answer.status_code}, then failed {record['status']}: {record['error'][:70]}"
    result = record["result"]
    stopped = f"; stopped {result['stopped'][:60]}" if result["stopped"] else ""
    return f"{answer.status_code}, then done: {result['frames']} frames{stopped}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--only", default="", help="Only the attacks whose name holds this (case-insensitive).")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gore-hostile-"))
    folders = salted_folders(work)
    people = People.in_data_dir(folders.data)
    for name in ("ana", "guessed", "locked", "wrong"):
        people.create_user(name, ["analyst", "ingest"], PASSWORD, "benchmark")
    env = serving_env(folders, args.profile) | {"GORE_VIDEO_MAX_BYTES": str(VIDEO_MAX_BYTES)}
    served = Served.start(env, folders.data, work / "serve.log")
    from pipeline.stores.access import AccessStore

    access = AccessStore.in_data_dir(folders.data)
    token = {
        role: {"Authorization": f"Bearer {access.create_token(role, [role], 'benchmark').secret}"}
        for role in ("ingest", "analyst", "annotator", "metrics")
    }
    url, sampler, rows = served.url, Sampler(served), []

    def row(attack: str, call: Callable[[], str]) -> None:
        if args.only.lower() not in attack.lower():
            return
        answer, took, grown = sampler.measure(call)
        rows.append((attack, answer, took, grown))
        print(f"{attack}: {answer} in {took:.2f} s, +{grown:.0f} MB", flush=True)

    try:
        for name, (make, _) in sorted(HOSTILE.items()):
            data = make()

            def image(name=name, data=data) -> str:
                answer, _ = post_image(url, token["ingest"], name, data)
                return f"{answer.status_code}: {answer.json()['error'][len(name) + 2 :][:70]}"

            row(f"`POST /censor` {name} ({len(data):,} bytes)", image)

        def job() -> str:
            items = run_job(url, token["ingest"], "drop")
            failed = sum(i["state"] == "failed" for i in items.values())
            secret = hashlib.sha256(folders.secret.read_bytes()).hexdigest()
            read = (folders.data / "images" / secret).exists()
            return f"job done: {failed} items failed saying why; the secret outside was read: {read}"

        row("jobs folder: a pipe, links to /dev/zero and out, a socket, growing images", job)

        def pool() -> str:
            answer = httpx.post(
                f"{url}/annotation/next", json={"pool": "pool", "k": 5}, headers=token["annotator"], timeout=300
            )
            return (
                f"{answer.status_code}: {len(answer.json()['items'])} ranked, {len(answer.json()['skipped'])} skipped"
            )

        row("`POST /annotation/next` over a pool with a pipe and links", pool)
        for fmt in ("via", "csv"):

            def labels(fmt=fmt) -> str:
                answer = post_labels(url, token["annotator"], outside_names(folders), fmt)
                reasons = {p["reason"] for p in answer.json()["problems"]}
                return f"{answer.status_code}: {answer.json()['taken']} taken; {len(reasons)} message for 6 names"

            row(f"{fmt.upper()} labels naming files outside the pool (3 exist, 3 do not)", labels)
        for declared in (True, False):

            def body(declared=declared) -> str:
                status, _, sent = raw_post(url, "/jobs/", token["ingest"], 300, declared)
                return f"{status} after {sent / 2**20:.1f} MB sent"

            row(f"300 MB JSON body to `/jobs/`, {'declared' if declared else 'chunked'}", body)

        def metrics() -> str:
            asked = [secrets.token_hex(32) for _ in range(50)]
            for image_id in asked:
                httpx.get(f"{url}/images/{image_id}", headers=token["analyst"], timeout=10)
            text = httpx.get(f"{url}/metrics", headers=token["metrics"], timeout=10).text
            leaked = sum(image_id in text for image_id in asked)
            anonymous = httpx.get(f"{url}/metrics", timeout=10).status_code
            return f"ids in /metrics: {leaked}; without a token: {anonymous}"

        row("50 requests for random image ids, then `/metrics`", metrics)

        def guesses() -> str:
            statuses = parallel_guesses(url, "guessed")
            right = sign_in_attempt(url, "guessed", PASSWORD, "127.0.2.1")[0]
            return f"{statuses.count(401)} x 401, then the right password: {right}"

        row("40 wrong passwords in parallel from 40 addresses, then the right one", guesses)

        def timing() -> str:
            for i in range(MAX_FAILURES + 1):
                sign_in_attempt(url, "locked", "wrong password!", f"127.0.3.{i + 1}")
            spent: dict[str, list[float]] = {"unknown": [], "wrong": [], "locked": []}
            for i in range(7):
                for kind, name in (("unknown", "nobody"), ("wrong", "wrong"), ("locked", "locked")):
                    spent[kind].append(sign_in_attempt(url, name, "not it at all", f"127.0.4.{i + 1}")[1])
                people.unlock(people.user_named("wrong").id)
            return ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms" for k, v in spent.items())

        row("sign-in: unknown name, wrong password, locked name (median of 7)", timing)

        def burst() -> str:
            statuses = [sign_in_attempt(url, "nobody", "guess number one", "127.0.5.1")[0] for _ in range(25)]
            return f"{statuses.count(401)} x 401, then {statuses.count(429)} x 429"

        row("25 sign-ins from one address", burst)

        def presses() -> str:
            image = gore_image(url, token["ingest"], 100)
            client, csrf = signed_in(url, "ana")
            boxes, refused = press_everywhere(client, csrf, image["id"], image["width"], image["height"])
            seen = share_seen(boxes, image["width"], image["height"])
            return f"{len(boxes)} areas ({seen:.1%} of the image), then {refused.status_code if refused else 'none'}"

        row("press-and-hold all over a censored image", presses)

        def margins() -> str:
            image = gore_image(url, token["ingest"], 200)["id"]
            for i in range(40):
                httpx.get(f"{url}/images/{image}/mask?margin={i * 0.19:.2f}", headers=token["analyst"], timeout=60)
            kept = len(list((folders.data / "images" / image).glob("mask-*.png")))
            return f"{kept} masks kept for 40 margins"

        row("40 margins asked of one image", margins)

        for name, data in hostile_videos(work).items():

            def video(name=name, data=data) -> str:
                return send_video(url, token["ingest"], token["analyst"], data)

            row(f"`POST /videos` {name} ({len(data):,} bytes)", video)

        def big_video() -> str:
            mp4_head = b"\x00\x00\x00\x18ftypisom"  # Looks like a video for its first 12 bytes.
            status, _, sent = raw_post(url, "/videos", token["ingest"], 300, False, start=mp4_head)
            return f"{status} after {sent / 2**20:.1f} MB sent (limit {VIDEO_MAX_BYTES / 2**20:.0f} MB)"

        row("300 MB video body to `/videos`, chunked", big_video)
    finally:
        sampler.stop()
        served.stop()
    print(f"\n{platform.machine()}, {args.profile} profile; /livez slowest: {sampler.slowest_livez * 1000:.0f} ms\n")
    print("| attack | answer | time | Censor worker memory |")
    print("| --- | --- | --- | --- |")
    for attack, answer, took, grown in rows:
        print(f"| {attack} | {answer} | {took:.2f} s | +{grown:.0f} MB |")


if __name__ == "__main__":
    main()
