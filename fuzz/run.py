"""`make fuzz`: every target of fuzz/targets.py for a set time, seeded from a corpus made here of
valid and hostile files; prints executions, crashes, hangs and peak memory per target.

    python fuzz/run.py --seconds 600                 # every target, 10 minutes each
    python fuzz/run.py --seconds 60 --target decoder

Findings land in build/fuzz/<target>/ (crash-*, timeout-*, oom-* inputs to replay with
`python fuzz/targets.py <target> <file>`); the corpus grows in build/fuzz/<target>/corpus.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

from hostile_files import (  # noqa: E402
    apng_many_frames,
    bmp_huge,
    gif_growing_canvas,
    gif_many_frames,
    jpeg_huge_header,
    mpo_pair,
    png_bomb,
    tiff_growing_pages,
    webp_big_canvas,
)

TARGETS = ("upload", "decoder", "labels", "walker")
HANG_S = 10  # An input that takes longer is a hang.
RSS_LIMIT_MB = 3072


def _image(fmt: str, **options) -> bytes:
    rng = np.random.default_rng(len(fmt))
    frames = [Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)) for _ in range(3)]
    out = io.BytesIO()
    frames[0].save(out, fmt, **options)
    return out.getvalue()


def decoder_seeds() -> dict[str, bytes]:
    many = {"save_all": True, "append_images": [Image.new("RGB", (16, 12), (0, 200, 0))]}
    seeds = {
        "a.jpg": _image("JPEG"),
        "a.png": _image("PNG"),
        "a.apng": _image("PNG", **many),
        "a.gif": _image("GIF", **many, duration=[50, 80]),
        "a.webp": _image("WEBP", **many, lossless=True),
        "a.tif": _image("TIFF", **many),
        "a.bmp": _image("BMP"),
        "a.avif": _image("AVIF"),
        "mpo.jpg": mpo_pair(),
        "grey16.png": _encoded(Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)),
        "float.tif": _encoded(Image.fromarray(np.full((8, 8), 0.25, np.float32)), "TIFF"),
        "cmyk.jpg": _encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"),
        "rgba.png": _encoded(Image.new("RGBA", (8, 8), (255, 0, 0, 128))),
        "growing.gif": gif_growing_canvas(frames=3, at=3000),
        "frames.gif": gif_many_frames(60),
        "pages.tif": tiff_growing_pages(big=600),
        "bomb.png": png_bomb(5000),
        "frames.apng": apng_many_frames(),
        "header.jpg": jpeg_huge_header(),
        "canvas.webp": webp_big_canvas(),
        "huge.bmp": bmp_huge(),
    }
    return seeds


def _encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def upload_seeds() -> dict[str, bytes]:
    def form(*parts: tuple[str, str | None, bytes]) -> bytes:
        body = b""
        for name, filename, content in parts:
            disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
            body += (
                b"--gorefuzzboundary\r\nContent-Disposition: " + disposition.encode() + b"\r\n\r\n" + content + b"\r\n"
            )
        return bytes([3]) + body + b"--gorefuzzboundary--\r\n"

    png = _image("PNG")
    return {
        "image": form(("image", "a.png", png)),
        "options": form(("image", "a.png", png), ("threshold", None, b"0.7"), ("uncertainty", None, b"true")),
        "unknown": form(("images", "a.png", png)),
        "text-as-file": form(("threshold", "t.txt", b"0.5")),
        "bad-flag": form(("image", "a.png", png), ("uncertainty", None, b"yes")),
    }


def labels_seeds() -> dict[str, bytes]:
    via = {
        "a.png1": {
            "filename": "a.png",
            "regions": [
                {
                    "shape_attributes": {"name": "polygon", "all_points_x": [1, 20, 20], "all_points_y": [1, 1, 15]},
                    "region_attributes": {"Gore": {"true": True}, "Blood": "true"},
                },
                {"shape_attributes": {"name": "rect", "x": 2, "y": 2, "width": 5, "height": 5}},
            ],
            "file_attributes": {"gore": "yes"},
        },
        "b.jpg1": {"filename": "b.jpg", "regions": {}, "file_attributes": {}},
        "c1": {"filename": "/etc/passwd", "regions": []},
        "d1": {"filename": "../secret.png", "regions": []},
        "e1": {"filename": "escape.png", "regions": []},
    }
    return {
        "labels.csv": b"image,label\na.png,gore\nb.jpg,not_gore\nescape.png,gore\npipe.png,gore\n../secret.png,gore\n",
        "columns.csv": b"filename,gore\na.png,1\nb.jpg,0\n",
        "via2.json": json.dumps({"_via_img_metadata": via}).encode(),
        "via1.json": json.dumps(via).encode(),
    }


def walker_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(11)
    return {f"tree{i}": rng.integers(0, 256, 96, dtype=np.uint8).tobytes() for i in range(8)}


SEEDS = {"upload": upload_seeds, "decoder": decoder_seeds, "labels": labels_seeds, "walker": walker_seeds}


def run(target: str, seconds: int, out: Path) -> dict:
    folder = out / target
    corpus, findings = folder / "corpus", folder / "findings"
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS[target]().items():
        (corpus / f"seed-{name}").write_bytes(data)
    command = [
        sys.executable,
        str(HERE / "targets.py"),
        target,
        str(corpus),
        f"-max_total_time={seconds}",
        f"-timeout={HANG_S}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        "-max_len=262144",
        f"-artifact_prefix={findings}/",
        "-print_final_stats=1",
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=seconds + 600)
    log = done.stdout + done.stderr
    (folder / "fuzz.log").write_text(log)
    stat = dict(re.findall(r"stat::(\w+):\s+(\d+)", log))
    found = [p.name for p in findings.iterdir()]
    return {
        "target": target,
        "seconds": round(time.monotonic() - started),
        "executions": int(stat.get("number_of_executed_units", 0)),
        "crashes": sum(name.startswith("crash-") for name in found),
        "hangs": sum(name.startswith("timeout-") for name in found),
        "out_of_memory": sum(name.startswith("oom-") for name in found),
        "peak_rss_mb": int(stat.get("peak_rss_mb", 0)),
        "corpus": sum(1 for _ in corpus.iterdir()),
        "exit": done.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600, help="per target")
    parser.add_argument("--target", choices=TARGETS, action="append", help="default: all")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "fuzz")
    args = parser.parse_args()
    rows = [run(target, args.seconds, args.out) for target in args.target or TARGETS]
    print("| target | time | executions | crashes | hangs (> 10 s) | out of memory | peak RSS | corpus |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['target']} | {r['seconds']} s | {r['executions']:,} | {r['crashes']} | {r['hangs']} | "
            f"{r['out_of_memory']} | {r['peak_rss_mb']} MB | {r['corpus']} |"
        )
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    if any(r["crashes"] or r["hangs"] or r["out_of_memory"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
