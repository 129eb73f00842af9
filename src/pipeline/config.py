"""The one place for configuration: every knob is an environment variable `GORE_<NAME>`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CensorStyle = Literal["black", "blur", "pixelate"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GORE_", extra="ignore")

    profile: str = Field("demo", description="Model profile in models/<profile>.yaml.")
    classifier_model: str | None = Field(
        None, description="Model store tag of the classifier; default gore-classifier-<profile>:latest."
    )
    segmenter_model: str | None = Field(
        None, description="Model store tag of the segmenter; default gore-segmenter-<profile>:latest."
    )
    data_dir: Path = Field(Path("data"), description="Where originals, metadata and censored copies live.")

    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Gore probability at which an image is censored.")
    seg_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Pixel probability above which a pixel is censored.")
    style: CensorStyle = "black"

    allow_untrained: bool = Field(
        False, description="Dry run: serve models that were never trained, flagging every answer."
    )

    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_pixels: int = Field(80_000_000, gt=0, description="Decompression-bomb guard: width * height.")
    max_batch_images: int = Field(64, gt=0, description="Most files one POST /censor/batch may carry.")

    gpu: float = Field(0.0, ge=0.0, description="GPUs per model service; 0.5 lets both share one device.")
    max_batch_size: int = Field(8, gt=1, description="Adaptive batching: most images per model call.")
    max_latency_ms: int = Field(120_000, gt=0, description="Adaptive batching: latency budget per request.")
    request_timeout_s: int = Field(300, gt=0)
    preflight_timeout_s: int = Field(
        900, gt=0, description="Most seconds a model service's start-up check may take to load its model."
    )

    classifier_url: str | None = Field(None, description="Remote classifier service (one container each).")
    segmenter_url: str | None = Field(None, description="Remote segmenter service (one container each).")

    @property
    def classifier_tag(self) -> str:
        return self.classifier_model or f"gore-classifier-{self.profile}:latest"

    @property
    def segmenter_tag(self) -> str:
        return self.segmenter_model or f"gore-segmenter-{self.profile}:latest"

    def model_resources(self) -> dict[str, float]:
        return {"gpu": self.gpu} if self.gpu > 0 else {"cpu": 1}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
