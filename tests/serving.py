"""Start a real `bentoml serve service:Censor` in a subprocess for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BENTOML = str(Path(sys.executable).with_name("bentoml"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_command(port: int, target: str = "service:Censor") -> list[str]:
    return [BENTOML, "serve", target, "--host", "127.0.0.1", "-p", str(port)]


@contextmanager
def bentoml_server(
    env: dict[str, str], log_path: Path, timeout_s: float = 300, target: str = "service:Censor", cwd: Path = REPO
) -> Iterator[str]:
    """Yield the base URL once /readyz answers 200 (the service and its dependencies are up)."""
    with bentoml_process(env, log_path, timeout_s, target, cwd) as (url, _):
        yield url


@contextmanager
def bentoml_process(
    env: dict[str, str], log_path: Path, timeout_s: float = 300, target: str = "service:Censor", cwd: Path = REPO
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`bentoml_server`, yielding the `bentoml serve` process too (to watch its workers)."""

    def start() -> tuple[str, subprocess.Popen]:
        port = free_port()
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                serve_command(port, target),
                cwd=cwd,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return f"http://127.0.0.1:{port}", process

    url, process = start()
    retries = 2  # A free port can be taken by another server before ours binds it: then another port.
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                said = log_path.read_text(errors="replace")
                if retries and "address already in use" in said.lower():
                    retries -= 1
                    url, process = start()
                    continue
                raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{said[-4000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"bentoml serve not ready in {timeout_s} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield url, process
    finally:
        stop_group(process)


def service_processes(process: subprocess.Popen) -> list:
    """A `bentoml serve` and every process under it. Its workers run in sessions of their own, so
    signalling its process group alone would leave them running, orphaned."""
    import psutil

    try:
        root = psutil.Process(process.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_service(process: subprocess.Popen) -> None:
    """kill -9 of the whole service at once: the arbiter and every worker, as a machine losing power."""
    import psutil

    for each in service_processes(process):
        with suppress(psutil.NoSuchProcess):
            each.kill()
    process.wait()


def stop_group(process: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it and of its workers
    (no orphaned workers)."""
    import psutil

    everyone = service_processes(process)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for each in everyone:
        with suppress(psutil.NoSuchProcess):
            each.kill()
    process.wait()


def grant(data_dir: Path, *roles: str, name: str = "tests") -> dict[str, str]:
    """Headers with a fresh API token holding `roles`, made in the service's data directory."""
    from pipeline.stores.access import AccessStore

    made = AccessStore.in_data_dir(data_dir).create_token(name, list(roles or ("admin",)), created_by="tests")
    return {"Authorization": f"Bearer {made.secret}"}


def worker_rss_mb(process: subprocess.Popen, service: str = "Censor") -> float:
    """Resident memory of one service's worker processes under this `bentoml serve`, in MB."""
    import psutil

    total = 0.0
    for child in psutil.Process(process.pid).children(recursive=True):
        with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            args = child.cmdline()
            if "--service-name" in args and args[args.index("--service-name") + 1] == service:
                total += child.memory_info().rss / 2**20
    return total


class Watch:
    """While hostile requests run: `/livez` asked every 0.2 s (each answer's time kept) and the
    Censor worker's memory sampled, in a background thread."""

    def __init__(self, url: str, process: subprocess.Popen) -> None:
        import threading

        self.url, self.process = url, process
        self.baseline_mb = worker_rss_mb(process)
        self.slowest_s, self.failures, self.peak_mb = 0.0, [], self.baseline_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(0.2):
                started = time.monotonic()
                try:
                    answer = client.get(f"{self.url}/livez")
                    if answer.status_code != 200:
                        self.failures.append(f"/livez answered {answer.status_code}")
                except httpx.HTTPError as error:
                    self.failures.append(f"/livez: {type(error).__name__}")
                self.slowest_s = max(self.slowest_s, time.monotonic() - started)
                self.peak_mb = max(self.peak_mb, worker_rss_mb(self.process))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def web_app_in_process(settings):
    """The web app as service.py mounts it, wired from the same pieces, for in-process tests."""
    from pipeline.serving.entry import Entry
    from pipeline.web import web_app

    entry = Entry.from_settings(settings)
    return web_app(settings, entry.stores, entry.views, entry.annotation, entry.current_censorer)
