"""`make bombs`: a batch of bomb-sized images, and the memory the Censor process needs for it.

    .venv/bin/python benchmarks/bombs.py --count 64 --side 8944

Makes `count` single-colour PNGs of side x side pixels (8944 x 8944 is just under the default
80-megapixel limit; each file is a few hundred kilobytes), posts them as one
`POST /censor/batch` to a served demo profile, samples the resident memory of every process
every 0.2 s, and prints the answer's statuses, the time taken and each process' peak.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from loadgen import Served, markdown_rss
from PIL import Image


def bomb(side: int, index: int) -> bytes:
    colour = (40 + index % 50, 140, 60 + index // 50)  # Distinct bytes, the same clean green.
    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), colour, np.uint8)).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--side", type=int, default=8944)
    args = parser.parse_args()

    files = [("images", (f"bomb{i}.png", bomb(args.side, i), "image/png")) for i in range(args.count)]
    upload_mb = sum(len(f[1][1]) for f in files) / 2**20
    work = Path(tempfile.mkdtemp(prefix="gore-bombs-"))
    env = {"GORE_PROFILE": args.profile, "GORE_MAX_BATCH_IMAGES": str(args.count)}
    served = Served.start(env, work / "data", work / "serve.log")
    peak: dict[str, float] = {}
    idle = served.rss_mb()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            for name, mb in served.rss_mb().items():
                peak[name] = max(peak.get(name, 0.0), mb)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        started = time.monotonic()
        response = httpx.post(f"{served.url}/censor/batch", files=files, headers=served.headers, timeout=1800)
        took = time.monotonic() - started
    finally:
        stop.set()
        sampler.join()
        served.stop()
    statuses = Counter(item["status"] for item in response.json()) if response.status_code == 200 else {}
    print(
        f"`make bombs`, profile `{args.profile}`: {args.count} single-colour PNGs of {args.side} x {args.side} "
        f"({args.side**2:,} pixels each, {upload_mb:.1f} MB in all) in one POST /censor/batch; "
        f"{platform.machine()}, {os.cpu_count()} cores.\n"
    )
    print(f"Answer: HTTP {response.status_code}, per file {dict(statuses) or response.text[:200]}, in {took:.1f} s.\n")
    print(markdown_rss({"idle": idle, "peak during the batch": peak}))


if __name__ == "__main__":
    main()
