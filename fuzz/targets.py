"""Atheris fuzz targets over the real parsers: `python fuzz/targets.py <target> <corpus> [libFuzzer flags]`.

Each target feeds the mutated bytes to the code a request reaches and fails ("crash") on what the
service must never do: an exception that is not one of our client errors (which would be a 500),
a broken invariant (a frame past the pixel limit, a byte read from outside its root), or, through
libFuzzer's `-timeout`, a hang. `fuzz/run.py` runs them all and prints the figures.

    upload     the multipart form check in front of /censor (UploadGuard, as ASGI)
    decoder    decode_upload: every accepted format, under small limits
    labels     the annotation desk's label import (CSV and VIA), over a pool salted with links
    walker     the jobs folder walk and its reads, over a tree the input builds (links, pipes)
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["pipeline", "PIL", "python_multipart"]):
    import PIL.GifImagePlugin  # noqa: F401  (Pillow's format plugins are Python: worth covering)
    import PIL.PngImagePlugin  # noqa: F401
    import PIL.TiffImagePlugin  # noqa: F401

    from pipeline.errors import PipelineError
    from pipeline.files import read_inside
    from pipeline.imaging.decode import decode_upload
    from pipeline.serving.annotation import AnnotationDesk
    from pipeline.serving.upload_guard import FormSpec, UploadGuard
    from pipeline.stores.jobs import JobRequest, JobStore

LIMITS = {"max_bytes": 4 * 2**20, "max_pixels": 2_000_000, "max_frames": 50}
SECRET = b"outside the root: never to be read"


# ---- upload ----

FORM = FormSpec({"image": True, "threshold": False, "uncertainty": False}, 1 * 2**20, frozenset({"uncertainty"}))


async def _downstream(scope, receive, send):
    """What BentoML would be: reads the replayed body to its end, answers 200."""
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _post(body: bytes, boundary: bytes, chunk: int) -> int:
    guard = UploadGuard(_downstream, {"/censor": FORM})
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/censor",
        "headers": [(b"content-type", b"multipart/form-data; boundary=" + boundary)],
    }
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    statuses = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await guard(scope, receive, send)
    return statuses[0] if statuses else 0


BOUNDARY = b"gorefuzzboundary"


def upload(data: bytes) -> None:
    """The first byte sets how the body arrives (chunks of 1 to 4081 bytes); the rest is the body."""
    chunk = 1 + (data[0] if data else 0) * 16
    status = asyncio.run(_post(data[1:], BOUNDARY, chunk))
    if status not in (0, 200, 400, 413):
        raise AssertionError(f"the form check answered {status}")


# ---- decoder ----


def decoder(data: bytes) -> None:
    try:
        image = decode_upload(data, "fuzzed", **LIMITS, at_least=64 if data[:1] == b"\xff" else None)
    except PipelineError:
        return
    shapes = {frame.shape for frame in image.frames}
    if len(shapes) != 1 or len(image.frames) > LIMITS["max_frames"]:
        raise AssertionError(f"frames of sizes {shapes}, {len(image.frames)} of them")
    height, width, bands = next(iter(shapes))
    if bands != 3 or height * width * len(image.frames) > LIMITS["max_pixels"]:
        raise AssertionError(f"{width} x {height} x {len(image.frames)} frames decoded past the limit")
    if any(frame.dtype.name != "uint8" for frame in image.frames):
        raise AssertionError("a frame is not 8-bit")


# ---- labels ----

WORK = Path(tempfile.mkdtemp(prefix="gore-fuzz-"))


def _salted_root() -> Path:
    """The annotation root: a pool with two images, a link out, a pipe; a secret outside."""
    from PIL import Image

    root = WORK / "annotation"
    pool = root / "pool"
    pool.mkdir(parents=True)
    for name, colour in (("a.png", (200, 0, 0)), ("b.jpg", (0, 200, 0))):
        out = io.BytesIO()
        Image.new("RGB", (32, 24), colour).save(out, "PNG" if name.endswith("png") else "JPEG")
        (pool / name).write_bytes(out.getvalue())
    (WORK / "secret.png").write_bytes(SECRET)
    (pool / "escape.png").symlink_to(WORK / "secret.png")
    os.mkfifo(pool / "pipe.png")
    return root


ROOT = _salted_root()
DESK = AnnotationDesk(ROOT, WORK / "data", most_pool_images=100, chunk=8, most_image_bytes=2**20)


def labels(data: bytes) -> None:
    fmt = "via" if data.lstrip()[:1] in (b"{", b"[") else "csv"
    try:
        DESK.take_labels(data, fmt, "pool", "dataset")
    except PipelineError:
        pass
    finally:
        for copied in (ROOT / "dataset").rglob("*"):
            if copied.is_file() and copied.read_bytes() == SECRET:
                raise AssertionError(f"{copied} holds a file from outside the pool")
        shutil.rmtree(ROOT / "dataset", ignore_errors=True)


# ---- walker ----

TREE = WORK / "jobs"
STORE = JobStore(WORK / "jobs.db")


def walker(data: bytes) -> None:
    """The input builds a tree (folders, files, links anywhere, pipes), then a job over it is made
    and every item read as the job runner reads it."""
    provider = atheris.FuzzedDataProvider(data)
    shutil.rmtree(TREE, ignore_errors=True)
    (TREE / "drop").mkdir(parents=True)
    made = [TREE / "drop"]
    for _ in range(provider.ConsumeIntInRange(0, 12)):
        parent = made[provider.ConsumeIntInRange(0, len(made) - 1)]
        if not parent.is_dir() or parent.is_symlink():
            continue
        name = provider.ConsumeUnicodeNoSurrogates(12).replace("/", "_").replace("\x00", "_") or "n"
        path = parent / name
        if path.exists() or path.is_symlink() or len(str(path)) > 200:
            continue
        kind = provider.ConsumeIntInRange(0, 4)
        try:
            if kind == 0:
                path.mkdir()
            elif kind == 1:
                path.write_bytes(provider.ConsumeBytes(64))
            elif kind == 2:
                path.symlink_to(WORK / "secret.png")
            elif kind == 3:
                target = made[provider.ConsumeIntInRange(0, len(made) - 1)]
                path.symlink_to(target if provider.ConsumeBool() else WORK)
            else:
                os.mkfifo(path)
        except OSError:  # Names the file system will not take.
            continue
        made.append(path)
    try:
        job = STORE.create(JobRequest(folder="drop"), TREE, by="fuzz")
    except PipelineError:
        return
    try:
        for item in STORE.items(job.id, limit=10_000):
            try:
                if read_inside(TREE, item.path, 2**20) == SECRET:
                    raise AssertionError(f"{item.path} read a file from outside the jobs root")
            except PipelineError:
                pass
    finally:
        with STORE.database.connect() as db:  # Keep the database small over millions of runs.
            db.execute("DELETE FROM items")
            db.execute("DELETE FROM jobs")


TARGETS = {"upload": upload, "decoder": decoder, "labels": labels, "walker": walker}

if __name__ == "__main__":
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
