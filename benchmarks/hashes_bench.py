"""`make bench-hashes`: PDQ for known-content matching (issue 21): cost, lookup, recall, false matches.

    .venv/bin/python benchmarks/hashes_bench.py            # about 8 to 10 minutes on 2 cores
    .venv/bin/python benchmarks/hashes_bench.py --quick    # a smoke run: small sizes, about a minute

Printed as Markdown tables:

1. Hashing cost per image: PDQ (`pdq_of`, and the 8 dihedral hashes of `pdqhash.compute_dihedral`)
   against today's 64-bit pHash (`perceptual_hash`), both on the same full-size array (the
   pipeline computes pHash on the classifier's small copy; a row shows that cost too).
2. Lookup at distance 31 against 10 thousand, 1 million and 10 million random 256-bit hashes:
   the project's `HashIndex` (multi-index hashing in sorted numpy arrays) and faiss's brute force
   (`IndexBinaryFlat`, the floor to beat): median and p99 per query
   (wall clock and CPU), build time and the resident memory the build added. Each size is built
   in a fresh process, so that one size's freed memory does not hide the next one's. Half the
   queries are random, half planted near-duplicates of stored hashes at 1 to 31 bits, so that
   hits exist; every index must return what brute force returns.
3. Recall of near-duplicates at distance <= 31 (quality > 49): generated source images (nothing is
   downloaded: the demo recipe's synthetic pictures and procedural scenes; the photographs
   scikit-image ships as a real-photo anchor) each JPEG re-encoded at quality 50, resized to
   half, cropped 5%, mirrored, brightened by 20 and covered 10% by a logo block. Plain PDQ, plain
   plus the mirror's hash, and all 8 dihedral hashes of the copy against the stored hash (what
   storing the 8 hashes of every listed image gives too), with today's pHash at the web app's
   near-duplicate distance (6 of 64 bits) beside them; then smaller crops and overlays.
4. False matches: distinct generated images (procedural scenes from other seeds, none derived
   from a source) against the sources' hashes, and the distances of those unrelated pairs.
5. The reviewer's gain: a collection in which 30% of the images are transformed copies of listed
   gore images; the reveals needed without the lists and with them.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time

import cv2
import faiss
import numpy as np
import pdqhash
import psutil
from PIL import Image

from pipeline.imaging.hashes import perceptual_hash
from pipeline.known.index import HashIndex
from pipeline.known.pdq import BYTES, LOW_QUALITY, MATCH_DISTANCE, codes, pdq_of

PHASH_DISTANCE = 6  # The web app's near-duplicate distance (settings.web_duplicate_distance), of 64 bits.
SOURCE, TRANSFORM, UNRELATED, COLLECTION = 1, 2, 3, 4  # Seed families: no image of one is in another.
# Which of an image's 8 dihedral hashes (pdqhash.compute_dihedral) a query sends: plain PDQ, plain
# and the left-right mirror (hash 5 is the mirror's hash), or all 8.
VARIANTS = {"plain": [0], "plain + mirror": [0, 5], "dihedral": list(range(8))}
POPCOUNT = np.array([bin(value).count("1") for value in range(256)], np.uint8)
SOURCE_SHAPES = ((480, 640), (640, 480), (600, 800), (768, 1024), (720, 1280), (640, 640), (1024, 768))
# The photographs scikit-image ships (offline): a real-photo anchor for the generated sources.
PHOTOGRAPHS = (
    "astronaut.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
    "brick.png",
    "grass.png",
    "gravel.png",
)
UNRELATED_SHAPES = ((240, 320), (320, 240), (256, 256), (180, 320), (320, 180), (300, 400))


# ---- Pictures: generated here, nothing downloaded -------------------------------------------


def _pink(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """1/f^beta noise in [0, 1]: the spectrum of natural scenes (clouds, foliage, rock)."""
    fy = np.fft.fftfreq(h)[:, None].astype(np.float32)
    fx = np.fft.rfftfreq(w)[None, :].astype(np.float32)
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape, np.float32) + 1j * rng.standard_normal(f.shape, np.float32)) / f**beta
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(h, w)).astype(np.float32)
    lo, hi = np.percentile(field[::4, ::4], (1, 99))
    return ((field - lo) / max(hi - lo, 1e-9)).clip(0, 1)


def _smooth(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Values in [0, 1] varying over about `scale` pixels."""
    cells = (max(2, round(h / scale)), max(2, round(w / scale)))
    return cv2.resize(rng.random(cells, np.float32), (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _ramp(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth gradient in a random direction (four random corners, bilinear)."""
    return cv2.resize(rng.random((2, 2), np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A colour as photographs have them: mostly muted, sometimes saturated."""
    hsv = np.array([[[rng.uniform(0, 180), 255 * rng.beta(1.3, 2.5), rng.uniform(25, 245)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _mix(rng: np.random.Generator, field: np.ndarray, n: int) -> np.ndarray:
    """A [0, 1] field painted through a palette of n random colours."""
    palette = np.stack([_colour(rng) for _ in range(n)])
    at = np.linspace(0, n - 1, 256, dtype=np.float32)
    lut = np.stack([np.interp(at, np.arange(n), palette[:, c]) for c in range(3)], 1).astype(np.float32)
    return lut[(field * 255).astype(np.uint8)]


def scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A procedural picture, h x w RGB: a backdrop (natural-spectrum noise, a horizon with sky over
    textured ground, smooth fields at several scales, or a patterned gradient wall), up to 13
    objects (ellipses, boxes, polygons, poles; some out of focus, shaded, textured), uneven light,
    a vignette, sensor grain, sometimes a soft focus."""
    kind = rng.random()
    if kind < 0.35:
        img = _mix(rng, _pink(rng, h, w, rng.uniform(0.9, 2.2)), int(rng.integers(2, 5)))
    elif kind < 0.6:
        sky = _mix(rng, _ramp(rng, h, w) * 0.7 + 0.3 * _smooth(rng, h, w, rng.uniform(40, 200)), 2)
        ground = _mix(rng, _pink(rng, h, w, rng.uniform(0.8, 1.6)), 3)
        horizon = h * rng.uniform(0.25, 0.7) + (_smooth(rng, 1, w, rng.uniform(20, 200))[0] - 0.5) * h * rng.uniform(
            0, 0.3
        )
        img = np.where((np.arange(h)[:, None] >= horizon[None, :])[..., None], ground, sky)
    elif kind < 0.8:
        field = (
            0.6 * _smooth(rng, h, w, rng.uniform(100, 400))
            + 0.3 * _smooth(rng, h, w, rng.uniform(15, 60))
            + 0.1 * _smooth(rng, h, w, rng.uniform(3, 10))
        )
        img = _mix(rng, field, int(rng.integers(2, 6)))
    else:
        img = _mix(rng, _ramp(rng, h, w), 2)
        period, angle = rng.uniform(6, 60), rng.uniform(0, np.pi)
        x, y = np.arange(w, dtype=np.float32)[None, :], np.arange(h, dtype=np.float32)[:, None]
        pattern = 0.5 + 0.5 * np.sin((np.cos(angle) * x + np.sin(angle) * y) * (2 * np.pi / period))
        if rng.random() < 0.5:  # A grid rather than stripes.
            pattern = pattern * (0.5 + 0.5 * np.sin((np.cos(angle) * y - np.sin(angle) * x) * (2 * np.pi / period)))
        img = img * (0.7 + 0.3 * pattern[..., None])
    img = img.astype(np.float32)
    shades = (
        0.6 + 0.5 * _ramp(rng, h, w),
        (0.6 + 0.5 * _ramp(rng, h, w)) * (0.75 + 0.5 * _smooth(rng, h, w, rng.uniform(2, 20))),
    )
    for _ in range(int(rng.integers(0, 14))):
        layer = np.zeros((h, w), np.uint8)
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(rng.uniform(0.03, 0.3) * min(h, w)) + 2
        shape = rng.random()
        if shape < 0.4:
            axes = (size, int(size * rng.uniform(0.3, 1.5)))
            cv2.ellipse(layer, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        elif shape < 0.7:
            box = cv2.boxPoints(((cx, cy), (size * 2, size * rng.uniform(0.3, 2)), float(rng.uniform(0, 90))))
            cv2.fillPoly(layer, [box.astype(np.int32)], 1)
        elif shape < 0.9:
            points = np.stack([cx + rng.normal(0, size, 7), cy + rng.normal(0, size, 7)], 1).astype(np.int32)
            cv2.fillPoly(layer, [cv2.convexHull(points)], 1)
        else:
            end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(layer, (cx, cy), end, 1, int(rng.integers(1, 12)))
        x0, y0, bw, bh = cv2.boundingRect(layer)
        if bw == 0 or bh == 0:
            continue
        x0, y0, x1, y1 = max(0, x0 - 8), max(0, y0 - 8), min(w, x0 + bw + 8), min(h, y0 + bh + 8)
        mask = layer[y0:y1, x0:x1].astype(np.float32)
        if rng.random() < 0.4:  # Out of focus.
            mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(1, 4))
        colour = _colour(rng) * shades[int(rng.integers(2))][y0:y1, x0:x1, None]
        view = img[y0:y1, x0:x1]
        view += (colour - view) * mask[..., None]
    ys = np.square(np.linspace(-1, 1, h, dtype=np.float32))[:, None]
    xs = np.square(np.linspace(-1, 1, w, dtype=np.float32))[None, :]
    light = (0.55 + 0.6 * _smooth(rng, h, w, rng.uniform(150, 600))) * (1 - rng.uniform(0, 0.5) * (ys + xs) / 2)
    img = img * light[..., None] + rng.standard_normal((h, w, 3), np.float32) * np.float32(rng.uniform(1, 8))
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2))
    return img.clip(0, 255).astype(np.uint8)


_PHOTOS: dict[str, np.ndarray] = {}


def demo_picture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A picture as the demo recipe draws them (src/pipeline/data/synthetic.py): a crop of one of
    scikit-image's photographs or a procedural texture, with a wound-like region, a red object or
    red food; square."""
    from pipeline.data.synthetic import background, draw_food, draw_red_object, draw_wound

    image = background(rng, size, _PHOTOS)
    roll = rng.random()
    if roll < 0.5:
        draw_wound(rng, image)
    elif roll < 0.7:
        draw_red_object(rng, image)
    elif roll < 0.85:
        draw_food(rng, image)
    return image


def source_picture(index: int) -> np.ndarray:
    """Source `index`: one in three the demo recipe's pictures, the rest procedural scenes."""
    rng = np.random.default_rng([SOURCE, index])
    if index % 3 == 0:
        return demo_picture(rng, int(rng.integers(384, 769)))
    return scene(rng, *SOURCE_SHAPES[int(rng.integers(len(SOURCE_SHAPES)))])


def unrelated_picture(index: int) -> np.ndarray:
    rng = np.random.default_rng([UNRELATED, index])
    return scene(rng, *UNRELATED_SHAPES[int(rng.integers(len(UNRELATED_SHAPES)))])


# ---- The transforms a repeat goes through -----------------------------------------------------


def jpeg_50(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=50)
    return np.asarray(Image.open(buffer).convert("RGB"))


def half_size(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)


def crop(image: np.ndarray, share: float, where: str = "centre") -> np.ndarray:
    """`share` of the width and of the height cut off: half from each edge ("centre"), all from the
    top and left ("corner")."""
    h, w = image.shape[:2]
    cut_h, cut_w = round(share * h), round(share * w)
    top, left = (cut_h // 2, cut_w // 2) if where == "centre" else (cut_h, cut_w)
    return image[top : h - (cut_h - top), left : w - (cut_w - left)]


def crop_5(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """5% of the width and 5% of the height cut off the edges, 2.5% from each."""
    return crop(image, 0.05)


def mirror(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def brighter_20(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(image.astype(np.int16) + 20, 0, 255).astype(np.uint8)


def overlay(image: np.ndarray, rng: np.random.Generator, share: float, where: str = "anywhere") -> np.ndarray:
    """A logo block (a solid sticker with a ring and text) covering `share` of the area, anywhere
    (at random) or in the bottom right corner."""
    h, w = image.shape[:2]
    aspect = rng.uniform(0.5, 2.0)
    bw = min(w, round(np.sqrt(share * h * w * aspect)))
    bh = min(h, round(share * h * w / bw))
    if where == "corner":
        x, y = w - bw, h - bh
    else:
        x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
    out = image.copy()
    out[y : y + bh, x : x + bw] = rng.integers(0, 256, 3)
    cv2.circle(out, (x + bw // 4, y + bh // 2), max(2, min(bw, bh) // 4), (255, 255, 255), max(1, min(bw, bh) // 20))
    (tw, th), _ = cv2.getTextSize("LOGO", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
    scale = min(0.4 * bw / tw, 0.5 * bh / th)  # The text inside the block's right half.
    cv2.putText(
        out, "LOGO", (x + bw // 2, y + (bh + int(th * scale)) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255,) * 3
    )
    return out


def overlay_10(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return overlay(image, rng, 0.1)


TRANSFORMS = {
    "JPEG quality 50": jpeg_50,
    "resized to half": half_size,
    "cropped 5% (2.5% off each edge)": crop_5,
    "mirrored (horizontal flip)": mirror,
    "brightness +20": brighter_20,
    "10% overlay (logo block)": overlay_10,
}
# How far PDQ bends: smaller and one-sided crops, smaller overlays and one in a corner (informative).
SWEEP = {
    "crop 1% (centred)": lambda image, rng: crop(image, 0.01),
    "crop 2% (centred)": lambda image, rng: crop(image, 0.02),
    "crop 3% (centred)": lambda image, rng: crop(image, 0.03),
    "crop 5% (centred, as above)": lambda image, rng: crop(image, 0.05),
    "crop 2% (all from top and left)": lambda image, rng: crop(image, 0.02, "corner"),
    "crop 5% (all from top and left)": lambda image, rng: crop(image, 0.05, "corner"),
    "overlay 1% (anywhere)": lambda image, rng: overlay(image, rng, 0.01),
    "overlay 2.5% (anywhere)": lambda image, rng: overlay(image, rng, 0.025),
    "overlay 5% (anywhere)": lambda image, rng: overlay(image, rng, 0.05),
    "overlay 10% (anywhere, as above)": overlay_10,
    "overlay 10% (bottom right corner)": lambda image, rng: overlay(image, rng, 0.1, "corner"),
}
SWEEP_RADII = (MATCH_DISTANCE, 47, 63)


# ---- Hashes -----------------------------------------------------------------------------------


def dihedral_codes(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """The 8 dihedral PDQ hashes of an image as (8, 32) uint8 codes, the first the plain hash
    (`pdq_of`'s), and the quality (the same for all 8)."""
    hashes, quality = pdqhash.compute_dihedral(np.ascontiguousarray(pixels[..., :3], np.uint8))
    return np.packbits(np.stack(hashes).astype(np.uint8), axis=1), int(quality)


def phash_int(pixels: np.ndarray) -> int:
    return int(perceptual_hash(pixels), 16)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits apart of every code of a (..., 32) against every code of b (M, 32): (..., M)."""
    out = np.empty(a.shape[:-1] + (len(b),), np.int16)
    flat_a, flat_out = a.reshape(-1, BYTES), out.reshape(-1, len(b))
    for start in range(0, len(flat_a), 512):
        chunk = flat_a[start : start + 512, None, :] ^ b[None, :, :]
        flat_out[start : start + 512] = POPCOUNT[chunk].sum(-1, dtype=np.int16)
    return out


def phash_hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = a[:, None] ^ b[None, :]
    return np.unpackbits(x.view(np.uint8).reshape(len(a), len(b), 8), axis=-1).sum(-1)


def copies_task(image: np.ndarray, seed: int) -> dict | None:
    """An image and its transformed copies (TRANSFORMS, then SWEEP), hashed; None when the image's
    quality is too low for it to be listed."""
    plain, quality = dihedral_codes(image)
    if quality <= LOW_QUALITY:
        return None
    rng = np.random.default_rng([TRANSFORM, seed])
    copies = [transform(image, rng) for transform in TRANSFORMS.values()]
    hashed = [dihedral_codes(copy) for copy in copies]
    swept = [dihedral_codes(change(image, rng)) for change in SWEEP.values()]
    return {
        "index": seed,
        "code": plain[0],
        "quality": quality,
        "phash": phash_int(image),
        "copy_codes": np.stack([codes8 for codes8, _ in hashed]),  # (transforms, 8, 32)
        "copy_quality": np.array([q for _, q in hashed]),
        "copy_phash": np.array([phash_int(copy) for copy in copies], np.uint64),
        "sweep_codes": np.stack([codes8[0] for codes8, _ in swept]),  # (changes, 32), plain
        "sweep_quality": np.array([q for _, q in swept]),
    }


def source_task(index: int) -> dict | None:
    return copies_task(source_picture(index), index)


def photograph_task(name: str) -> dict | None:
    from skimage.data import data_dir  # The files scikit-image ships: nothing is downloaded.

    image = np.asarray(Image.open(os.path.join(data_dir, name)).convert("RGB"))
    done = copies_task(image, 1_000_000 + PHOTOGRAPHS.index(name))
    return done and {**done, "name": name}


def unrelated_task(index: int) -> tuple[np.ndarray, int, int]:
    image = unrelated_picture(index)
    codes8, quality = dihedral_codes(image)
    return codes8, quality, phash_int(image)


def _mapped(function, items, workers: int, chunksize: int = 8):
    if workers <= 1:
        return [function(item) for item in items]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(function, items, chunksize=chunksize)


# ---- 1. Cost ----------------------------------------------------------------------------------


def cost_rows(sizes=((600, 800), (3000, 4000)), repeats: int = 5) -> list[dict]:
    """Median ms per image of each hash on the same array (a generated scene, upscaled, grained)."""
    rows = []
    for h, w in sizes:
        rng = np.random.default_rng([9, h, w])
        base = cv2.resize(scene(rng, 480, 640), (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        image = np.clip(base + rng.integers(-6, 7, (h, w, 3), dtype=np.int16), 0, 255).astype(np.uint8)
        small = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)

        def copy_512(image=image):
            scale = 512 / max(image.shape[:2])
            return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image

        work = {
            "PDQ (`pdq_of`)": lambda image=image: pdq_of(image),
            "PDQ, 8 dihedral hashes (`compute_dihedral`)": lambda image=image: dihedral_codes(image),
            "pHash (`perceptual_hash`), same full-size array": lambda image=image: perceptual_hash(image),
            "PDQ of a copy at most 512 px (resize counted)": lambda copy_512=copy_512: pdq_of(copy_512()),
            "pHash of a 224 px copy, as served (resize not counted)": lambda small=small: perceptual_hash(small),
        }
        row = {"size": f"{w}x{h}"}
        for name, call in work.items():
            call()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
            row[name] = statistics.median(times)
        full, reduced = pdq_of(image), pdq_of(copy_512())
        row["bits apart, full vs 512 px PDQ"] = int(hamming(codes([full.hash]), codes([reduced.hash]))[0, 0])
        rows.append(row)
    return rows


# ---- 2. Lookup ----------------------------------------------------------------------------------


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _reset_peak() -> None:
    """Start the kernel's peak resident size (VmHWM) afresh, where Linux lets a process."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


INDEXES = {
    "hash": "`HashIndex` (multi-index hashing: 12 x 21 bits, 2 flips)",
    "flat": "brute force (faiss `IndexBinaryFlat`, 1 thread)",
}


def _timed_queries(search, asked: list, chosen) -> tuple[list, dict]:
    """Run `search(code) -> (hits, compared)` over the chosen queries: the hits, and the times."""
    for i in chosen[:10]:  # Warm.
        search(asked[i][0])
    times, cpu, found, compared = [], [], {}, 0
    for i in chosen:
        started, started_cpu = time.perf_counter(), time.thread_time()
        found[i], count = search(asked[i][0])
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)  # Not counting time waiting for a core.
        compared += count
    return found, {
        "queries": len(chosen),
        "median_ms": statistics.median(times),
        "p99_ms": _percentile(times, 0.99),
        "cpu_median_ms": statistics.median(cpu),
        "cpu_p99_ms": _percentile(cpu, 0.99),
        "candidates": compared / len(chosen),
    }


def lookup(size: int, queries: int = 1000, flat_queries: int = 200, seed: int = 0) -> list[dict]:
    """`HashIndex` and brute force over `size` random codes: build, memory,
    per-query times, one row each. Half the queries are planted (a stored code with 1 to 31 bits
    flipped), half random; brute force answers `flat_queries` of them, and the others must find
    exactly what it finds there."""
    rng = np.random.default_rng([seed, size])
    stored = rng.integers(0, 256, (size, BYTES), dtype=np.uint8)
    keys = np.arange(size, dtype=np.int64)
    planted = queries // 2
    asked = []
    planted_keys, planted_bits = rng.choice(size, planted, replace=False), rng.integers(1, MATCH_DISTANCE + 1, planted)
    for key, bits in zip(planted_keys, planted_bits, strict=True):
        flip = np.zeros(BYTES * 8, np.uint8)
        flip[rng.choice(BYTES * 8, bits, replace=False)] = 1
        asked.append((stored[key] ^ np.packbits(flip), int(key), int(bits)))
    asked += [(rng.integers(0, 256, BYTES, dtype=np.uint8), None, None) for _ in range(queries - planted)]
    asked = [asked[i] for i in rng.permutation(len(asked))]
    every, subset = np.arange(len(asked)), np.sort(rng.choice(len(asked), min(flat_queries, len(asked)), False))

    def built(make):
        _reset_peak()
        before, started = _rss_mb(), time.perf_counter()
        index = make()
        figures = {"build_s": time.perf_counter() - started, "rss_mb": _rss_mb() - before}
        figures["peak_mb"] = max(0.0, _peak_mb() - before)
        return index, figures

    def multi_hash(code):
        return hash_index.within(code), 0  # Candidates counted below, untimed.

    def compared(code) -> int:
        """The codes `HashIndex` compares whole for `code`: the tables' candidates and the tail."""
        tables = hash_index._tables
        query = np.ascontiguousarray(code, np.uint8).reshape(1, BYTES).view(np.uint64)
        return (len(tables.candidates(query)) if tables else 0) + len(hash_index) - (tables.count if tables else 0)

    def flat_search(code):
        limits, distances, positions = flat.range_search(code.reshape(1, BYTES), MATCH_DISTANCE + 1)
        hits = sorted(zip(distances[limits[0] : limits[1]], positions[limits[0] : limits[1]], strict=True))
        return [(int(keys[p]), int(d)) for d, p in hits], size

    def add_hash():
        index = HashIndex()
        index.add(stored, keys)
        return index

    def add_flat():
        index = faiss.IndexBinaryFlat(BYTES * 8)
        index.add(stored)
        return index

    rows, answers = [], {}
    hash_index, figures = built(add_hash)
    answers["hash"], timed = _timed_queries(multi_hash, asked, every)
    timed["candidates"] = statistics.mean(compared(asked[i][0]) for i in every)
    rows.append({"index": "hash", **figures, **timed})
    flat, figures = built(add_flat)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # One thread, as the multi-hash lookup: with two, a busy core stalls both.
    try:
        answers["flat"], timed = _timed_queries(flat_search, asked, subset)
    finally:
        faiss.omp_set_num_threads(threads)
    rows.append({"index": "flat", **figures, **timed})
    for row in rows:
        found = answers[row["index"]]
        row["size"], row["planted"] = size, sum(asked[i][1] is not None for i in found)
        row["planted_found"] = sum(
            (asked[i][1], asked[i][2]) in hits for i, hits in found.items() if asked[i][1] is not None
        )
        row["random_hits"] = sum(len(hits) for i, hits in found.items() if asked[i][1] is None)
        row["agree"] = sum(found[i] == answers["flat"][i] for i in subset)
        row["compared_with_flat"] = len(subset)
    return rows


def lookup_isolated(size: int, queries: int, flat_queries: int, seed: int = 0) -> list[dict]:
    """`lookup` in a fresh process: its memory figures are its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(lookup, (size, queries, flat_queries, seed))


# ---- 3 to 5. Recall, false matches, the reviewer's gain -----------------------------------------


def make_sources(count: int, workers: int = 1) -> tuple[list[dict], int]:
    """`count` listed sources of quality > 49 with their copies; and how many were passed over."""
    kept, tried = [], 0
    while len(kept) < count:
        batch = range(tried, tried + max(8, int((count - len(kept)) * 1.15)))
        tried = batch.stop
        kept += [s for s in _mapped(source_task, batch, workers, chunksize=4) if s is not None]
    low = tried - len(kept)
    return kept[:count], low


def recall_rows(sources: list[dict]) -> list[dict]:
    """Per transform: the share of copies within 31 bits of their own source (quality > 49)."""
    rows = []
    for t, name in enumerate(TRANSFORMS):
        distances = np.array([hamming(s["copy_codes"][t], s["code"][None])[:, 0] for s in sources])  # (n, 8)
        usable = np.array([s["copy_quality"][t] > LOW_QUALITY for s in sources])
        ph = np.array(
            [phash_hamming(s["copy_phash"][t : t + 1], np.array([s["phash"]], np.uint64))[0, 0] for s in sources]
        )
        rows.append(
            {
                "transform": name,
                "count": len(sources),
                **{
                    variant: float(np.mean(usable & (distances[:, sent].min(1) <= MATCH_DISTANCE)))
                    for variant, sent in VARIANTS.items()
                },
                "median_bits": float(np.median(distances[:, 0])),
                "median_dihedral_bits": float(np.median(distances.min(1))),
                "low_quality": int((~usable).sum()),
                "phash": float(np.mean(ph <= PHASH_DISTANCE)),
            }
        )
    overall = {key: float(np.mean([r[key] for r in rows])) for key in [*VARIANTS, "phash"]}
    low = sum(r["low_quality"] for r in rows)
    rows.append({"transform": "all", "count": len(sources) * len(TRANSFORMS), **overall, "low_quality": low})
    return rows


def sweep_rows(sources: list[dict]) -> list[dict]:
    """Per change in SWEEP: plain PDQ recall within each of SWEEP_RADII, and the median bits."""
    rows = []
    for c, name in enumerate(SWEEP):
        bits = np.array([hamming(s["sweep_codes"][c], s["code"][None])[0] for s in sources])
        usable = np.array([s["sweep_quality"][c] > LOW_QUALITY for s in sources])
        row = {"change": name, "median_bits": float(np.median(bits))}
        row.update({radius: float(np.mean(usable & (bits <= radius))) for radius in SWEEP_RADII})
        rows.append(row)
    return rows


def unrelated_hashes(count: int, workers: int = 1) -> dict:
    done = _mapped(unrelated_task, range(count), workers, chunksize=64)
    return {
        "codes": np.stack([c for c, _, _ in done]),  # (count, 8, 32)
        "quality": np.array([q for _, q, _ in done]),
        "phash": np.array([p for _, _, p in done], np.uint64),
    }


def false_matches(sources: list[dict], unrelated: dict) -> dict:
    listed = np.stack([s["code"] for s in sources])
    usable = unrelated["quality"] > LOW_QUALITY
    bits = hamming(unrelated["codes"][usable], listed)  # (usable, 8, sources)
    plain, dihedral = bits[:, 0, :], bits.min(1)
    matched = {variant: int((bits[:, sent].min((1, 2)) <= MATCH_DISTANCE).sum()) for variant, sent in VARIANTS.items()}
    ph = phash_hamming(unrelated["phash"][usable], np.array([s["phash"] for s in sources], np.uint64))
    among = hamming(listed, listed)[np.triu_indices(len(listed), 1)]
    return {
        "unrelated": len(unrelated["quality"]),
        "usable": int(usable.sum()),
        "pairs": plain.size,
        "matched": matched,
        "phash_matched": int((ph.min(1) <= PHASH_DISTANCE).sum()),
        "plain_percentiles": np.percentile(plain, [0, 0.01, 0.1, 1, 5, 50]).tolist(),
        "dihedral_percentiles": np.percentile(dihedral, [0, 0.01, 0.1, 1, 5, 50]).tolist(),
        "sources_min": int(among.min()) if among.size else None,
    }


def reviewer_gain(sources: list[dict], unrelated: dict, size: int = 1000, repeat_share: float = 0.3) -> dict:
    """A collection of `size` images, `repeat_share` of them transformed copies of listed gore
    images (a random source, a random transform), the rest new. Every image needs a review;
    without the lists each is revealed, with them the ones matched are reviewed from the match."""
    rng = np.random.default_rng([COLLECTION, size])
    index = HashIndex()
    index.add(np.stack([s["code"] for s in sources]), np.arange(len(sources)))
    repeats = round(size * repeat_share)
    picked = [(sources[int(rng.integers(len(sources)))], int(rng.integers(len(TRANSFORMS)))) for _ in range(repeats)]
    items = [(s["copy_codes"][t], s["copy_quality"][t], True) for s, t in picked]
    news = rng.choice(len(unrelated["quality"]), min(size - repeats, len(unrelated["quality"])), replace=False)
    items += [(unrelated["codes"][i], unrelated["quality"][i], False) for i in news]
    out = {"size": len(items), "repeats": repeats}
    for variant, sent in VARIANTS.items():
        matched = [
            quality > LOW_QUALITY and any(index.within(code) for code in codes8[sent]) for codes8, quality, _ in items
        ]
        out[variant] = {
            "caught": sum(m for m, (_, _, repeat) in zip(matched, items, strict=True) if repeat),
            "false": sum(m for m, (_, _, repeat) in zip(matched, items, strict=True) if not repeat),
            "reveals": len(items) - sum(matched),
        }
    return out


# ---- The report ---------------------------------------------------------------------------------


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (faiss OpenMP threads: "
        f"{faiss.omp_get_max_threads()}), {psutil.virtual_memory().total / 2**30:.0f} GiB; Python "
        f"{platform.python_version()}, faiss {faiss.__version__}, numpy {np.__version__}"
    )


def _pct(share: float) -> str:
    return f"{share:.1%}"


def print_costs(rows: list[dict]) -> None:
    names = [k for k in rows[0] if k != "size" and not k.startswith("bits")]
    print("### 1. Hashing cost per image (median ms; both hashes on the same full-size RGB array)\n")
    print("| hash | " + " | ".join(r["size"] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{r[name]:.1f}" for r in rows) + " |")
    print(
        "\nThe pipeline computes pHash on the classifier's small copy (last row); the first rows "
        "compare the two hashes on equal terms. PDQ of a copy at most 512 px apart from the "
        "full-size hash: " + ", ".join(f"{r['size']}: {r['bits apart, full vs 512 px PDQ']} bits" for r in rows) + "."
    )


def print_lookup(rows: list[dict]) -> None:
    print(f"\n### 2. Lookup at distance {MATCH_DISTANCE} (random 256-bit hashes; per query, one thread)\n")
    print(
        "| hashes | index | build s | RSS added MB (peak) | queries | median ms | p99 ms | CPU median (p99) ms "
        "| codes compared | planted found | same as brute force |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']:,} | {INDEXES[r['index']]} | {r['build_s']:.2f} | {r['rss_mb']:,.0f} ({r['peak_mb']:,.0f}) "
            f"| {r['queries']:,} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} "
            f"| {r['cpu_median_ms']:.3f} ({r['cpu_p99_ms']:.3f}) | {r['candidates']:,.0f} "
            f"| {r['planted_found']}/{r['planted']} | {r['agree']}/{r['compared_with_flat']} |"
        )
    stray = sum(r["random_hits"] for r in rows)
    last = max((r for r in rows if r["index"] == "hash"), key=lambda r: r["size"])
    print(
        f"\nHalf the queries are planted near-duplicates (1 to {MATCH_DISTANCE} bits from a stored hash), "
        f"half random ({stray} hits among the random ones); brute force answers a random subset, and "
        "the others must return the same keys at the same distances there. Wall-clock times count "
        "the time spent waiting for a core when other work shares the machine; CPU is the lookup "
        "thread's own CPU time. Codes compared: the candidates per query whose full 256 bits are "
        "checked. An image queried with its mirror's hash too (as the service does) costs "
        f"2 lookups, with its 8 dihedral hashes 8: with `HashIndex` at {last['size']:,}, about "
        f"{2 * last['cpu_median_ms']:.0f} and {8 * last['cpu_median_ms']:.0f} ms of CPU (storing the 8 "
        "hashes of every listed image instead would multiply the index's memory by 8)."
    )


def print_recall(rows: list[dict], title: str, note: str) -> None:
    print(f"\n{title}\n")
    print(
        "| transform | PDQ plain | PDQ plain + mirror | PDQ dihedral | median bits (plain) | median bits (dihedral) "
        f"| copies of quality <= {LOW_QUALITY} | pHash <= {PHASH_DISTANCE} of 64 (today) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        median = f"{r['median_bits']:.0f} | {r['median_dihedral_bits']:.0f}" if "median_bits" in r else "| "
        print(
            f"| {r['transform']} | {' | '.join(_pct(r[v]) for v in VARIANTS)} | {median} "
            f"| {r['low_quality']} | {_pct(r['phash'])} |"
        )
    print(f"\n{note}")


def print_sweep(rows: list[dict], photos: list[dict]) -> None:
    print("\n#### How far plain PDQ bends (informative; the same images)\n")
    print(
        "| change | generated: median bits | "
        + " | ".join(f"within {r}" for r in SWEEP_RADII)
        + f" | photographs: median bits | within {MATCH_DISTANCE} |"
    )
    print("|---|---|" + "---|" * len(SWEEP_RADII) + "---|---|")
    for r, p in zip(rows, photos, strict=True):
        print(
            f"| {r['change']} | {r['median_bits']:.0f} | "
            + " | ".join(_pct(r[x]) for x in SWEEP_RADII)
            + f" | {p['median_bits']:.0f} | {_pct(p[MATCH_DISTANCE])} |"
        )
    print(
        "\n`HashIndex` is exact up to 35 bits (12 pieces, two bits flipped); a wider radius would need "
        "another index, and any radius its own false-match check (section 4)."
    )


def print_false(f: dict) -> None:
    print(f"\n### 4. False matches: {f['unrelated']:,} unrelated generated images against the sources\n")
    print(f"| measure | {' | '.join(f'PDQ {v}' for v in VARIANTS)} | pHash <= {PHASH_DISTANCE} (today) |")
    print("|---|" + "---|" * (len(VARIANTS) + 1))
    matched = " | ".join(str(f["matched"][v]) for v in VARIANTS)
    print(f"| unrelated images matching a source | {matched} | {f['phash_matched']} |")
    labels = ("min", "0.01%", "0.1%", "1%", "5%", "median")
    for label, p, d in zip(labels, f["plain_percentiles"], f["dihedral_percentiles"], strict=True):
        print(f"| bits apart, unrelated pairs: {label} | {p:.0f} | | {d:.0f} | |")
    print(
        f"\n{f['usable']:,} of them have quality > {LOW_QUALITY} (the others are never matched); "
        f"{f['pairs']:,} unrelated pairs; the closest two sources are {f['sources_min']} bits apart."
    )


def print_gain(g: dict) -> None:
    print(f"\n### 5. The reviewer's gain: {g['size']:,} images, {g['repeats']} of them copies of listed gore\n")
    print("| lists | reveals | reviewed from the match | avoided | copies caught | new images matched |")
    print("|---|---|---|---|---|---|")
    print(f"| none | {g['size']} | 0 | 0% | - | - |")
    for mode in VARIANTS:
        m = g[mode]
        matched = g["size"] - m["reveals"]
        print(
            f"| PDQ {mode} | {m['reveals']} | {matched} | {_pct(matched / g['size'])} "
            f"| {m['caught']}/{g['repeats']} | {m['false']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes: a smoke run.")
    parser.add_argument("--sizes", type=int, nargs="+", help="Index sizes (default 10k, 1M, 10M).")
    parser.add_argument("--sources", type=int, help="Listed source images (default 300).")
    parser.add_argument("--unrelated", type=int, help="Unrelated images (default 10,000).")
    parser.add_argument("--collection", type=int, help="The reviewer's collection (default 1,000).")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Processes generating images.")
    args = parser.parse_args()
    quick = args.quick
    sizes = args.sizes or ([10_000, 100_000] if quick else [10_000, 1_000_000, 10_000_000])
    sources_count = args.sources or (40 if quick else 300)
    unrelated_count = args.unrelated or (500 if quick else 10_000)
    collection = args.collection or (200 if quick else 1000)

    began = time.perf_counter()
    print(machine() + "; load average at the start: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(f"`{' '.join(['hashes_bench.py'] + sys.argv[1:])}`\n")
    print_costs(cost_rows(repeats=3 if quick else 5))
    sys.stdout.flush()
    rows = []
    for size in sizes:
        queries = 200 if quick else 1000 if size <= 1_000_000 else 500
        flat_queries = 200 if size <= 1_000_000 else 50
        rows += lookup_isolated(size, queries, flat_queries)
    print_lookup(rows)
    sys.stdout.flush()
    sources, low = make_sources(sources_count, args.workers)
    photos = [p for p in _mapped(photograph_task, PHOTOGRAPHS, args.workers, chunksize=1) if p is not None]
    print_recall(
        recall_rows(sources),
        f"### 3. Recall: a copy within {MATCH_DISTANCE} bits of its source, quality > {LOW_QUALITY} "
        f"({len(sources)} generated sources)",
        f"Sources: one in three drawn by the demo recipe (src/pipeline/data/synthetic.py), the rest "
        f"procedural scenes; {low} generated sources of quality <= {LOW_QUALITY} were passed over "
        "(never listed). Dihedral: the copy's 8 dihedral hashes against the stored plain hash (the "
        "same as storing the 8 hashes of every listed image and querying with the plain one).",
    )
    print_recall(
        recall_rows(photos),
        f"#### The same on the {len(photos)} photographs scikit-image ships (a real-photo anchor)",
        f"Photographs: {', '.join(p['name'].split('.')[0] for p in photos)}; those of quality <= "
        f"{LOW_QUALITY} left out: {', '.join(sorted(set(PHOTOGRAPHS) - {p['name'] for p in photos})) or 'none'}.",
    )
    print_sweep(sweep_rows(sources), sweep_rows(photos))
    unrelated = unrelated_hashes(unrelated_count, args.workers)
    print_false(false_matches(sources, unrelated))
    print_gain(reviewer_gain(sources, unrelated, collection))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nwhole run: {time.perf_counter() - began:.0f} s; load average at the end: {load} "
        "(1, 5, 15 minutes: other work may have shared the CPUs)"
    )


if __name__ == "__main__":
    main()
