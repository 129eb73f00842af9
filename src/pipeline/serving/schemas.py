"""Every request and response of the service, as pydantic models."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from pipeline.config import MOST_MARGIN, MOST_UNCERTAINTY_PASSES, CensorStyle
from pipeline.stores.hash_lists import KnownMatch
from pipeline.stores.records import Pdq, Review, Verdict
from pipeline.uncertainty.served import UncertaintyResult

DEMO_NOTICE = (
    "DEMO MODELS: trained on synthetic images only. They are not gore detectors; do not rely on them to protect anyone."
)
DRY_RUN_NOTICE = "DRY RUN: the models were never trained; probabilities and masks are meaningless."


class ModelTags(BaseModel):
    classifier: str = Field(description="Model store tag of the classifier that scored the image.")
    segmenter: str = Field(description="Model store tag of the segmenter (used only when gore is true).")


MARGIN_STEP = 0.5


class CensorOptions(BaseModel):
    """How one answer shows an image; the deployment's settings fill in what a request leaves out."""

    threshold: float = Field(ge=0.0, le=1.0, description="Gore probability at which the image is censored.")
    style: CensorStyle = Field(description="How censored pixels look: black, blur or pixelate.")
    margin: float = Field(
        ge=0.0,
        le=MOST_MARGIN,
        description=f"Model pixels by which the censored region is widened; rounded up to a multiple of {MARGIN_STEP}.",
    )
    uncertainty: bool = Field(False, description="Run the inference-dropout passes: mean, std; doubt censors.")
    cascade: bool = Field(False, description="Also apply the thesis' cascading rule (implies uncertainty).")

    @field_validator("margin")
    @classmethod
    def _on_the_grid(cls, margin: float) -> float:
        return snap_margin(margin)


def snap_margin(margin: float) -> float:
    """A margin on the grid of MARGIN_STEP, rounded up (more censored, never less): renderings are
    kept per margin, so a fixed set of margins keeps their number per image bounded (17)."""
    return min(MOST_MARGIN, math.ceil(round(margin / MARGIN_STEP, 6)) * MARGIN_STEP)


# The Censor service's request fields (service.py): a request may ask for its own view.
Threshold = Annotated[
    float | None,
    Field(ge=0.0, le=1.0, description="Gore probability at which to censor; default: the deployment setting."),
]
Style = Annotated[CensorStyle | None, Field(description="Look of censored pixels; default: the deployment setting.")]
Margin = Annotated[
    float | None,
    Field(
        ge=0.0,
        le=MOST_MARGIN,
        description=f"Model pixels to widen the censored region by, rounded up to a multiple of {MARGIN_STEP}; "
        "default: the deployment setting.",
    ),
]
Uncertain = Annotated[
    bool,
    Field(description="Run N inference-dropout passes (GORE_UNCERTAINTY_PASSES): mean and std; doubt censors."),
]
Cascade = Annotated[bool, Field(description="Also apply the thesis' cascading rule (WRL, then BCE members).")]
Passes = Annotated[int, Field(ge=2, le=MOST_UNCERTAINTY_PASSES, description="Inference-dropout passes.")]


class CensorResult(BaseModel):
    """One image as one answer shows it: the models' analysis seen through that answer's options.

    The stored record (GET /images/{id}) is the same view with the deployment's options; a
    request's own options never change it.
    """

    id: str = Field(description="SHA-256 of the uploaded bytes.")
    filename: str
    width: int
    height: int
    frames: int = Field(description="Frames of an animation or pages of a TIFF; 1 for a still image.")
    gore_probability: float = Field(ge=0.0, le=1.0, description="The highest of the frames' gore probabilities.")
    frame_probabilities: list[float] = Field(description="Each frame's gore probability, in order.")
    gore: bool = Field(
        description="gore_probability >= threshold, or a match on a gore hash list: blur or withhold this image."
    )
    verdict: Verdict = Field(
        description="What a gallery should do: the latest review's verdict, else the models' (or a gore list's)."
    )
    review: Review | None = Field(description="The latest person's review of this image, if any.")
    threshold: float
    seg_threshold: float = Field(description="Pixel probability above which a pixel is censored.")
    style: CensorStyle
    margin: float = Field(description="Model pixels by which the censored region is widened.")
    censored: str | None = Field(
        description="URL path of the censored copy (PNG or APNG); null when gore is false, or when no segmentation "
        "exists yet (then withhold the whole image)."
    )
    mask: str | None = Field(description="URL path of the gore mask (PNG or APNG, 255 = censored), or null.")
    censored_fraction: float | None = Field(description="Share of pixels censored; null when gore is false.")
    phash: str = Field(description="64-bit pHash of the original's first frame (older records group by it).")
    pdq: Pdq | None = Field(description="PDQ hash and quality of the original's first frame (null: older records).")
    known: list[KnownMatch] = Field(
        description="Hash lists this image is on (PDQ within 31 bits), nearest first. A match on a gore list makes "
        "the image gore whatever the models said; not_gore and info matches never remove censoring."
    )
    models: ModelTags
    profile: str
    demo: bool = Field(description="True when demo models (synthetic training data) made this result.")
    dry_run: bool = Field(description="True when untrained models made this result.")
    notice: str | None = Field(description="Why these probabilities must not be relied on (demo or untrained models).")
    timings_ms: dict[str, float]
    created_at: datetime = Field(description="When the models analysed the image.")
    uncertainty: UncertaintyResult | None = Field(
        None, description="Asked for with `uncertainty` or `cascade`: the vote's spread over inference-dropout passes."
    )


class BatchItem(BaseModel):
    """One file of a batch: its result, or its own error; other files are unaffected."""

    filename: str
    status: int = Field(description="HTTP status this file would have had on its own.")
    result: CensorResult | None = None
    error: str | None = None
    retry_after_s: int | None = Field(None, description="Set when this file may be sent again after that many seconds.")


class ErrorBody(BaseModel):
    """Every error answer: what was wrong, in words."""

    error: str
    detail: list[dict] | None = Field(None, description="Field by field, for a form that failed validation.")
