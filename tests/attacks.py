"""The attacks of README "Hostile input", as an attacker would send them to a served Censor
service: shared by `tests/test_hostile.py` (which asserts the answers) and
`benchmarks/hostile.py` (which times them and watches memory)."""

from __future__ import annotations

import io
import json
import os
import re
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from hostile_files import gif_growing_canvas, tiff_growing_pages
from images import GREEN, RED, red_blob_pixels
from PIL import Image

PASSWORD = "a long enough password"
ROLES = ("ingest", "analyst", "annotator", "metrics", "admin")


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def unique_red(i: int) -> bytes:
    """640 x 480, green with a red rectangle (gore to the red test models), distinct bytes per `i`."""
    pixels = red_blob_pixels()
    pixels[0, 0] = (i % 256, i // 256, 9)
    return png(pixels)


@dataclass(frozen=True)
class Folders:
    data: Path
    jobs: Path
    annotation: Path
    secret: Path


def salted_folders(base: Path) -> Folders:
    """A jobs root and an annotation pool with good images, a named pipe, links to /dev/zero and
    out of the root, a socket and two growing images; a secret image outside both."""
    data, jobs, annotation, outside = (base / name for name in ("data", "jobs", "annotation", "outside"))
    for folder in (data, jobs / "drop", annotation / "pool", outside):
        folder.mkdir(parents=True)
    secret = outside / "secret.png"
    secret.write_bytes(png(np.full((64, 64, 3), RED, np.uint8)))
    for folder in (jobs / "drop", annotation / "pool"):
        (folder / "good.png").write_bytes(png(np.full((60, 80, 3), GREEN, np.uint8)))
        (folder / "red.png").write_bytes(unique_red(len(str(folder))))
        os.mkfifo(folder / "pipe.png")
        (folder / "zero.png").symlink_to("/dev/zero")
        (folder / "escape.png").symlink_to(secret)
    drop = jobs / "drop"
    (drop / "outside").symlink_to(outside)  # A folder link: listed, never entered.
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(drop / "socket.png"))
    (drop / "canvas.gif").write_bytes(gif_growing_canvas())
    (drop / "pages.tif").write_bytes(tiff_growing_pages())
    return Folders(data, jobs, annotation, secret)


BODY_IDLE_S = 3  # Short here, so a stalled body's 408 comes quickly (the default is 30 s).


def serving_env(folders: Folders, profile: str) -> dict[str, str]:
    return {
        "GORE_PROFILE": profile,
        "GORE_DATA_DIR": str(folders.data),
        "GORE_JOBS_ROOT": str(folders.jobs),
        "GORE_ANNOTATION_ROOT": str(folders.annotation),
        "GORE_METRICS_OPEN": "false",
        "GORE_BODY_IDLE_S": str(BODY_IDLE_S),
    }


def timed(call, *args, **kwargs) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = call(*args, **kwargs)
    return answer, time.monotonic() - started


def post_image(url: str, headers: dict[str, str], name: str, data: bytes) -> tuple[httpx.Response, float]:
    return timed(httpx.post, f"{url}/censor", files={"image": (name, data)}, headers=headers, timeout=60)


def run_job(url: str, headers: dict[str, str], folder: str) -> dict[str, dict]:
    """A job over `folder`, waited for; its items by path."""
    made = httpx.post(f"{url}/jobs", json={"folder": folder}, headers=headers, timeout=30)
    made.raise_for_status()
    job = made.json()["id"]
    deadline = time.monotonic() + 300
    while httpx.get(f"{url}/jobs/{job}", headers=headers, timeout=10).json()["state"] != "done":
        if time.monotonic() > deadline:
            raise TimeoutError("the job did not finish")
        time.sleep(0.5)
    return {i["path"]: i for i in httpx.get(f"{url}/jobs/{job}/items", headers=headers, timeout=10).json()}


def outside_names(folders: Folders) -> list[str]:
    """Label names that point outside the pool, half of them at files that exist."""
    secret, missing = folders.secret, folders.secret.with_name("missing.png")
    return [str(secret), str(missing), "../outside/secret.png", "../outside/missing.png", "escape.png", "zero.png"]


