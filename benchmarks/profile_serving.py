"""A profile's serving figures: start-up time, memory per service, seconds per image per model.

    .venv/bin/gore-censor models build --profile thesis --weights none    # once: untrained thesis models
    .venv/bin/python benchmarks/profile_serving.py --profile thesis --dry-run --images 10

Starts `bentoml serve service:Censor` on the profile's models from the model store, times it
to its first ready `/readyz`, posts synthetic images one at a time with `threshold=0` (so both
models run on every image) and prints a Markdown table: start-up, resident memory of every
service process, and the service's own per-stage medians. Speed does not depend on the
weights, so untrained models in a dry run give the real figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from serving import free_port, serve_command, stop_group  # noqa: E402

from pipeline.data.synthetic import generate  # noqa: E402


def service_of(process: psutil.Process) -> str:
    args = process.cmdline()
    if "--service-name" in args:
        return args[args.index("--service-name") + 1]
    return "bentoml serve (arbiter)"


def memory_mb(root: psutil.Process) -> dict[str, float]:
    rss: dict[str, float] = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            name = service_of(process)
            rss[name] = rss.get(name, 0.0) + process.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            continue
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="thesis")
    parser.add_argument("--dry-run", action="store_true", help="Serve untrained models (GORE_ALLOW_UNTRAINED=1).")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--size", type=int, default=640, help="Side of the square synthetic images.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gore-profile-bench-"))
    dataset = generate(work / "images", args.images + 1, seed=int(time.time()), size=args.size)
    files = [(work / "images" / s.image).read_bytes() for s in dataset.samples]
    from pipeline.stores.access import AccessStore

    made = AccessStore.in_data_dir(work / "data").create_token(
        "benchmark", ["ingest", "analyst"], created_by="benchmark"
    )
    headers = {"Authorization": f"Bearer {made.secret}"}
    env = {
        **os.environ,
        "GORE_PROFILE": args.profile,
        "GORE_DATA_DIR": str(work / "data"),
        "GORE_ALLOW_UNTRAINED": "1" if args.dry_run else "0",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(work / "serve.log", "w") as log:
        process = subprocess.Popen(
            serve_command(port), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while True:
            if process.poll() is not None:
                sys.exit(f"bentoml serve exited with {process.returncode}; see {work / 'serve.log'}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        startup_s = time.monotonic() - started
        idle = memory_mb(psutil.Process(process.pid))
        stages: dict[str, list[float]] = {"classify": [], "segment": [], "censor": [], "decode": []}
        latencies = []
        for index, data in enumerate(files):
            t0 = time.perf_counter()
            response = httpx.post(
                f"{url}/censor",
                files={"image": ("bench.png", data)},
                data={"threshold": "0"},
                headers=headers,
                timeout=600,
            )
            response.raise_for_status()
            if index == 0:
                continue  # Warm-up: first calls build TensorFlow graphs.
            latencies.append(time.perf_counter() - t0)
            for stage, values in stages.items():
                values.append(response.json()["timings_ms"][stage] / 1000)
        busy = memory_mb(psutil.Process(process.pid))
    finally:
        stop_group(process)

    print(
        f"Profile `{args.profile}`{' (dry run, untrained weights)' if args.dry_run else ''}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU; "
        f"{len(latencies)} images of {args.size} x {args.size} px, one at a time, threshold 0 (both models run).\n"
    )
    print("| figure | value |\n| --- | --- |")
    print(f"| start-up, `bentoml serve` to ready | {startup_s:.1f} s |")
    for name in sorted(busy):
        print(f"| resident memory, {name} | {idle.get(name, 0):,.0f} MB idle, {busy[name]:,.0f} MB after the images |")
    for stage, values in stages.items():
        print(f"| {stage}, median per image | {statistics.median(values):.3f} s |")
    print(f"| whole request, median | {statistics.median(latencies):.3f} s |")


if __name__ == "__main__":
    main()
