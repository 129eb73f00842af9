"""`make load`: many clients posting unique images for minutes; errors, latency and memory.

    .venv/bin/python benchmarks/load.py --clients 16 --duration 300

Starts `bentoml serve service:Censor` on the profile's models from the model store (demo by
default) with a fresh data directory, then every client posts unique 800 x 600 JPEGs (half
wound-like, so half are segmented and censored) back to back. Prints a Markdown table: requests,
images/s, p50/p95/p99 latency, answers by status, and the resident memory of every process after
1,000 and 5,000 requests (it runs past --duration until 5,000 are done), at its peak and at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import httpx
from loadgen import ImageSource, Served, Tally, markdown_rss, post


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=300, help="Seconds of load.")
    parser.add_argument("--marks", default="1000,5000", help="Request counts at which memory is read.")
    parser.add_argument("--min-requests", type=int, default=5000, help="Go on past --duration until this many.")
    args = parser.parse_args()
    marks = [int(m) for m in args.marks.split(",")]

    work = Path(tempfile.mkdtemp(prefix="gore-load-"))
    source = ImageSource()
    served = Served.start({"GORE_PROFILE": args.profile}, work / "data", work / "serve.log")
    tally, readings, peak = Tally(), {}, {}
    stop = threading.Event()

    def client() -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                data, gore = source.next()
                started = time.perf_counter()
                try:
                    status: int | str = post(http, served.url, data, served.headers).status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__
                done = tally.add(status, time.perf_counter() - started, gore)
                for mark in marks:
                    if done == mark:
                        readings[f"after {mark:,} requests"] = served.rss_mb()

    def sample_memory() -> None:
        while not stop.wait(2.0):
            for name, mb in served.rss_mb().items():
                peak[name] = max(peak.get(name, 0.0), mb)

    try:
        readings["idle, before load"] = served.rss_mb()
        threads = [threading.Thread(target=client) for _ in range(args.clients)] + [
            threading.Thread(target=sample_memory)
        ]
        begun = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(args.duration)
        while sum(tally.statuses.values()) < args.min_requests and time.monotonic() - begun < 4 * args.duration:
            time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(600)
        wall = time.monotonic() - begun
        readings["peak"], readings["at the end"] = peak, served.rss_mb()
    finally:
        served.stop()

    total = sum(tally.statuses.values())
    ok = tally.statuses.get(200, 0)
    errors = {k: v for k, v in tally.statuses.items() if k != 200}
    print(
        f"`make load`, profile `{args.profile}`: {args.clients} clients for {wall:.0f} s; "
        f"{platform.machine()}, {os.cpu_count()} cores, no GPU; unique 800 x 600 JPEGs, half wound-like.\n"
    )
    print("| requests | answered 200 | images/s | p50 | p95 | p99 | errors by status |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    error_text = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items(), key=str)) or "none"
    print(
        f"| {total:,} | {ok:,} ({tally.gore:,} censored) | {ok / wall:.2f} | {tally.percentile(50) * 1000:,.0f} ms | "
        f"{tally.percentile(95) * 1000:,.0f} ms | {tally.percentile(99) * 1000:,.0f} ms | {error_text} |\n"
    )
    print(markdown_rss(readings))
    if all(f"after {m:,} requests" in readings for m in marks[:2]):
        first, last = (readings[f"after {m:,} requests"] for m in marks[:2])
        growth = {name: (last[name] - first[name]) / first[name] * 100 for name in first if name in last}
        print(
            "\nGrowth from "
            + f"{marks[0]:,} to {marks[1]:,} requests: "
            + ", ".join(f"{name} {g:+.1f}%" for name, g in sorted(growth.items()))
        )
    print(f"\n(start-up to ready: {served.started_s:.1f} s; server log: {work / 'serve.log'})")


if __name__ == "__main__":
    main()
