"""Latency and throughput of a running service: POST /censor with synthetic images.

    .venv/bin/python benchmarks/latency.py --url http://127.0.0.1:3000 --requests 40 --concurrency 4

Prints per-request latency percentiles, throughput, and the service's own per-stage timings.
Every image is new bytes (a fresh seed), so the store's cache never answers.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from pipeline.data.synthetic import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--size", type=int, default=640, help="Side of the square test images, in pixels.")
    parser.add_argument("--token", default=os.environ.get("GORE_TOKEN"), help="API token with the ingest role.")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"}

    folder = Path(tempfile.mkdtemp(prefix="gore-bench-"))
    dataset = generate(folder, args.requests, seed=int(time.time()), size=args.size)
    files = [(folder / s.image).read_bytes() for s in dataset.samples]

    def post(data: bytes) -> tuple[float, dict]:
        started = time.perf_counter()
        files = {"image": ("bench.png", io.BytesIO(data))}
        response = httpx.post(f"{args.url}/censor", files=files, headers=headers, timeout=600)
        response.raise_for_status()
        return time.perf_counter() - started, response.json()

    post(files[0])  # Warm-up: first calls build TensorFlow graphs.
    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(post, files[1:]))
    wall = time.perf_counter() - started
    latencies = np.array([r[0] for r in results]) * 1000
    gore = sum(r[1]["gore"] for r in results)
    print(f"{len(results)} requests, {args.concurrency} concurrent, {args.size}x{args.size} px, {gore} censored")
    p50, p95 = np.percentile(latencies, [50, 95])
    print(f"latency ms: p50 {p50:.0f}  p95 {p95:.0f}  max {latencies.max():.0f}")
    print(f"throughput: {len(results) / wall:.2f} images/s")
    for stage in ("decode", "classify", "segment", "censor"):
        values = [r[1]["timings_ms"][stage] for r in results if stage in r[1]["timings_ms"]]
        if values:
            print(f"service {stage} ms: median {statistics.median(values):.0f} over {len(values)}")


if __name__ == "__main__":
    main()
