"""`make bench-video`: a synthetic 720p, 30 fps clip censored end to end, against its floors.

    .venv/bin/python benchmarks/video_bench.py --seconds 20

Speed, with the demo models (ONNX Runtime, in this process): a wound-like region (the demo
recipe's own synthetic wound) appears, moves and disappears over a textured background, with a
sound track. Printed: the decode floor (every frame to RGB; and the same without the conversion),
the models' floor for the frames the run analysed (bare calls, batch 8), the end-to-end rate in
frames per second and as a multiple of real time, the shares of the models and of re-encoding,
and the process' peak memory.

The leak, with the red-pixel test models (their output is known exactly): a red disc crossing a
720p clip; every frame of the censored copy is decoded and the share of the disc left visible is
counted per frame (not only the sampled ones), with the over-censoring beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

WIDTH, HEIGHT, FPS = 1280, 720, 30


def wound_clip(path: Path, seconds: float) -> Path:
    """720p, 30 fps: a synthetic wound (the demo recipe's own drawing, at the size the demo models
    were trained on relative to the frame) appears at 30% of the clip, crosses, and is gone at 70%."""
    import cv2

    from pipeline.data.synthetic import background, draw_wound

    rng = np.random.default_rng(7)
    square = background(rng, HEIGHT, {})
    painted = square.copy()
    region = draw_wound(np.random.default_rng(3), painted).astype(bool)
    ys, xs = np.nonzero(region)
    box = painted[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    shape = region[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    grow = 340 / box.shape[0]  # About half the frame's height: seen at the demo models' 96 px like their training.
    box = cv2.resize(box, None, fx=grow, fy=grow, interpolation=cv2.INTER_LINEAR)
    shape = cv2.resize(shape.astype(np.uint8), None, fx=grow, fy=grow, interpolation=cv2.INTER_NEAREST).astype(bool)
    scene = cv2.resize(square, (WIDTH, HEIGHT))
    frames = int(seconds * FPS)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "18", "preset": "ultrafast"}
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for index in range(frames):
            pixels = scene.copy()
            share = index / frames
            if 0.3 <= share < 0.7:
                x = int((share - 0.3) / 0.4 * (WIDTH - box.shape[1]))
                y = (HEIGHT - box.shape[0]) // 2
                view = pixels[y : y + box.shape[0], x : x + box.shape[1]]
                view[shape] = box[shape]
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 48000)) / 48000)).astype(np.float32)
        for start in range(0, tone.size, 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, start, Fraction(1, 48000)
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return path


def red(pixels: np.ndarray) -> np.ndarray:
    """The red-pixel test models' idea of gore, per pixel (tests/red_pixel_models.py)."""
    rgb = pixels.astype(np.int32)
    return rgb[..., 0] - (rgb[..., 1] + rgb[..., 2]) // 2 > 60


def decode_floor(path: Path) -> tuple[float, float]:
    """Frames per second: decoded to RGB; decoded only."""
    rates = []
    for convert in (True, False):
        started, count = time.perf_counter(), 0
        with av.open(str(path)) as container:
            container.streams.video[0].thread_type = "AUTO"
            for frame in container.decode(video=0):
                if convert:
                    frame.to_ndarray(format="rgb24")
                count += 1
        rates.append(count / (time.perf_counter() - started))
    return rates[0], rates[1]


def models_floor(models, sampled: int, segmented: int) -> float:
    """Seconds the bare models take for this many frames, batch 8, inputs ready."""
    rng = np.random.default_rng(0)
    total = 0.0
    for call, size, count in (
        (models.classify, models.classifier_size, sampled),
        (models.segment, models.segmenter_size, segmented),
    ):
        batch = rng.integers(0, 255, (8, size, size, 3), dtype=np.uint8)
        asyncio.run(call(batch))  # Warm-up.
        started = time.perf_counter()
        for start in range(0, count, 8):
            asyncio.run(call(batch[: min(8, count - start)]))
        total += time.perf_counter() - started
    return total


def video_models(classifier_tag: str, segmenter_tag: str, backend: str):
    from pipeline.serving.local_models import local_model
    from pipeline.video.censor import VideoModels

    classify, classifier = local_model(classifier_tag, False, backend, 1)
    segment, segmenter = local_model(segmenter_tag, False, backend, 1)
    return (
        VideoModels.of(classify, segment, classifier, segmenter),
        classifier,
        segmenter,
    )


def speed(seconds: float, folder: Path) -> None:
    from pipeline.config import Settings
    from pipeline.video.censor import VideoCensorer, VideoOptions
    from pipeline.video.decode import VideoLimits

    settings = Settings()
    clip = wound_clip(folder / "wound720.mp4", seconds)
    models, classifier, segmenter = video_models(settings.classifier_tag, settings.segmenter_tag, "onnx")
    censorer = VideoCensorer(models, VideoLimits.from_settings(settings))
    options = VideoOptions.from_settings(settings, classifier.threshold, segmenter.threshold)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    result = asyncio.run(censorer.censor(clip, folder / "out", options))
    took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rgb, bare = decode_floor(clip)
    floor_s = models_floor(models, len(result.sampled), result.segmented_frames)
    t = result.timings_ms
    print(f"\n### Speed: {WIDTH}x{HEIGHT}, {FPS} fps, {seconds:g} s, demo models (ONNX Runtime), this process\n")
    print(
        f"gore segments: {[(s.start_s, s.end_s) for s in result.segments]}; sampled {len(result.sampled)}, "
        f"segmented {result.segmented_frames}, masked {result.masked_frames}, hidden {len(result.hidden_frames)}\n"
    )
    print("| measure | figure |\n|---|---|")
    print(f"| decode floor, every frame to RGB | {rgb:.1f} fps |")
    print(f"| decode floor, frames not converted | {bare:.1f} fps |")
    print(f"| models' floor for the frames analysed (bare calls, batch 8) | {floor_s:.2f} s |")
    print(
        f"| end to end (decode twice, classify, segment, mask, encode) | {result.frames / took:.1f} fps, "
        f"{seconds / took:.2f}x real time |"
    )
    print(
        f"| of which in the classifier / segmenter | {t['classify'] / 1000 / took:.0%} / "
        f"{t['segment'] / 1000 / took:.0%} |"
    )
    print(f"| of which re-encoding (H.264, libx264 veryfast) | {t['encode'] / 1000 / took:.0%} |")
    print(f"| peak resident memory (models loaded: {rss_before:,.0f} MB before) | {peak:,.0f} MB |")


