"""README pictures: a synthetic positive and a hard negative, through a running demo service.

    .venv/bin/python benchmarks/demo_pictures.py --url http://127.0.0.1:3000 --out docs/demo

Uses the demo training's held-out synthetic test split (build/demo/data).
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from pipeline.data.dataset import Dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--data", type=Path, default=Path("build/demo/data"))
    parser.add_argument("--out", type=Path, default=Path("docs/demo"))
    parser.add_argument("--token", default=os.environ.get("GORE_TOKEN"), help="API token (ingest and analyst roles).")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"}
    args.out.mkdir(parents=True, exist_ok=True)
    test = Dataset.load(args.data).subset("test").samples
    picks = {
        "positive": next(s for s in test if s.kind == "wound"),
        "negative": next(s for s in test if s.kind == "red_object"),
    }
    for name, sample in picks.items():
        data = (args.data / sample.image).read_bytes()
        files = {"image": (f"synthetic_{name}.png", data)}
        answer = httpx.post(f"{args.url}/censor", files=files, headers=headers, timeout=300).json()
        original = Image.open(io.BytesIO(data)).convert("RGB")
        panels = [original]
        if answer["censored"]:
            censored = httpx.get(args.url + answer["censored"], headers=headers).content
            panels.append(Image.open(io.BytesIO(censored)).convert("RGB"))
        canvas = Image.new(
            "RGB", (sum(p.width for p in panels) + 10 * (len(panels) - 1), original.height + 24), "white"
        )
        for i, panel in enumerate(panels):
            canvas.paste(panel, (i * (original.width + 10), 24))
        caption = f"SYNTHETIC {name}: gore_probability {answer['gore_probability']:.3f}, gore {answer['gore']}"
        ImageDraw.Draw(canvas).text(
            (4, 6), caption + ("  (left original, right censored)" if len(panels) > 1 else ""), fill="black"
        )
        canvas.save(args.out / f"{name}.png")
        keep = {k: answer[k] for k in ("gore_probability", "gore", "censored_fraction", "demo", "notice")}
        (args.out / f"{name}.json").write_text(json.dumps(keep, indent=1))
        print(name, json.dumps(keep))


if __name__ == "__main__":
    main()
