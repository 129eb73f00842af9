"""The one place for configuration: every knob is an environment variable `GORE_<NAME>`.

Thresholds follow one rule. A profile says what its models were tuned for (`threshold` in
`models/<profile>.yaml`, recorded with each model in the store); a deployment setting
(`GORE_THRESHOLD`, `GORE_SEG_THRESHOLD`) wins over it when set; a request may ask for a
different view of its own answer.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.metrics import DROPOUT_PASSES

CensorStyle = Literal["black", "blur", "pixelate"]
REPOSITORY_PROFILES = Path(__file__).resolve().parents[2] / "models"
WEB_PREFIX = "/app"  # Where service.py mounts the web app (pipeline.web), which answers its errors as pages.
MOST_UNCERTAINTY_PASSES = 200  # Each pass is a forward pass of every member: the model service refuses more.
MOST_MARGIN = 8.0  # Model pixels: a request, a setting or a rendering never widens the mask further.


class Settings(BaseSettings):
    # Empty variables count as unset, so compose files can pass `${GORE_X:-}` through.
    model_config = SettingsConfigDict(env_prefix="GORE_", extra="ignore", env_ignore_empty=True)

    profile: str = Field("demo", description="Model profile in <profiles_dir>/<profile>.yaml.")
    profiles_dir: Path = Field(
        REPOSITORY_PROFILES, description="Folder of profile YAML files (an installed package is told where)."
    )
    classifier_model: str | None = Field(
        None, description="Model store tag of the classifier; default gore-classifier-<profile>:latest."
    )
    segmenter_model: str | None = Field(
        None, description="Model store tag of the segmenter; default gore-segmenter-<profile>:latest."
    )
    data_dir: Path = Field(Path("data"), description="Where originals, metadata and censored copies live.")

    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Gore probability at which an image is censored; default: the classifier's."
    )
    seg_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Pixel probability above which a pixel is censored; default: the segmenter's."
    )
    style: CensorStyle = Field("black", description="Default look of censored pixels.")
    margin: float = Field(
        2.0,
        ge=0.0,
        le=MOST_MARGIN,
        description="Model pixels by which the censored region is widened; 0: the thesis exactly.",
    )

    allow_untrained: bool = Field(
        False, description="Dry run: serve models that were never trained, flagging every answer."
    )

    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0, description="Most bytes one uploaded file may have.")
    max_pixels: int = Field(80_000_000, gt=0, description="Decompression-bomb guard: width * height * frames.")
    max_frames: int = Field(200, gt=0, description="Most frames (animation) or pages (TIFF) one image may have.")
    max_batch_images: int = Field(64, gt=0, description="Most files one POST /censor/batch may carry.")
    max_body_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="Most bytes of any other request body (JSON, forms); label files and uploads have their own.",
    )
    body_idle_s: float = Field(
        30.0,
        gt=0,
        description="Seconds any request body (an upload, a video, JSON) may stop arriving before the request is "
        "dropped with a 408; nothing of it is kept.",
    )

    max_images_in_flight: int = Field(
        16, gt=0, description="Most images one Censor process works on at once; more wait, then get 503."
    )
    max_pixels_in_flight: int = Field(
        160_000_000, gt=0, description="Most decoded pixels (x frames) one Censor process holds at once."
    )
    admission_wait_s: float = Field(10.0, ge=0, description="How long work over those bounds waits before 503.")
    model_retry_deadline_s: float = Field(
        30.0, gt=0, description="How long model calls are retried through connection faults before 503."
    )
    shutdown_grace_s: float = Field(
        20.0,
        gt=0,
        description="After SIGTERM, in-flight work finishes or is refused, and the process exits within this.",
    )
    probe_timeout_s: float = Field(3.0, gt=0, description="Most seconds /readyz takes before answering 503.")

    backend: Literal["auto", "keras", "onnx"] = Field(
        "auto", description="What runs the models: TensorFlow, ONNX Runtime, or auto (each model's profile)."
    )
    model_threads: int = Field(
        0, ge=0, description="CPU threads per model; 0: (cores - 1) // 2, at least 1 (the two model services share)."
    )
    censor_workers: int = Field(1, gt=0, description="Processes of the Censor service (decoding, storing, answering).")

    gpu: float = Field(0.0, ge=0.0, description="GPUs per model service; 0.5 lets both share one device.")
    max_batch_size: int = Field(8, gt=1, description="Adaptive batching: most images per model call.")
    max_latency_ms: int = Field(120_000, gt=0, description="Adaptive batching: latency budget per request.")
    request_timeout_s: int = Field(300, gt=0, description="Most seconds one request may take.")
    preflight_timeout_s: int = Field(
        900, gt=0, description="Most seconds a model service's start-up check may take to load its model."
    )

    metrics_open: bool = Field(
        True,
        description="Serve /metrics to anyone who can reach it (labels are route templates, never ids); false: "
        "only to a token with the metrics role.",
    )

    model_info_ttl_s: float = Field(
        30.0, gt=0, description="How often the Censor service asks the model services which models they serve."
    )

    uncertainty_passes: int = Field(
        DROPOUT_PASSES,
        ge=2,
        le=MOST_UNCERTAINTY_PASSES,
        description="Inference-dropout passes for a request's `uncertainty` option (thesis: 30).",
    )

    jobs_root: Path | None = Field(
        None, description="The folder collection jobs may read (paths outside it are refused); unset: jobs are off."
    )

    annotation_root: Path | None = Field(
        None,
        description="Active learning: the folder holding pools of unlabelled images and the data sets labels go "
        "into (paths outside it are refused); unset: annotation is off.",
    )
    annotation_max_pool: int = Field(
        10_000, gt=0, description="Active learning: most unlabelled images one pool may hold to be ranked."
    )

    web_session_hours: float = Field(
        12.0, gt=0, description="Web app: a sign-in lasts this long (sign-out or disabling the user ends it sooner)."
    )
    web_signin_per_minute: int = Field(
        20, ge=1, description="Web app: sign-in attempts one address may make a minute (a burst of as many)."
    )
    web_secure_cookies: bool | None = Field(
        None, description="Web app: mark cookies Secure; unset: when the request came over https."
    )
    web_page_size: int = Field(48, ge=1, le=500, description="Web app: thumbnails per gallery page.")
    web_thumbnail_px: int = Field(256, ge=64, le=1024, description="Web app: longer side of a thumbnail, in pixels.")
    web_blur_strength: int = Field(
        70,
        ge=0,
        le=100,
        description="Web app: how strongly likely-gore thumbnails are blurred and greyed (0 to "
        "100), until a user sets their own; they are made from the censored copy at every strength.",
    )
    web_duplicate_distance: int = Field(
        6, ge=0, le=32, description="Web app: perceptual-hash bits two images may differ in and be near-duplicates."
    )
    web_patch_fraction: float = Field(
        0.15, gt=0.0, le=0.5, description="Web app: side of a partial-reveal patch, as a share of the shorter side."
    )
    web_patch_budget: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="Web app: share of an image (its first frame) one person may uncover by press-and-hold "
        "before the page asks them to confirm the reveal of the original.",
    )
    web_reveal_minutes: float = Field(
        10.0, gt=0, description="Web app: how long a confirmed reveal lets the original be shown again (reloads)."
    )
    web_daily_reveal_limit: int | None = Field(
        None,
        ge=1,
        description="Web app: originals a person may reveal in a day before a break is suggested; unset: "
        "no suggestion.",
    )
    web_daily_gore_seconds: float = Field(
        600.0,
        ge=0,
        description="Web app: seconds of video gore segments a person may reveal sharp in a day (UTC); a reveal "
        "past it is refused (403). 0: no limit.",
    )

    video_max_bytes: int = Field(2 * 1024**3, gt=0, description="Video: most bytes one video file may have.")
    video_max_seconds: float = Field(
        1800.0,
        gt=0,
        description="Video: most seconds of video decoded; a longer one is refused when decoding passes it.",
    )
    video_max_frame_pixels: int = Field(
        3840 * 2160, gt=0, description="Video: most pixels one decoded frame may have (4K UHD)."
    )
    video_max_fps: float = Field(
        120.0, gt=0, description="Video: most frames per second of video time, counted on the decoded frames."
    )
    video_max_decoded_pixels: int = Field(
        400_000_000_000, gt=0, description="Video: most pixels decoded from one video in one pass (all frames)."
    )
    video_sample_fps: float = Field(
        2.0, gt=0, le=30, description="Video: frames per second classified, besides the first frame of each scene cut."
    )
    video_segment_fps: float = Field(
        10.0,
        gt=0,
        le=60,
        description="Video: frames per second segmented inside gore segments; the frames between are masked with "
        "the union of their neighbours' masks.",
    )
    video_pad_s: float = Field(
        1.0, ge=0, le=10, description="Video: seconds each gore segment is widened by, both sides."
    )

    database_url: str | None = Field(
        None,
        pattern=r"^postgres(ql)?://",
        description="Shared mode: every table (tokens, people, sessions, audit log, records, gallery index, jobs, "
        "labels) in this PostgreSQL database (14 or newer), postgresql://user:password@host:5432/name; set "
        "together with GORE_OBJECT_STORE. Unset: SQLite files in the data directory (embedded mode).",
    )
    object_store: str | None = Field(
        None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$",
        description="Shared mode: originals, segmentation maps and renderings in this S3-compatible bucket, "
        "s3://bucket/prefix (credentials: the standard AWS chain). Unset: the data directory.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="The object store's endpoint for a store other than AWS S3 (Ceph RGW, SeaweedFS, Garage)."
    )
    known_refresh_s: float = Field(
        1.0,
        ge=0.0,
        le=3600.0,
        description="Known content: how often each process looks for hash lists imported, added to, enabled or "
        "disabled (through any replica); a change is matched everywhere within this time.",
    )
    known_distance: int = Field(
        31,
        ge=0,
        le=31,
        description="Known content: PDQ bits an image may differ in from a listed hash and match it (Meta's advice: "
        "31; the index is exact up to 31).",
    )
    hash_list_max_bytes: int = Field(
        32 * 1024 * 1024,
        gt=0,
        description="Most bytes of a hash list file sent to POST /admin/hash-lists (about 450,000 PDQ hashes; the "
        "route holds the file twice over while it imports: the CLI reads larger ones as they come).",
    )
    lease_s: float = Field(
        60.0,
        ge=3.0,
        description="A claim's lease (a job's items, a video), renewed while its worker works: what a killed "
        "worker held is taken by another after at most this long.",
    )

    classifier_url: str | None = Field(None, description="Remote classifier service (one container each).")
    segmenter_url: str | None = Field(None, description="Remote segmenter service (one container each).")

    @model_validator(mode="after")
    def shared_stores_together(self) -> Settings:
        if (self.database_url is None) != (self.object_store is None):
            raise ValueError(
                "shared mode needs both GORE_DATABASE_URL and GORE_OBJECT_STORE (the records are in the "
                "database, the files they name in the object store); set both, or neither for embedded mode"
            )
        return self

    @property
    def threads_per_model(self) -> int:
        """On 2 cores one thread each served 65 images/s where the runtimes' own choice gave 51 (`make bench`)."""
        return self.model_threads or max(1, ((os.cpu_count() or 2) - 1) // 2)

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
