"""`make faults`: kill every worker under load and fill the disk, then check the store.

    .venv/bin/python benchmarks/faults.py --clients 8

Starts `bentoml serve service:Censor` (demo models) with its data directory on a small tmpfs
(needs root; without it the full-disk phase is skipped and said so), runs clients posting unique
images throughout, and in turn: SIGKILLs the Classifier worker, the Segmenter worker and the
Censor worker, fills the data directory to the last byte, then frees it. A client that gets 503
(with Retry-After) or loses its connection sends the same bytes again, as a client should.

Prints, per phase: requests, answers by status (a 500 counts as a bare 500; 503 without
Retry-After too), lost connections, and how many retried requests succeeded. Then checks the
store: every record valid, every segmentation it names present, no temporary file left, and a
record for every image answered 200.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
from loadgen import ImageSource, Served, post

PHASES = [
    "warm-up",
    "Classifier worker killed",
    "Segmenter worker killed",
    "Censor worker killed",
    "disk full",
    "disk freed",
]


def check_store(data_dir: Path, answered: set[str]) -> dict[str, int]:
    from pipeline.stores.records import ImageRecord

    images = data_dir / "images"
    result = Counter()
    scratch = data_dir / "tmp"
    result["half-written files in tmp/ (swept at the next start)"] = (
        len(list(scratch.iterdir())) if scratch.is_dir() else 0
    )
    for folder in images.iterdir() if images.is_dir() else []:
        result["temporary files among the images"] += sum(1 for p in folder.iterdir() if p.name.endswith(".tmp"))
        record_file = folder / "record.json"
        if not record_file.is_file():
            continue
        try:
            record = ImageRecord.model_validate_json(record_file.read_bytes())
        except ValueError:
            result["invalid records"] += 1
            continue
        result["records"] += 1
        for analysis in record.analyses.values():
            if analysis.segmentation is not None and not (folder / analysis.segmentation.maps).is_file():
                result["missing segmentations"] += 1
    stored = {p.name for p in images.iterdir() if (p / "record.json").is_file()} if images.is_dir() else set()
    result["answered 200 without a record"] = len(answered - stored)
    return dict(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--phase", type=float, default=25, help="Seconds per phase.")
    parser.add_argument("--tmpfs-mb", type=int, default=1024)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gore-faults-"))
    data_dir = work / "data"
    data_dir.mkdir()
    tmpfs = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_mb}m", "tmpfs", str(data_dir)], capture_output=True
        ).returncode
        == 0
    )
    source = ImageSource()
    served = Served.start({"GORE_PROFILE": args.profile}, data_dir, work / "serve.log")
    phase = [PHASES[0]]
    outcomes: dict[str, Counter] = defaultdict(Counter)
    answered: set[str] = set()
    lock, stop = threading.Lock(), threading.Event()

    def record(what: str) -> None:
        with lock:
            outcomes[phase[0]][what] += 1

    def client() -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                data, _ = source.next()
                for attempt in range(20):  # The same bytes until they are answered.
                    try:
                        response = post(http, served.url, data, served.headers)
                    except httpx.HTTPError:
                        record("lost connection")
                        time.sleep(1)
                        continue
                    if response.status_code == 200:
                        record("200 after a retry" if attempt else "200")
                        with lock:
                            answered.add(response.json()["id"])
                        break
                    retry = response.headers.get("retry-after")
                    record(f"{response.status_code}" + (" with Retry-After" if retry else " (bare)"))
                    if not retry:
                        break
                    time.sleep(min(float(retry), 5))
                else:
                    record("gave up after 20 tries")

    def kill(service: str) -> None:
        for process in served.processes().get(service, []):
            os.kill(process.pid, signal.SIGKILL)

    filler = data_dir / "filler"
    try:
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for name in PHASES:
            phase[0] = name
            if name.endswith("worker killed"):
                kill(name.split()[0])
            elif name == "disk full" and tmpfs:
                with open(filler, "wb") as out:  # Every byte left, so the next write fails with ENOSPC.
                    try:
                        while True:
                            out.write(b"\0" * 2**20)
                    except OSError:
                        pass
            elif name == "disk freed":
                filler.unlink(missing_ok=True)
            time.sleep(args.phase)
        phase[0] = "drain"
        stop.set()
        for thread in threads:
            thread.join(600)
    finally:
        served.stop()
    filler.unlink(missing_ok=True)
    store = check_store(data_dir, answered)
    if tmpfs:
        subprocess.run(["umount", str(data_dir)], check=False)

    statuses = sorted({s for c in outcomes.values() for s in c})
    print(
        f"`make faults`, profile `{args.profile}`: {args.clients} clients, {args.phase:.0f} s per phase; "
        f"{platform.machine()}, {os.cpu_count()} cores; data directory on "
        f"{'a ' + str(args.tmpfs_mb) + ' MB tmpfs' if tmpfs else 'the disk (not root: no full-disk phase)'}.\n"
    )
    print("| phase | " + " | ".join(statuses) + " |")
    print("|---" * (len(statuses) + 1) + "|")
    for name in [*PHASES, "drain"]:
        print(f"| {name} | " + " | ".join(str(outcomes[name].get(s, 0)) for s in statuses) + " |")
    bare = sum(c.get("500 (bare)", 0) + c.get("500 with Retry-After", 0) for c in outcomes.values())
    print(f"\nBare 500s: {bare}. Store: " + ", ".join(f"{k} {v}" for k, v in sorted(store.items())))


if __name__ == "__main__":
    main()
