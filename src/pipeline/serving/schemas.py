"""Every request and response of the service, as pydantic models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pipeline.config import CensorStyle

DEMO_NOTICE = (
    "DEMO MODELS: trained on synthetic images only. They are not gore detectors; do not rely on them to protect anyone."
)
DRY_RUN_NOTICE = "DRY RUN: the models were never trained; probabilities and masks are meaningless."


class ModelTags(BaseModel):
    classifier: str = Field(description="Model store tag of the classifier that scored the image.")
    segmenter: str = Field(description="Model store tag of the segmenter (used only when gore is true).")


class CensorOptions(BaseModel):
    """What one request asks for; the deployment's settings fill in what it leaves out."""

    threshold: float = Field(ge=0.0, le=1.0, description="Gore probability at which the image is censored.")
    style: CensorStyle = Field(description="How censored pixels look: black, blur or pixelate.")


class CensorResult(BaseModel):
    """The metadata JSON for one image, stored as <id>.json beside the original."""

    id: str = Field(description="SHA-256 of the uploaded bytes.")
    filename: str
    width: int
    height: int
    gore_probability: float = Field(ge=0.0, le=1.0)
    gore: bool = Field(description="gore_probability >= threshold: blur or withhold this image by default.")
    threshold: float
    seg_threshold: float = Field(description="Pixel probability above which a pixel is censored.")
    style: CensorStyle
    censored: str | None = Field(description="URL path of the censored copy (PNG), or null when gore is false.")
    mask: str | None = Field(description="URL path of the gore mask (PNG, 255 = censored), or null.")
    censored_fraction: float | None = Field(description="Share of pixels censored; null when not segmented.")
    phash: str = Field(description="Perceptual hash of the original, for grouping near-duplicates.")
    models: ModelTags
    profile: str
    demo: bool = Field(description="True when demo models (synthetic training data) made this result.")
    dry_run: bool = Field(description="True when untrained models made this result.")
    notice: str | None = None
    timings_ms: dict[str, float]
    created_at: datetime


class BatchItem(BaseModel):
    """One file of a batch: its result, or its own error; other files are unaffected."""

    filename: str
    status: int = Field(description="HTTP status this file would have had on its own.")
    result: CensorResult | None = None
    error: str | None = None
