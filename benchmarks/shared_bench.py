"""`make bench`'s shared-mode row: the service over PostgreSQL and an S3-compatible store against
the same service over its embedded stores (SQLite and a folder), in one run, on unique images.

    .venv/bin/python benchmarks/shared_bench.py --profile demo --images 96

- store floor: what one request does to the stores (store the original, merge the record, store
  the censored copy, read the record back), timed alone in each mode: the milliseconds the
  shared stores add to a request;
- served: `POST /censor` at 16 clients through one Censor replica in each mode (images/s, p50).

The shared mode runs here on a throwaway PostgreSQL cluster (Debian's) and moto's standalone
server (an S3 emulator, in-memory), both on this machine: a real deployment's database and bucket
are across a network, which adds its round trips to the store floor's figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import served_run
from index_bench import synthetic
from loadgen import ImageSource, Served

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # The tests' real PostgreSQL and S3 server.
from shared_stores import S3_ENV, new_bucket, postgres_cluster, s3_server  # noqa: E402


def store_floors(stores: dict, count: int, source: ImageSource) -> dict[str, float]:
    """Median milliseconds of one request's store work in each mode, the modes taking turns image
    by image (so whatever else the machine does weighs on both alike), on the index benchmark's
    synthetic records (each its own id)."""
    took: dict[str, list[float]] = {mode: [] for mode in stores}
    records = synthetic(count * len(stores))
    for _ in range(count):
        for mode, store in stores.items():
            record, data = next(records), source.next()[0]
            started = time.perf_counter()
            store.put_original(record.id, ".jpg", data)
            store.merge(record)
            store.put_rendering(record.id, "censored-bench.png", data[:20000])
            store.record(record.id)
            took[mode].append((time.perf_counter() - started) * 1000)
    return {mode: statistics.median(values) for mode, values in took.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--images", type=int, default=96, help="Images per measurement.")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    from pipeline.stores import Shared, Stores

    work = Path(tempfile.mkdtemp(prefix="gore-shared-bench-"))
    source = ImageSource()
    os.environ.update(S3_ENV)
    with postgres_cluster() as postgres, s3_server() as endpoint:
        shared = Shared(postgres.new_database(), new_bucket(), endpoint)
        stores = {
            "embedded": Stores.open(work / "floor-embedded").images,
            "shared": Stores.open(work / "floor-shared", shared=shared).images,
        }
        floors = store_floors(stores, max(200, args.images), source)
        served = {}
        for mode in ("embedded", "shared"):
            env = {"GORE_PROFILE": args.profile}
            if mode == "shared":
                shared = Shared(postgres.new_database(), new_bucket(), endpoint)
                env |= {
                    "GORE_DATABASE_URL": shared.database_url,
                    "GORE_OBJECT_STORE": shared.object_store,
                    "GORE_S3_ENDPOINT_URL": endpoint,
                }
            service = Served.start(env, work / f"data-{mode}", work / f"serve-{mode}.log")
            try:
                rate, p50, _, failures = served_run(service, source, args.clients, args.images)
            finally:
                service.stop()
            served[mode] = (rate, p50 * 1000, failures)

    print(f"\n## Shared mode against embedded ({platform.node()}, {os.cpu_count()} cores, profile {args.profile})\n")
    print(f"{args.images} unique images per row; PostgreSQL and moto's S3 server on this machine.\n")
    print("| mode | store work per request (median ms) | images/s, 16 clients | p50 ms | failures |")
    print("|---|---|---|---|---|")
    for mode in ("embedded", "shared"):
        rate, p50, failures = served[mode]
        print(f"| {mode} | {floors[mode]:.1f} | {rate:.1f} | {p50:.0f} | {failures} |")
    extra = floors["shared"] - floors["embedded"]
    ratio = served["shared"][0] / served["embedded"][0]
    print(
        f"\nThe shared stores add {extra:.1f} ms of store work per request; served throughput {ratio:.0%} of embedded."
    )


if __name__ == "__main__":
    main()
