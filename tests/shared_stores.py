"""The shared mode's real components for the tests: a throwaway PostgreSQL cluster (Debian's
`initdb` and `pg_ctl`) and moto's standalone server, an S3-compatible HTTP server (no S3 server is
packaged for Debian or PyPI but emulators; the code under test speaks only the S3 API through
boto3, so it runs unchanged against AWS S3 or a self-hosted store).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from serving import free_port

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} was not found: apt-get install postgresql (.ci/run does)")
    return found


class PostgresCluster:
    """A cluster in a temporary folder, on a free loopback port, trusting local connections.
    PostgreSQL refuses to run as root, so as root it runs as Debian's `postgres` user."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gore-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.folder, "postgres")

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_user, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        data = str(self.folder / "data")
        self._run(_postgres_bin("initdb"), "-D", data, "-U", "gore", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c max_connections=300"
        self._run(_postgres_bin("pg_ctl"), "-D", data, "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, _postgres_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://gore@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = "t" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's server in its own process; yields its endpoint URL."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the server stops)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **S3_ENV},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"moto's server did not start: {log.read()[-2000:]!r}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def new_bucket() -> str:
    return f"s3://gore-{uuid.uuid4().hex[:12]}/images"


class StorePlace:
    """A test's stores: under `data_dir` (embedded), or in a fresh database and bucket (`shared`)."""

    def __init__(self, data_dir: Path, shared=None) -> None:
        self.data_dir, self.shared = Path(data_dir), shared
        self.mode = "shared" if shared else "embedded"

    def tables(self, file: str) -> Path | str:
        """What a TableStore opens: its SQLite file, or the shared database."""
        return self.shared.database_url if self.shared else self.data_dir / file

    def images(self, index=None):
        from pipeline.stores import open_images

        return open_images(self.data_dir, index, self.shared)

    def stores(self, threshold: float | None = None):
        from pipeline.stores import Stores

        return Stores.open(self.data_dir, threshold, self.shared)
