"""`make compose-test`: the compose files run for real, on this machine's Docker engine.

    .venv/bin/python docker/compose_test.py [--no-embedded] [--no-build] [--job-files N]

1. engine: `docker info`; when it fails and we are root, dockerd is started in the background.
2. images: `make compose-images` (the base image from Debian's packages when missing, then the
   service, PostgreSQL, S3 emulator and proxy images; BuildKit layers make a second run quick).
3. embedded mode (docker/compose.yaml): `up --wait`, one POST /censor, `down -v`.
4. shared mode (docker/compose.shared.yaml, two Censor replicas behind one port): `up --wait`;
   the first start's admin token from the replicas' logs; a token made through the proxy; images
   posted through the proxy and straight to replica A (the demo recipe's synthetic images, made
   here), every record and censored copy read back through BOTH replicas; a collection job over
   a shared read-only folder, replica B restarted while it runs; then every file of the job done
   or failed exactly once, no file twice, every record readable; `down -v`, always, also on
   failure.
It prints how long each phase took and the total. Only loopback ports are published.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
LOGS = REPO / "build" / "compose-test"
TOKEN_LINE = "FIRST START: admin token (shown once, store it now): "
TIMINGS: list[tuple[str, float]] = []


class Failed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


@contextmanager
def phase(name: str):
    print(f"\n== {name}", flush=True)
    start = time.monotonic()
    try:
        yield
    finally:
        took = time.monotonic() - start
        TIMINGS.append((name, took))
        print(f"   {name}: {took:.1f} s", flush=True)


def run(*args: str, log: Path | None = None, timeout: float = 900, env: dict | None = None, check_rc=True):
    """A command; its output into `log` (and its tail on failure), or returned."""
    environment = {**os.environ, **(env or {})}
    if log is None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=environment, cwd=REPO)
        output = done.stdout + done.stderr
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            out.write(f"\n$ {' '.join(args)}\n")
            out.flush()
            done = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=environment, cwd=REPO
            )
        output = log.read_text()[-4000:]
    if check_rc and done.returncode != 0:
        raise Failed(f"{' '.join(args)} exited {done.returncode}:\n{output[-4000:]}")
    return output


# ---- the engine ----


def engine() -> None:
    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        print("   the Docker engine answers")
        return
    check(os.geteuid() == 0, "the Docker engine does not answer and only root may start it here (dockerd)")
    check(shutil.which("dockerd") is not None, "no dockerd: apt-get install docker.io")
    LOGS.mkdir(parents=True, exist_ok=True)
    log = (LOGS / "dockerd.log").open("a")
    # Its own session: it outlives this script, as an engine does.
    subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        check(time.monotonic() < deadline, f"dockerd did not answer within 60 s: see {LOGS / 'dockerd.log'}")
        time.sleep(1)
    print(f"   started dockerd in the background (log: {LOGS / 'dockerd.log'})")


def compose_v2() -> None:
    done = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True)
    check(
        done.returncode == 0,
        "`docker compose` (Compose v2: up --wait) is missing; .ci/run installs it (docs/deploy.md)",
    )
    print(f"   docker compose {done.stdout.strip()}")


# ---- compose ----


class Stack:
    def __init__(self, project: str, file: str, env: dict[str, str], env_file: str | None = None):
        self.args = ["docker", "compose", "-p", project, "-f", f"docker/{file}"]
        if env_file:
            self.args += ["--env-file", f"docker/{env_file}"]
        self.env = env
        self.log = LOGS / f"{project}.log"

    def __call__(self, *args: str, timeout: float = 600, check_rc=True) -> str:
        return run(*self.args, *args, env=self.env, timeout=timeout, check_rc=check_rc)

    def up(self) -> None:
        self("up", "--wait", "--wait-timeout", "480", "--no-build", timeout=540)

    def logs(self, *services: str) -> str:
        return self("logs", "--no-color", "--no-log-prefix", *services, check_rc=False)

    def down(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text(self("logs", "--no-color", "--timestamps", check_rc=False))
        self("down", "-v", "--remove-orphans", "--timeout", "30", timeout=300, check_rc=False)
        print(f"   down -v (the services' logs: {self.log})")

    def admin_token(self, *services: str) -> str:
        """The first start prints one admin token, once, in whichever replica made the tables."""
        found = [
            line.split(TOKEN_LINE, 1)[1].split()[0] for line in self.logs(*services).splitlines() if TOKEN_LINE in line
        ]
        check(len(found) == 1, f"expected one first-start admin token in the logs of {services}, found {len(found)}")
        return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- images to send ----


class Samples:
    """The demo recipe's SYNTHETIC images (pipeline.data.synthetic: about a third carry wound-like
    regions, which the demo models censor), made once; handed out wounds first."""

    def __init__(self, count: int):
        from pipeline.data.synthetic import generate

        self.folder = Path(tempfile.mkdtemp(prefix="gore-compose-samples-"))
        dataset = generate(self.folder, count, seed=19, size=256)
        seen: set[bytes] = set()
        self.paths = []  # Wounds first; no two alike (a retina negative may repeat).
        for sample in sorted(dataset.samples, key=lambda s: not s.gore):
            if (content := (self.folder / sample.image).read_bytes()) not in seen:
                seen.add(content)
                self.paths.append(self.folder / sample.image)

    def take(self, count: int) -> list[Path]:
        taken, self.paths = self.paths[:count], self.paths[count:]
        check(len(taken) == count, "not enough sample images")
        return taken

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# ---- the checks ----


def embedded(args, samples: Samples) -> None:
    port = free_port()
    stack = Stack("gore-compose-test-embedded", "compose.yaml", {"GORE_PORT": f"127.0.0.1:{port}"})
    try:
        with phase("embedded: up --wait"):
            stack.up()
        with phase("embedded: POST /censor"):
            token = stack.admin_token("censor")
            url = f"http://127.0.0.1:{port}"
            answer = httpx.post(
                f"{url}/censor",
                files={"image": ("a.png", samples.take(1)[0].read_bytes())},
                headers=bearer(token),
                timeout=120,
            )
            check(answer.status_code == 200, f"POST /censor: {answer.status_code} {answer.text[:500]}")
            record = httpx.get(f"{url}/images/{answer.json()['id']}", headers=bearer(token), timeout=60)
            check(record.status_code == 200, f"GET /images/id: {record.status_code} {record.text[:500]}")
            print(f"   censored {answer.json()['id'][:12]}: gore_probability {answer.json()['gore_probability']}")
    finally:
        with phase("embedded: down -v"):
            stack.down()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def shared(args, samples: Samples) -> None:
    ports = {name: free_port() for name in ("proxy", "a", "b")}
    jobs_dir = Path(tempfile.mkdtemp(prefix="gore-compose-jobs-"))
    env = {
        "GORE_PORT": f"127.0.0.1:{ports['proxy']}",
        "GORE_CENSOR_A_PORT": str(ports["a"]),
        "GORE_CENSOR_B_PORT": str(ports["b"]),
        "GORE_JOBS_DIR": str(jobs_dir),
    }
    stack = Stack("gore-compose-test-shared", "compose.shared.yaml", env, env_file="compose.shared.test.env")
    proxy, replica_a, replica_b = (f"http://127.0.0.1:{ports[n]}" for n in ("proxy", "a", "b"))
    try:
        with phase("shared: the job's folder"):
            to_post = samples.take(12)
            files = write_job_folder(jobs_dir / "batch", samples.take(args.job_files))
        with phase("shared: up --wait (PostgreSQL, S3 emulator, models, 2 replicas, proxy)"):
            stack.up()
        with phase("shared: tokens"):
            admin = stack.admin_token("censor-a", "censor-b")
            made = httpx.post(
                f"{proxy}/admin/tokens",
                json={"name": "compose-test", "roles": ["ingest", "analyst"]},
                headers=bearer(admin),
                timeout=60,
            )
            check(made.status_code in (200, 201), f"POST /admin/tokens: {made.status_code} {made.text[:500]}")
            token = made.json()["secret"]
            for name, url in (("A", replica_a), ("B", replica_b)):  # Made once, known to both.
                seen = httpx.get(f"{url}/jobs", headers=bearer(token), timeout=60)
                check(seen.status_code == 200, f"the new token on replica {name}: {seen.status_code} {seen.text[:300]}")
        with phase("shared: images through the proxy, read back through both replicas"):
            posted = post_images(proxy, replica_a, token, to_post)
            read_back(posted, {"A": replica_a, "B": replica_b, "proxy": proxy}, token)
        with phase("shared: a collection job, replica B restarted while it runs"):
            job = run_job_with_restart(stack, proxy, token, args.kill)
        with phase("shared: the job's files, each done or failed exactly once"):
            check_job(job, files, {"A": replica_a, "B": replica_b}, token)
    except Exception:
        for service in ("censor-a", "censor-b", "proxy", "postgres"):
            print(f"\n---- {service} (last lines) ----\n" + "\n".join(stack.logs(service).splitlines()[-25:]))
        raise
    finally:
        if args.keep:
            print(f"   left running (--keep): {' '.join(stack.args)} down -v; rm -r {jobs_dir}")
        else:
            with phase("shared: down -v"):
                stack.down()
                shutil.rmtree(jobs_dir, ignore_errors=True)


def write_job_folder(folder: Path, images: list[Path]) -> dict[str, bool]:
    """The images and two files that are not images; {file name: is an image}."""
    folder.mkdir(parents=True)
    files = {}
    for i, image in enumerate(images):
        shutil.copyfile(image, folder / f"img{i:04d}.png")
        files[f"img{i:04d}.png"] = True
    (folder / "notes.txt.jpg").write_bytes(b"this is not an image")
    (folder / "truncated.png").write_bytes(images[0].read_bytes()[:200])
    files.update({"notes.txt.jpg": False, "truncated.png": False})
    for path in (folder.parent, folder, *folder.iterdir()):  # Readable by the service's user (uid 10001).
        path.chmod(0o755 if path.is_dir() else 0o644)
    print(f"   {len(images)} images and 2 broken files in {folder}")
    return files


def post_images(proxy: str, replica_a: str, token: str, images: list[Path]) -> dict[str, dict]:
    """8 one by one (6 through the proxy, 2 straight to replica A), 4 in a batch through the proxy."""
    posted = {}
    with httpx.Client(headers=bearer(token), timeout=120) as client:
        for i, (url, image) in enumerate(zip([proxy] * 6 + [replica_a] * 2, images[:8], strict=True)):
            answer = client.post(f"{url}/censor", files={"image": (f"p{i}.png", image.read_bytes())})
            check(answer.status_code == 200, f"POST {url}/censor: {answer.status_code} {answer.text[:500]}")
            posted[answer.json()["id"]] = answer.json()
        batch = client.post(
            f"{proxy}/censor/batch", files=[("images", (f"b{i}.png", p.read_bytes())) for i, p in enumerate(images[8:])]
        )
        check(batch.status_code == 200, f"POST /censor/batch: {batch.status_code} {batch.text[:500]}")
        for entry in batch.json():
            check(entry["status"] == 200, f"a batch entry failed: {entry}")
            posted[entry["result"]["id"]] = entry["result"]
    gore = sum(1 for r in posted.values() if r.get("censored"))
    print(f"   {len(posted)} images posted (6 and a batch of 4 through the proxy, 2 to replica A); {gore} censored")
    check(gore > 0, "no posted image was censored: the censored copies in the bucket went untested")
    return posted


def read_back(posted: dict[str, dict], urls: dict[str, str], token: str) -> None:
    with httpx.Client(headers=bearer(token), timeout=120) as client:
        for image_id, record in posted.items():
            for name, url in urls.items():
                answer = client.get(f"{url}/images/{image_id}")
                check(answer.status_code == 200, f"GET /images/{image_id} on {name}: {answer.status_code}")
                check(answer.json()["id"] == image_id, f"{name} answered another record")
                if record.get("censored"):  # The copy made on one replica (or on demand), read on the other.
                    copy = client.get(f"{url}{record['censored']}")
                    check(
                        copy.status_code == 200 and copy.content.startswith(b"\x89PNG"),
                        f"GET {record['censored']} on {name}: {copy.status_code}",
                    )
    print(f"   every record read through replica A, replica B and the proxy ({len(posted)} x 3)")


def run_job_with_restart(stack: Stack, proxy: str, token: str, kill: bool) -> dict:
    with httpx.Client(headers=bearer(token), timeout=60) as client:
        answer = client.post(f"{proxy}/jobs", json={"folder": "batch"})
        check(answer.status_code == 202, f"POST /jobs: {answer.status_code} {answer.text[:500]}")
        job_id = answer.json()["id"]
        deadline = time.monotonic() + 300
        while True:  # Some work done, most of it still to do: restart replica B now.
            status = client.get(f"{proxy}/jobs/{job_id}").json()
            if status["done"] + status["failed"] >= max(2, status["total"] // 10):
                break
            check(time.monotonic() < deadline, f"the job did not start within 300 s: {status}")
            time.sleep(0.3)
        check(status["remaining"] > 0, f"the job finished before the restart (more files: --job-files): {status}")
        how = "killing (SIGKILL) and starting" if kill else "restarting"
        print(f"   {how} censor-b at {status['done']} done, {status['failed']} failed of {status['total']}")
        began = time.monotonic()
        if kill:  # Its claimed items come back when their lease runs out (GORE_LEASE_S).
            stack("kill", "-s", "SIGKILL", "censor-b", timeout=60)
        else:
            stack("restart", "censor-b", timeout=180)

        def remaining() -> int:
            return client.get(f"{proxy}/jobs/{job_id}").json()["remaining"]

        print(f"   after {time.monotonic() - began:.1f} s: {remaining()} remaining")
        stack("up", "--wait", "--wait-timeout", "180", "--no-build", "censor-b", timeout=240)  # healthy again
        print(f"   censor-b healthy again after {time.monotonic() - began:.1f} s: {remaining()} remaining")
        deadline = time.monotonic() + 600
        while status["state"] not in ("done", "cancelled", "failed"):
            check(time.monotonic() < deadline, f"the job did not finish within 600 s: {status}")
            time.sleep(1)
            answer = client.get(f"{proxy}/jobs/{job_id}")
            check(answer.status_code == 200, f"GET /jobs/{job_id}: {answer.status_code} {answer.text[:300]}")
            status = answer.json()
        check(status["state"] == "done", f"the job ended {status['state']}: {status}")
        print(
            f"   job {job_id}: {status['done']} done, {status['failed']} failed of {status['total']}, "
            f"{status['already_analysed']} already analysed"
        )
        return status


def check_job(job: dict, files: dict[str, bool], urls: dict[str, str], token: str) -> None:
    items, after = [], -1
    with httpx.Client(headers=bearer(token), timeout=120) as client:
        while True:
            page = client.get(f"{urls['A']}/jobs/{job['id']}/items", params={"after": after, "limit": 1000})
            check(page.status_code == 200, f"GET /jobs/id/items: {page.status_code} {page.text[:300]}")
            if not page.json():
                break
            items += page.json()
            after = page.json()[-1]["seq"]
        paths = [item["path"].rsplit("/", 1)[-1] for item in items]
        check(len(paths) == len(set(paths)), f"a file listed twice: {sorted(p for p in paths if paths.count(p) > 1)}")
        check(set(paths) == set(files), f"the job's files differ: {sorted(set(paths) ^ set(files))}")
        check(job["total"] == len(files), f"total {job['total']} for {len(files)} files")
        for item in items:
            name = item["path"].rsplit("/", 1)[-1]
            if files[name]:
                check(item["state"] == "done" and item["image_id"], f"an image not done: {item}")
            else:
                check(
                    item["state"] == "failed" and item["status"] and item["error"], f"a broken file not failed: {item}"
                )
        ids = {item["image_id"] for item in items if item["image_id"]}
        check(len(ids) == sum(files.values()), f"{len(ids)} distinct records for {sum(files.values())} images")
        for image_id in ids:
            for name, url in urls.items():
                answer = client.get(f"{url}/images/{image_id}")
                check(answer.status_code == 200, f"job record {image_id} on replica {name}: {answer.status_code}")
    workers = sorted({item.get("worked_by") or "?" for item in items})
    print(f"   {len(items)} items, each once; {len(ids)} records read on both replicas; worked by {', '.join(workers)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-embedded", action="store_true", help="skip the embedded compose.yaml run")
    parser.add_argument("--no-shared", action="store_true", help="skip the shared-mode run")
    parser.add_argument("--no-build", action="store_true", help="use the images as they are")
    parser.add_argument("--keep", action="store_true", help="leave the shared-mode stack running (no down -v)")
    parser.add_argument("--kill", action="store_true", help="SIGKILL replica B mid-job instead of a restart")
    parser.add_argument("--job-files", type=int, default=120, help="images in the collection job (default 120)")
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    ok, samples = False, None
    try:
        with phase("engine"):
            engine()
            compose_v2()
        if not args.no_build:
            with phase("images (make compose-images)"):
                (LOGS / "build.log").unlink(missing_ok=True)
                run("make", "--no-print-directory", "compose-images", log=LOGS / "build.log", timeout=1800)
                print(f"   build log: {LOGS / 'build.log'}")
        with phase("sample images (the demo recipe's synthetic ones)"):
            samples = Samples(args.job_files + 30)
        if not args.no_embedded:
            embedded(args, samples)
        if not args.no_shared:
            shared(args, samples)
        ok = True
    except Failed as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
    except Exception:
        traceback.print_exc()
    finally:
        if samples is not None:
            samples.cleanup()
        print("\nphase timings:")
        for name, took in TIMINGS:
            print(f"  {took:7.1f} s  {name}")
        print(f"  {time.monotonic() - start:7.1f} s  total")
    print("compose test: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
