"""How an analysed image is shown: the answer for a set of options, and its renderings.

A rendering (a censored copy or a mask) is made from the original and a stored segmentation,
named by a digest of everything that decides its pixels, made on demand and kept. Two writers
of one rendering write the same bytes, and none is ever deleted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.config import CensorStyle, Settings
from pipeline.imaging.decode import DecodedImage, decode_upload
from pipeline.imaging.encode import encode_png
from pipeline.imaging.mask import apply_mask, full_size_mask, keep_mask
from pipeline.known.matcher import Matcher, known_gore
from pipeline.serving.schemas import (
    DEMO_NOTICE,
    DRY_RUN_NOTICE,
    CensorOptions,
    CensorResult,
    ModelTags,
    snap_margin,
)
from pipeline.stores.hash_lists import KnownMatch
from pipeline.stores.images import ImageStore
from pipeline.stores.records import Analysis, ImageRecord, Pdq, gore_threshold
from pipeline.uncertainty.served import UncertaintyResult

Kind = Literal["censored", "mask"]
RENDERING_VERSION = "mask-v2"  # Part of every rendering's name: new post-processing, new files.


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int
    max_frames: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_upload_bytes, settings.max_pixels, settings.max_frames)

    def decode(self, data: bytes, filename: str, at_least: int | None = None) -> DecodedImage:
        return decode_upload(
            data,
            filename,
            max_bytes=self.max_bytes,
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            at_least=at_least,
        )


@dataclass(frozen=True)
class Defaults:
    """The deployment's view. Unset thresholds: what the analysing models were tuned for."""

    threshold: float | None
    seg_threshold: float | None
    style: CensorStyle
    margin: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Defaults:
        return cls(settings.threshold, settings.seg_threshold, settings.style, settings.margin)

    def threshold_for(self, analysis: Analysis) -> float:
        return gore_threshold(analysis, self.threshold)

    def seg_threshold_for(self, analysis: Analysis) -> float:
        return analysis.segmenter_threshold if self.seg_threshold is None else self.seg_threshold

    def options(
        self,
        analysis: Analysis,
        threshold: float | None = None,
        style: CensorStyle | None = None,
        margin: float | None = None,
    ) -> CensorOptions:
        return CensorOptions(
            threshold=self.threshold_for(analysis) if threshold is None else threshold,
            style=style or self.style,
            margin=self.margin if margin is None else margin,
        )


def notice(analysis: Analysis) -> str | None:
    notices = ([DRY_RUN_NOTICE] if analysis.dry_run else []) + ([DEMO_NOTICE] if analysis.demo else [])
    return " ".join(notices) or None


