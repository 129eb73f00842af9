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
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"bentoml serve not ready in {timeout_s} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it (no orphaned workers)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def grant(data_dir: Path, *roles: str, name: str = "tests") -> dict[str, str]:
    """Headers with a fresh API token holding `roles`, made in the service's data directory."""
    from pipeline.serving.access import AccessStore

    made = AccessStore.in_data_dir(data_dir).create_token(name, list(roles or ("admin",)), created_by="tests")
    return {"Authorization": f"Bearer {made.secret}"}