def post_labels(url: str, headers: dict[str, str], names: list[str], fmt: str) -> httpx.Response:
    if fmt == "via":
        entries = {f"{n}1": {"filename": n, "regions": [], "file_attributes": {"gore": "true"}} for n in names}
        body, kind = json.dumps(entries).encode(), "application/json"
    else:
        body, kind = ("image,label\n" + "".join(f"{n},gore\n" for n in names)).encode(), "text/csv"
    return httpx.post(
        f"{url}/annotation/labels?pool=pool&dataset=stolen",
        content=body,
        headers={**headers, "Content-Type": kind},
        timeout=60,
    )


def raw_post(
    url: str, path: str, headers: dict[str, str], body_mb: int, declared: bool, start: bytes = b'{"files": ["'
) -> tuple[int, float, int]:
    """POST `body_mb` MB on a raw socket (its length declared, or chunked), each piece beginning with
    `start`, and stop sending once an answer arrives: the status, the seconds it took, and the
    bytes sent before it."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        total = body_mb * 2**20
        head += f"Content-Length: {total}\r\n" if declared else "Transfer-Encoding: chunked\r\n"
        connection.sendall((head + "\r\n").encode())
        chunk, sent, answer, pending = start + b"a" * (64 * 1024), 0, b"", b""
        connection.setblocking(False)
        while sent < total or pending:
            if not pending:
                pending = chunk if declared else f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                sent += len(chunk)
            # Wait while the server drains what was sent; an answer (or 5 s of not reading) ends it.
            readable, writable, _ = select.select([connection], [connection], [], 5)
            if readable:
                answer += connection.recv(65536)
                break
            if not writable:
                break
            try:
                pending = pending[connection.send(pending) :]
            except (BrokenPipeError, ConnectionResetError):
                break
        connection.setblocking(True)
        while b"\r\n" not in answer:
            more = connection.recv(65536)
            if not more:
                break
            answer += more
    return int(answer.split(b" ")[1]), time.monotonic() - started, sent


def stalled_post(url: str, path: str, headers: dict[str, str], content_type: str, first: bytes) -> tuple[bytes, float]:
    """Declare a 500 kB body, send its first bytes, then nothing (slowloris): the whole answer, and
    the seconds it took to come."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: 500000\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        connection.sendall(head.encode() + b"\r\n" + first)
        answer = b""
        while not answer.endswith(b"}") and (more := connection.recv(65536)):
            answer += more
    return answer, time.monotonic() - started


def browser(url: str, address: str = "127.0.0.1") -> httpx.Client:
    """The web app, as a browser whose connections come from `address` (any of 127.0.0.0/8)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url + "/app", timeout=60, follow_redirects=False, transport=transport)


def sign_in_attempt(url: str, name: str, password: str, address: str) -> tuple[int, float]:
    """The sign-in form fetched and sent from `address`: the status and the POST's seconds."""
    with browser(url, address) as client:
        form = client.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        answer, took = timed(client.post, "/signin", data={"csrf": csrf, "name": name, "password": password})
        return answer.status_code, took


def parallel_guesses(url: str, name: str, count: int = 40) -> list[int]:
    """`count` wrong passwords at once, each from its own address (past any per-address limit)."""
    addresses = [f"127.0.1.{i}" for i in range(1, count + 1)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        return [s for s, _ in pool.map(lambda a: sign_in_attempt(url, name, "wrong password!", a), addresses)]


def signed_in(url: str, name: str, address: str = "127.0.0.1") -> tuple[httpx.Client, str]:
    """A browser signed in as `name`, and its session's CSRF token."""
    client = browser(url, address)
    form = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = client.post("/signin", data={"csrf": csrf, "name": name, "password": PASSWORD, "next": "/app/gallery"})
    if answer.status_code != 303:
        raise AssertionError(answer.text[-500:])
    page = client.get("/gallery")
    return client, re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def press_everywhere(client: httpx.Client, csrf: str, image: str, width: int, height: int, step: int = 40):
    """Press-and-hold on a grid of points until refused: the areas given and the refusal."""
    boxes = []
    for y in range(0, height, step):
        for x in range(0, width, step):
            answer = client.post(f"/images/{image}/patch?x={x}&y={y}", headers={"X-CSRF-Token": csrf})
            if answer.status_code != 200:
                return boxes, answer
            boxes.append([int(answer.headers[f"x-patch-{k}"]) for k in ("left", "top", "width", "height")])
    return boxes, None


def share_seen(boxes: list[list[int]], width: int, height: int) -> float:
    seen = np.zeros((height, width), bool)
    for left, top, w, h in boxes:
        seen[top : top + h, left : left + w] = True
    return float(seen.mean())