def leak(seconds: float, folder: Path) -> None:
    """Two clips: the disc crossing the frame in 40% of the clip (slow), and in 1 s (fast: 32 px a frame)."""
    from red_pixel_models import register_red_models
    from videos import Clip, write_clip

    from pipeline.config import Settings
    from pipeline.video.censor import VideoCensorer, VideoOptions
    from pipeline.video.decode import VideoLimits

    tags = register_red_models()
    models, _, _ = video_models(tags["classifier"], tags["segmenter"], "keras")
    settings = Settings()
    options = VideoOptions.from_settings(settings, 0.5, 0.5)
    censorer = VideoCensorer(models, VideoLimits.from_settings(settings))
    print(
        f"\n### The leak: red-pixel test models, a disc (radius 160 px) crossing {WIDTH}x{HEIGHT} at {FPS} fps, "
        f"{seconds:g} s, default settings (sample {settings.video_sample_fps:g}/s, segment "
        f"{settings.video_segment_fps:g}/s, pad {settings.video_pad_s:g} s, margin {settings.margin:g})\n"
    )
    print(
        "| crossing | frames with gore | gore visible, mean / worst frame | frames > 2% visible "
        "| over-censoring, mean / worst frame |"
    )
    print("|---|---|---|---|---|")
    for name, crossing_s in (("slow", seconds * 0.4), ("fast, 1 s", 1.0)):
        start = seconds * 0.3
        clip = Clip(
            width=WIDTH,
            height=HEIGHT,
            fps=FPS,
            seconds=seconds,
            wound_from_s=start,
            wound_to_s=start + crossing_s,
            radius=160,
        )
        source = write_clip(folder / f"red720-{crossing_s:g}.mp4", clip)
        result = asyncio.run(censorer.censor(source, folder / f"red-{crossing_s:g}", options))
        visible, over = [], []
        with av.open(str(folder / f"red-{crossing_s:g}" / result.outputs["video"])) as container:
            for index, frame in enumerate(container.decode(video=0)):
                pixels = frame.to_ndarray(format="rgb24")
                wound = clip.wound_mask(index)
                hidden = pixels.max(axis=2) < 16
                if wound.any():
                    visible.append(float((red(pixels) & wound).sum() / wound.sum()))
                over.append(float((hidden & ~wound).sum() / (~wound).sum()))
        gore = np.array(visible)
        print(
            f"| {name} | {gore.size} of {len(over)} | {gore.mean():.4%} / {gore.max():.4%} | {(gore > 0.02).sum()} "
            f"| {np.mean(over):.2%} / {np.max(over):.2%} |"
        )


def peak_mb() -> float:
    """This process' peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory(clip: Path, folder: Path) -> None:
    """One line: the peak resident memory of censoring `clip` in this (fresh) process."""
    from pipeline.config import Settings
    from pipeline.video.censor import VideoCensorer, VideoOptions
    from pipeline.video.decode import VideoLimits

    settings = Settings()
    models, classifier, segmenter = video_models(settings.classifier_tag, settings.segmenter_tag, "onnx")
    options = VideoOptions.from_settings(settings, classifier.threshold, segmenter.threshold)
    before = peak_mb()
    result = asyncio.run(VideoCensorer(models, VideoLimits.from_settings(settings)).censor(clip, folder / "o", options))
    peak = peak_mb()
    print(f"| {result.seconds:g} s | {result.frames} | {before:,.0f} MB | {peak:,.0f} MB |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--leak", action="store_true", help="Only the leak (run in a model store of its own).")
    parser.add_argument("--memory", type=Path, help="Only the peak memory of censoring this clip.")
    parser.add_argument("--lengths", default="10,60,150", help="Clip lengths (s) for the memory table.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.leak:
            leak(args.seconds, Path(folder))
            return
        if args.memory:
            memory(args.memory, Path(folder))
            return
        speed(args.seconds, Path(folder))
        print("\n### Memory against length: a fresh process each, demo models (ONNX Runtime)\n")
        print("| clip | frames | models loaded | peak resident |\n|---|---|---|---|", flush=True)
        for length in args.lengths.split(","):
            clip = wound_clip(Path(folder) / f"memory-{length}.mp4", float(length))  # Made here, measured there.
            subprocess.run([sys.executable, __file__, "--memory", str(clip)], check=True)
        # The test models go into a throwaway model store, never the user's.
        env = {**os.environ, "BENTOML_HOME": str(Path(folder) / "bentoml")}
        command = [sys.executable, __file__, "--leak", "--seconds", str(args.seconds)]
        subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
