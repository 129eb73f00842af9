"""`make index-bench`: the gallery index at 100,000 images, page 1 and page 1,000.

    .venv/bin/python benchmarks/index_bench.py --records 100000 --page-size 48

Builds a synthetic index (records as the service writes them: random ids, first-seen times,
probabilities, a share reviewed) in a temporary folder through `GalleryIndex.put_many`, walks
the keyset pages to page 1,000 for each gallery filter, then times listing page 1 and page
1,000 (the median and the worst of `--repeats` runs, each a fresh SQLite connection, as the
web app makes one per request). Target: under 50 ms each. Also times a file-name search and
the near-duplicate lookup an image's page makes.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.stores.gallery import FILTERS, GalleryIndex
from pipeline.stores.records import Analysis, ImageRecord, Review

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def synthetic(count: int, seed: int = 0):
    rng = random.Random(seed)
    for n in range(count):
        probability = rng.random() ** 3 if rng.random() < 0.8 else 1 - rng.random() ** 3
        at = T0 + timedelta(seconds=n * 7 + rng.random())
        analysis = Analysis(
            classifier="gore-classifier-demo:bench",
            segmenter="gore-segmenter-demo:bench",
            classifier_threshold=0.5,
            segmenter_threshold=0.5,
            profile="demo",
            demo=True,
            dry_run=False,
            gore_probability=round(probability, 6),
            frame_probabilities=[round(probability, 6)],
            classified_at=at,
        )
        reviews = []
        if rng.random() < 0.3:
            verdict = "gore" if rng.random() < probability else "not_gore"
            reviews = [Review(verdict=verdict, by="web:bench", at=at + timedelta(hours=1))]
        yield ImageRecord(
            id=f"{rng.getrandbits(256):064x}",
            filename=f"case-{n // 1000:03d}/IMG_{n:06d}.jpg",
            format="JPEG",
            width=1024,
            height=768,
            frames=1,
            phash=f"{rng.getrandbits(64):016x}",
            first_seen=at,
            analyses={"gore-classifier-demo:bench|gore-segmenter-demo:bench": analysis},
            reviews=reviews,
        )


def timed(work, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=48)
    parser.add_argument("--page", type=int, default=1000, help="The far page to time.")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="index-bench-") as folder:
        index = GalleryIndex(Path(folder) / "index.db", threshold_for=lambda analysis: 0.5)
        started = time.perf_counter()
        batch = []
        for record in synthetic(args.records):
            batch.append(record)
            if len(batch) == 5000:
                index.put_many(batch)
                batch = []
        index.put_many(batch)
        build_s = time.perf_counter() - started
        print(f"{platform.processor() or platform.machine()}, SQLite index of {index.count():,} records")
        print(f"built in {build_s:.1f} s; page size {args.page_size}\n")
        print("| filter | images | far page | page 1 median (worst) ms | far page median (worst) ms |")
        print("| --- | --- | --- | --- | --- |")
        for kind, label in FILTERS.items():
            far_cursor, reached = None, 1
            while reached < args.page:  # Keyset: a far page is reached by walking, as a person paging does.
                older = index.page(kind, after=far_cursor, size=args.page_size).older
                if older is None:  # Fewer pages than asked for: time the last one.
                    break
                far_cursor, reached = older, reached + 1
            first = timed(lambda kind=kind: index.page(kind, size=args.page_size), args.repeats)
            far = timed(lambda kind=kind, c=far_cursor: index.page(kind, after=c, size=args.page_size), args.repeats)
            rows = len(index.page(kind, after=far_cursor, size=args.page_size).rows)
            matching = index.count(kind)
            far_label = f"{reached:,}" + ("" if reached == args.page else " (the last)")
            print(
                f"| {label} | {matching:,} | {far_label} ({rows} rows) | {first[0]:.2f} ({first[1]:.2f}) "
                f"| {far[0]:.2f} ({far[1]:.2f}) |"
            )
        search = timed(lambda: index.page("all", "IMG_0421", size=args.page_size), args.repeats)
        print(f"\nfile-name search 'IMG_0421' (page 1): {search[0]:.2f} ms median ({search[1]:.2f} worst)")
        rare = timed(lambda: index.page("all", "no-such-name", size=args.page_size), 5)
        print(f"file-name search with no match (scans every row): {rare[0]:.2f} ms median ({rare[1]:.2f} worst)")
        near = timed(lambda: index.near_by_phash("0123456789abcdef", 6), 5)
        print(f"near-duplicate lookup (every hash compared): {near[0]:.2f} ms median ({near[1]:.2f} worst)")


if __name__ == "__main__":
    main()
