"""What the load and fault runs share: a served Censor with its own token and data directory,
unique images (so the cache never answers), clients that post them, and memory readings.

Images: 800 x 600 JPEGs made from the synthetic generator's wound and clean images, half each;
every request changes a few pixels of its copy, so its bytes (and id) are new.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from serving import free_port, serve_command, stop_group  # noqa: E402

from pipeline.data.synthetic import generate  # noqa: E402


class ImageSource:
    """Unique JPEGs, alternately wound-like and clean (thread-safe)."""

    def __init__(self, size: tuple[int, int] = (800, 600), pool: int = 40, seed: int = 7):
        folder = Path(tempfile.mkdtemp(prefix="gore-load-images-"))
        dataset = generate(folder, pool * 3, seed=seed, size=320)
        wounds = [s for s in dataset.samples if s.gore][:pool]
        clean = [s for s in dataset.samples if not s.gore][:pool]
        load = lambda s: np.asarray(Image.open(folder / s.image).convert("RGB").resize(size))  # noqa: E731
        self.pools = [[load(s) for s in wounds], [load(s) for s in clean]]
        self.counter = itertools.count()
        self.lock = threading.Lock()

    def next(self) -> tuple[bytes, bool]:
        with self.lock:
            n = next(self.counter)
        gore = n % 2 == 0
        pool = self.pools[0 if gore else 1]
        pixels = pool[(n // 2) % len(pool)].copy()
        pixels[0, :8] = [(n >> (8 * k)) & 255 for k in range(3)]  # Unique bytes, invisible change.
        pixels[1, 0] = (n % 251, 7, 11)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue(), gore


@dataclass
class Served:
    """`bentoml serve service:Censor` started here, with a fresh data directory and its own token."""

    process: subprocess.Popen
    url: str
    headers: dict[str, str]
    data_dir: Path
    started_s: float

    @classmethod
    def start(cls, env: dict[str, str], data_dir: Path, log: Path, timeout_s: float = 600) -> Served:
        from pipeline.stores.access import AccessStore

        tokens = AccessStore.open(data_dir, env.get("GORE_DATABASE_URL"))  # The shared database, in shared mode.
        made = tokens.create_token("load", ["ingest", "analyst"], created_by="benchmark")
        port = free_port()
        begun = time.monotonic()
        with open(log, "w") as out:
            process = subprocess.Popen(
                serve_command(port),
                cwd=REPO,
                env={**os.environ, **env, "GORE_DATA_DIR": str(data_dir)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {process.returncode}; see {log}")
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - begun > timeout_s:
                raise TimeoutError(f"not ready in {timeout_s} s; see {log}")
            time.sleep(0.5)
        return cls(process, url, {"Authorization": f"Bearer {made.secret}"}, data_dir, time.monotonic() - begun)

    def processes(self) -> dict[str, list[psutil.Process]]:
        """The serve tree by service: 'bentoml serve', 'Censor', 'Classifier', 'Segmenter'."""
        found: dict[str, list[psutil.Process]] = {}
        root = psutil.Process(self.process.pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                args = process.cmdline()
            except psutil.NoSuchProcess:
                continue
            name = args[args.index("--service-name") + 1] if "--service-name" in args else "bentoml serve"
            found.setdefault(name, []).append(process)
        return found

    def rss_mb(self) -> dict[str, float]:
        readings = {}
        for name, processes in self.processes().items():
            total = 0.0
            for process in processes:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += process.memory_info().rss / 2**20
            readings[name] = total
        return readings

    def stop(self) -> None:
        stop_group(self.process)


@dataclass
class Tally:
    """Every request's outcome, in the order they finished (thread-safe)."""

    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    gore: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int | str, seconds: float, gore: bool) -> int:
        with self.lock:
            self.statuses[status] += 1
            if status == 200:
                self.latencies_s.append(seconds)
                self.gore += gore
            return sum(self.statuses.values())

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else float("nan")


def post(client: httpx.Client, url: str, data: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post(f"{url}/censor", files={"image": ("load.jpg", data, "image/jpeg")}, headers=headers, timeout=300)


def markdown_rss(readings: dict[str, dict[str, float]]) -> str:
    """One row per process; one column per named reading ('after 1,000 requests', 'peak', ...)."""
    columns = list(readings)
    names = sorted({name for reading in readings.values() for name in reading})
    lines = ["| process | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in names:
        lines.append(
            f"| {name} | " + " | ".join(f"{readings[c].get(name, float('nan')):,.0f} MB" for c in columns) + " |"
        )
    return "\n".join(lines)


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")
