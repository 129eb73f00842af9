"""The record model: what the models said about an image, kept apart from how it is shown.

    ImageRecord        one per image id (SHA-256 of the bytes): the file's facts, its analyses, its reviews
      analyses[key]    one per (classifier tag, segmenter tag): written once, only ever gains information
      reviews          people's verdicts, appended, never overwritten: the latest one wins

No request changes what another client reads: a request's `threshold`, `style` and `margin`
change only its own answer. Censored copies and masks are *renderings*, derived from the
original and a stored segmentation, named by everything that decides their pixels, and never
deleted, so no record can link a missing file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

Verdict = Literal["gore", "not_gore"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Segmentation(BaseModel):
    maps: str = Field(description="File (under the image's folder) of the segmenter's maps, one per frame, uint8.")
    size: int = Field(description="Side of the square maps, the segmenter's input size.")
    segmented_at: datetime


class Analysis(BaseModel):
    classifier: str = Field(description="Model store tag of the classifier.")
    segmenter: str = Field(description="Model store tag of the segmenter.")
    classifier_threshold: float = Field(description="The gore probability the classifier was tuned for.")
    segmenter_threshold: float = Field(description="The pixel probability the segmenter was tuned for.")
    profile: str
    demo: bool
    dry_run: bool
    gore_probability: float = Field(ge=0.0, le=1.0, description="The highest of the frames' probabilities.")
    frame_probabilities: list[float] = Field(description="Each frame's gore probability, in order.")
    segmentation: Segmentation | None = Field(None, description="Made when gore was likely; never removed.")
    classified_at: datetime
    timings_ms: dict[str, float] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return analysis_key(self.classifier, self.segmenter)

    def gained(self, other: Analysis) -> Analysis:
        """This analysis with what `other` adds to it: a segmentation where there was none."""
        if self.segmentation is None and other.segmentation is not None:
            timings = {**self.timings_ms, **{k: v for k, v in other.timings_ms.items() if k not in self.timings_ms}}
            return self.model_copy(update={"segmentation": other.segmentation, "timings_ms": timings})
        return self


PDQ_LOW_QUALITY = 49  # Meta's advice: a PDQ hash of this quality or less is discarded (pipeline.known.pdq).


class Pdq(BaseModel):
    """An image's PDQ hash (pipeline.known.pdq makes it)."""

    hash: str = Field(description="PDQ hash, 64 hexadecimal digits (ThreatExchange/HMA order).")
    quality: int = Field(ge=0, le=100, description=f"PDQ quality; {PDQ_LOW_QUALITY} or less is never matched.")
    mirrored: str | None = Field(
        None, description="PDQ hash of the image mirrored left to right: a mirrored copy of a listed image matches."
    )

    @property
    def matchable(self) -> bool:
        return self.quality > PDQ_LOW_QUALITY


class Review(BaseModel):
    """A person's verdict on an image: an audited override of the models' verdict."""

    verdict: Verdict
    by: str = Field(description="Who reviewed it (the token's or the user's name).")
    at: datetime
    note: str | None = None


class ImageRecord(BaseModel):
    id: str = Field(description="SHA-256 of the uploaded bytes.")
    filename: str = Field(description="The name it was first uploaded under.")
    format: str = Field(description="Container format, e.g. JPEG, PNG, GIF.")
    width: int
    height: int
    frames: int = Field(description="Frames of an animation or pages of a TIFF; 1 for a still image.")
    durations_ms: list[int] = Field(default_factory=list, description="Each frame's display time (animations).")
    loop: int = 0
    phash: str = Field(description="64-bit pHash of the first frame (records from before PDQ group by it).")
    pdq: Pdq | None = Field(None, description="PDQ hash of the first frame: near-duplicates, hash lists.")
    first_seen: datetime
    analyses: dict[str, Analysis] = Field(default_factory=dict)
    reviews: list[Review] = Field(default_factory=list)

    def latest_analysis(self) -> Analysis | None:
        return max(self.analyses.values(), key=lambda a: a.classified_at, default=None)

    def latest_review(self) -> Review | None:
        return self.reviews[-1] if self.reviews else None

    def merged(self, other: ImageRecord) -> ImageRecord:
        """Everything both records know: analyses gain, reviews accumulate, facts stay the first's."""
        analyses = dict(self.analyses)
        for key, analysis in other.analyses.items():
            analyses[key] = analyses[key].gained(analysis) if key in analyses else analysis
        known = {(r.at, r.by, r.verdict) for r in self.reviews}
        reviews = self.reviews + [r for r in other.reviews if (r.at, r.by, r.verdict) not in known]
        update = {"analyses": analyses, "reviews": sorted(reviews, key=lambda r: r.at), "pdq": self.pdq or other.pdq}
        return self.model_copy(update=update)


def analysis_key(classifier: str, segmenter: str) -> str:
    return f"{classifier}|{segmenter}"


def gore_threshold(analysis: Analysis, deployment: float | None) -> float:
    """The gore threshold an analysis is read at: the deployment's when set, else the one its
    classifier was tuned for."""
    return analysis.classifier_threshold if deployment is None else deployment
