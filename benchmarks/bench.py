"""`make bench`: the service against two floors, in one run, on unique images.

    .venv/bin/python benchmarks/bench.py --profile demo --backend onnx
    .venv/bin/python benchmarks/bench.py --profile thesis --backend onnx --dry-run --images 24

- model floor: the bare models' forward throughput (classify every image, segment the gore
  half), on inputs already resized, at batch 1 and batch 8;
- pipeline floor: the same kind of images through the whole pipeline in this process, no HTTP:
  read, decode, classify, segment, post-process, encode, store (the offline path, batches of 8);
- the served pipeline (`bentoml serve`) at 1, 4 and 16 clients, the batch endpoint (8 images per
  request, 1 and 2 clients), and the offline CLI (`gore-censor censor`, start-up included);
- the cost of the `uncertainty` option: the bare sampler (the Keras members' N inference-dropout
  passes, encoder once, batch 8) beside the model floor, and `POST /censor` with `uncertainty`
  and with `cascade` at 4 clients beside the plain 4-client row.

Every image is new bytes (the cache never answers); half are wound-like (synthetic). Prints a
Markdown table with every figure as a ratio to both floors, per-stage medians, and the peak
resident memory of every process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import numpy as np
from loadgen import ImageSource, Served, markdown_rss

STAGES = ("decode", "classify", "uncertainty", "segment", "censor")


def model_floor(classifier, segmenter, images: list[np.ndarray], gore: list[bool], batch: int) -> float:
    """Images per second of the bare models: classify all, segment the gore ones."""
    from pipeline.imaging.model_input import model_batch

    x_c = model_batch(images, classifier.input_shape[1])
    x_s = model_batch([im for im, g in zip(images, gore, strict=True) if g], segmenter.input_shape[1])
    for x, model in ((x_c, classifier), (x_s, segmenter)):  # Warm-up: graphs, memory pools.
        model.predict_on_batch(x[:batch])
    started = time.perf_counter()
    for x, model in ((x_c, classifier), (x_s, segmenter)):
        for i in range(0, len(x), batch):
            model.predict_on_batch(x[i : i + batch])
    return len(images) / (time.perf_counter() - started)


def dropout_floor(tag: str, images: list[np.ndarray], passes: int, batch: int = 8) -> float:
    """Images per second of the bare inference-dropout sampler: each member's encoder once, its head
    `passes` times (what the Classifier service runs for the `uncertainty` option)."""
    from pipeline.imaging.model_input import model_batch
    from pipeline.model_store.loading import stored_model
    from pipeline.uncertainty.served import DropoutSampling

    sampling = DropoutSampling(stored_model(tag))
    size = stored_model(tag).info.metadata["input_size"]
    x = model_batch(images, size)
    sampling.sample(x[:batch], passes)  # Warm-up, and the Keras copy loaded.
    started = time.perf_counter()
    for i in range(0, len(x), batch):
        sampling.sample(x[i : i + batch], passes)
    return len(images) / (time.perf_counter() - started)


def pipeline_floor(args, source: ImageSource, work: Path, threads: int) -> tuple[float, dict[str, float]]:
    """Images per second of the whole pipeline in this process (no HTTP), and its stage medians,
    with `threads` per model (0: the runtime's own choice)."""
    from pipeline.config import Settings
    from pipeline.serving.censorer import Upload
    from pipeline.serving.local_models import local_censorer

    settings = Settings(profile=args.profile, backend=args.backend, data_dir=work / f"floor-data-{threads}")
    censorer = local_censorer(settings, allow_untrained=True, threads=threads)
    warm = [Upload(source.next()[0], "warm.jpg") for _ in range(8)]
    asyncio.run(censorer.censor(warm, censorer.options(threshold=0.0)))
    uploads = [Upload(source.next()[0], f"{i}.jpg") for i in range(args.images)]
    started = time.perf_counter()
    results = asyncio.run(censorer.censor(uploads, censorer.options()))
    rate = len(uploads) / (time.perf_counter() - started)
    return rate, stage_medians([r.timings_ms for r in results if hasattr(r, "timings_ms")])


def stage_medians(timings: list[dict[str, float]]) -> dict[str, float]:
    return {s: statistics.median(t[s] for t in timings if s in t) for s in STAGES if any(s in t for t in timings)}


def multipart(files: list[bytes], field: str, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A form body built once, so the clients spend their CPU on sending, not on building."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (fields or {}).items()
    ]
    parts += [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{i}.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + b"\r\n"
        for i, data in enumerate(files)
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def served_run(
    served: Served,
    source: ImageSource,
    clients: int,
    requests: int,
    per_request: int = 1,
    fields: dict[str, str] | None = None,
):
    """Images per second, p50 latency and stage medians of `requests` posts by `clients` clients.

    The clients are coroutines on one event loop (aiohttp), the lightest load generator at hand:
    on a 2-core machine every cycle the clients take is a cycle the service does not get."""
    route, field = ("/censor", "image") if per_request == 1 else ("/censor/batch", "images")
    bodies = [multipart([source.next()[0] for _ in range(per_request)], field, fields) for _ in range(requests + 1)]
    latencies, timings, failures = [], [], 0

    async def run() -> float:
        nonlocal failures
        queue: asyncio.Queue = asyncio.Queue()
        for body in bodies[1:]:
            queue.put_nowait(body)
        async with aiohttp.ClientSession(headers=served.headers, timeout=aiohttp.ClientTimeout(total=600)) as http:

            async def send(body: bytes, kind: str) -> None:
                nonlocal failures
                started = time.perf_counter()
                async with http.post(served.url + route, data=body, headers={"Content-Type": kind}) as response:
                    answer = await response.json() if response.status == 200 else None
                latencies.append(time.perf_counter() - started)
                results = (
                    [answer] if per_request == 1 and answer else [i["result"] for i in answer or [] if i.get("result")]
                )
                failures += per_request - len(results)
                timings.extend(r["timings_ms"] for r in results)

            async def client() -> None:
                while not queue.empty():
                    await send(*queue.get_nowait())

            await send(*bodies[0])  # Warm-up.
            latencies.clear(), timings.clear()
            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            return time.perf_counter() - started

    wall = asyncio.run(run())
    return requests * per_request / wall, statistics.median(latencies), stage_medians(timings), failures


def cli_run(args, source: ImageSource, work: Path) -> float:
    folder = work / "cli-images"
    folder.mkdir()
    paths = []
    for i in range(args.images):
        path = folder / f"{i}.jpg"
        path.write_bytes(source.next()[0])
        paths.append(str(path))
    env = {
        **os.environ,
        "GORE_PROFILE": args.profile,
        "GORE_BACKEND": args.backend,
        "GORE_DATA_DIR": str(work / "cli-data"),
    }
    started = time.perf_counter()
    command = [str(Path(sys.executable).with_name("gore-censor")), "censor", *paths, "--allow-untrained"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--backend", default="onnx", choices=["keras", "onnx"])
    parser.add_argument("--dry-run", action="store_true", help="Untrained models (the thesis profile here).")
    parser.add_argument("--images", type=int, default=96, help="Images per measurement.")
    args = parser.parse_args()

    from pipeline.model_store.loading import load_for_serving, stored_model
    from pipeline.model_store.metadata import model_name

    work = Path(tempfile.mkdtemp(prefix="gore-bench-"))
    source = ImageSource()
    floor_images = [source.pools[i % 2][i // 2 % len(source.pools[0])] for i in range(args.images)]
    gore = [i % 2 == 0 for i in range(args.images)]
    models = [
        load_for_serving(
            stored_model(f"{model_name(role, args.profile)}:latest"), allow_untrained=True, backend=args.backend
        )[0]
        for role in ("classifier", "segmenter")
    ]
    floors = {batch: model_floor(*models, floor_images, gore, batch) for batch in (1, 8)}
    del models
    passes = 30
    sampler_rate = dropout_floor(f"{model_name('classifier', args.profile)}:latest", floor_images, passes)
    # Its best: one thread per model (as served) or the runtime's own choice (two models take turns here).
    pipeline_rate, pipeline_stages = max(pipeline_floor(args, source, work, threads) for threads in (1, 0))

    env = {
        "GORE_PROFILE": args.profile,
        "GORE_BACKEND": args.backend,
        "GORE_ALLOW_UNTRAINED": "1" if args.dry_run else "0",
    }
    served = Served.start(env, work / "data", work / "serve.log")
    peak: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            for name, mb in served.rss_mb().items():
                peak[name] = max(peak.get(name, 0.0), mb)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rows = []
    try:
        for clients in (1, 4, 16):
            rows.append(
                (
                    f"`POST /censor`, {clients} client{'s' if clients > 1 else ''}",
                    *served_run(served, source, clients, args.images),
                )
            )
        for clients in (1, 2):
            rows.append(
                (
                    f"`POST /censor/batch`, 8 per request, {clients} client{'s' if clients > 1 else ''}",
                    *served_run(served, source, clients, max(2, args.images // 8), per_request=8),
                )
            )
        for option in ("uncertainty", "cascade"):
            rows.append(
                (
                    f"`POST /censor` with `{option}` ({passes} passes), 4 clients",
                    *served_run(served, source, 4, max(8, args.images // 2), fields={option: "true"}),
                )
            )
    finally:
        stop.set()
        sampler.join()
        served.stop()
    cli_rate = cli_run(args, source, work)

    def ratios(rate: float) -> str:
        return f"{rate / floors[1]:.0%} | {rate / floors[8]:.0%} | {rate / pipeline_rate:.0%}"

    def stages(medians: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:,.0f}" for k, v in medians.items())

    print(
        f"`make bench`: profile `{args.profile}`{' (dry run, untrained weights)' if args.dry_run else ''}, "
        f"backend `{args.backend}`; {platform.machine()}, {os.cpu_count()} cores, no GPU; {args.images} unique "
        f"800 x 600 JPEGs per row, half wound-like (synthetic).\n"
    )
    columns = ["what", "images/s", "of model floor b1", "of model floor b8", "of pipeline floor", "p50 latency"]
    print("| " + " | ".join([*columns, "stage medians, ms"]) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| model floor, batch 1 | {floors[1]:.2f} | 100% | {floors[1] / floors[8]:.0%} | | | |")
    print(f"| model floor, batch 8 | {floors[8]:.2f} | {floors[8] / floors[1]:.0%} | 100% | | | |")
    print(
        f"| inference-dropout sampler alone, {passes} passes, batch 8 (Keras) | {sampler_rate:.2f} | "
        f"{sampler_rate / floors[1]:.0%} | {sampler_rate / floors[8]:.0%} | | | |"
    )
    print(
        f"| pipeline floor (in process, batches of 8) | {pipeline_rate:.2f} | {ratios(pipeline_rate)} | | "
        f"{stages(pipeline_stages)} |"
    )
    for name, rate, p50, medians, failures in rows:
        note = f" ({failures} failed)" if failures else ""
        print(f"| {name}{note} | {rate:.2f} | {ratios(rate)} | {p50 * 1000:,.0f} ms | {stages(medians)} |")
    print(f"| offline CLI, {args.images} files, start-up included | {cli_rate:.2f} | {ratios(cli_rate)} | | |")
    print()
    print(markdown_rss({"peak resident memory while served": peak}))


if __name__ == "__main__":
    main()