@dataclass(frozen=True)
class Views:
    store: ImageStore
    defaults: Defaults
    limits: Limits
    matcher: Matcher | None = None
    """The hash lists of known content; None: no lists (a test's bare pipeline)."""

    def known(self, record: ImageRecord) -> list[KnownMatch]:
        """What the enabled hash lists know of this image, now. Blocks: call it in a thread."""
        if self.matcher is None:
            return []
        return self.known_hash(record.id, record.pdq)

    def known_hash(self, image_id: str, pdq: Pdq | str | None) -> list[KnownMatch]:
        """The same from an image's id and hash (a bare hex hash: the gallery index's, already known
        to be good enough to match)."""
        if self.matcher is None:
            return []
        pdq = Pdq(hash=pdq, quality=100) if isinstance(pdq, str) else pdq
        return [m for m in self.matcher.match(pdq) if m.image_id != image_id]  # Not its own review.

    def whole(self, record: ImageRecord) -> bool:
        """A listed gore image: censored whole when its segmentation finds nothing (fail closed)."""
        return known_gore(self.known(record)) is not None

    def result(
        self,
        record: ImageRecord,
        analysis: Analysis,
        options: CensorOptions,
        *,
        filename: str | None = None,
        timings_ms: dict[str, float] | None = None,
        maps: np.ndarray | None = None,
        uncertainty: UncertaintyResult | None = None,
        known: list[KnownMatch] | None = None,
    ) -> CensorResult:
        """The answer for `options`. The censoring pipeline segments every image it answers as gore;
        an older analysis read with a lower threshold than it was made for may have no
        segmentation: then it says gore with no censored copy, and clients withhold the image.
        `known`: the hash lists' matches (looked up now when not given); a gore match makes it gore."""
        known = self.known(record) if known is None else known
        listed = known_gore(known) is not None
        # Uncertainty and hash lists only ever add censoring (fail closed): a vote that could reach
        # the threshold is gore, and so is a match on a gore list, whatever the models said.
        gore = analysis.gore_probability >= options.threshold or (uncertainty is not None and uncertainty.censors)
        gore = gore or listed
        segmented = gore and analysis.segmentation is not None
        review = record.latest_review()
        model_gore = analysis.gore_probability >= self.defaults.threshold_for(analysis) or listed
        model_verdict = "gore" if model_gore else "not_gore"
        return CensorResult(
            id=record.id,
            filename=filename or record.filename,
            width=record.width,
            height=record.height,
            frames=record.frames,
            gore_probability=analysis.gore_probability,
            frame_probabilities=analysis.frame_probabilities,
            gore=gore,
            verdict=review.verdict if review else model_verdict,
            review=review,
            threshold=options.threshold,
            seg_threshold=self.defaults.seg_threshold_for(analysis),
            style=options.style,
            margin=options.margin,
            censored=f"/images/{record.id}/censored?style={options.style}&margin={options.margin:g}"
            if segmented
            else None,
            mask=f"/images/{record.id}/mask?margin={options.margin:g}" if segmented else None,
            censored_fraction=round(self.censored_fraction(record, analysis, options.margin, maps, listed), 6)
            if segmented
            else None,
            phash=record.phash,
            pdq=record.pdq,
            known=known,
            models=ModelTags(classifier=analysis.classifier, segmenter=analysis.segmenter),
            profile=analysis.profile,
            demo=analysis.demo,
            dry_run=analysis.dry_run,
            notice=notice(analysis),
            timings_ms=timings_ms if timings_ms is not None else analysis.timings_ms,
            uncertainty=uncertainty,
            created_at=analysis.classified_at,
        )

    # ---- renderings ----

    def _keeps(
        self,
        record: ImageRecord,
        analysis: Analysis,
        margin: float,
        maps: np.ndarray | None = None,
        whole: bool = False,
    ) -> list[np.ndarray]:
        """Each frame's keep mask at the original's size (1 kept, 0 censored); from `maps` (uint8,
        as stored) when given, else from the store. `whole`: a frame with no pixel censored is
        censored whole (a listed gore image, or a frame of it, the segmenter finds nothing in)."""
        assert analysis.segmentation is not None
        if maps is None:
            maps = self.store.maps(record.id, analysis.segmentation.maps)
        maps = maps.astype(np.float32) / 255.0
        threshold = self.defaults.seg_threshold_for(analysis)
        keeps = [full_size_mask(keep_mask(m, threshold), record.height, record.width, margin) for m in maps]
        if whole:
            keeps = [np.zeros_like(keep) if keep.min() > 0 else keep for keep in keeps]
        return keeps

    def censored_fraction(
        self,
        record: ImageRecord,
        analysis: Analysis,
        margin: float,
        maps: np.ndarray | None = None,
        whole: bool = False,
    ) -> float:
        return float(np.mean([1.0 - keep.mean() for keep in self._keeps(record, analysis, margin, maps, whole)]))

    def name(self, analysis: Analysis, kind: Kind, style: CensorStyle, margin: float, whole: bool = False) -> str:
        decided_by = f"{analysis.key}|{self.defaults.seg_threshold_for(analysis):.6f}|{margin:.4f}|"
        decided_by += f"{style if kind == 'censored' else ''}|{RENDERING_VERSION}" + ("|whole" if whole else "")
        return f"{kind}-{hashlib.sha256(decided_by.encode()).hexdigest()[:32]}.png"

    def rendering(
        self,
        record: ImageRecord,
        analysis: Analysis,
        kind: Kind,
        style: CensorStyle,
        margin: float,
        decoded: DecodedImage | None = None,
    ) -> bytes:
        """The PNG (APNG for several frames), from the store or made now and kept."""
        margin = snap_margin(margin)  # Kept per margin: only the grid's, so never more than a few per image.
        whole = self.whole(record)
        name = self.name(analysis, kind, style, margin, whole)
        cached = self.store.rendering(record.id, name)
        if cached is not None:
            return cached
        keeps = self._keeps(record, analysis, margin, whole=whole)
        if kind == "mask":
            frames = [((1 - keep) * 255).astype(np.uint8) for keep in keeps]
        else:
            if decoded is None:
                data, _ = self.store.original(record.id)
                decoded = self.limits.decode(data, record.filename)
            frames = [apply_mask(frame, keep, style) for frame, keep in zip(decoded.frames, keeps, strict=True)]
        png = encode_png(frames, record.durations_ms, record.loop)
        self.store.put_rendering(record.id, name, png)
        return png
