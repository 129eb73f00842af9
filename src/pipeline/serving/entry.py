"""The Censor service's composition root: its stores, the mounted sub-apps and middleware wired
from the settings, and the pipeline for the models served now. `service.py` declares the
services and hands these pieces to BentoML; the routes' work lives in `routes/`."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

from pipeline.active_learning import strategies
from pipeline.config import WEB_PREFIX, Settings
from pipeline.errors import Unavailable
from pipeline.known.matcher import Matcher
from pipeline.model_store.metadata import ModelInfo
from pipeline.serving.access import AccessGuard
from pipeline.serving.annotation import AnnotationDesk
from pipeline.serving.censorer import Capacity, Censorer
from pipeline.serving.jobs import JobRunner
from pipeline.serving.middleware import JSONErrors, PathAliases
from pipeline.serving.openapi import OpenAPIExtension
from pipeline.serving.resilience import DRAINING, Probes, with_retries
from pipeline.serving.routes import described_paths, described_schemas
from pipeline.serving.routes.admin import admin_app
from pipeline.serving.routes.annotation import MOST_LABEL_BYTES, annotation_app
from pipeline.serving.routes.images import images_app
from pipeline.serving.routes.jobs import jobs_app
from pipeline.serving.routes.videos import videos_app
from pipeline.serving.upload_guard import BodyLimit, FormSpec, UploadGuard
from pipeline.serving.videos import VideoRunner
from pipeline.serving.views import Defaults, Limits, Views
from pipeline.stores import Shared, Stores
from pipeline.stores.access import AccessStore
from pipeline.stores.images import ImageStore
from pipeline.stores.jobs import JobStore

FORM_TEXT_FIELDS = {"threshold": False, "style": False, "margin": False, "uncertainty": False, "cascade": False}
FORM_FLAGS = frozenset({"uncertainty", "cascade"})
FORM_SLACK_BYTES = 1024 * 1024  # Multipart framing and the text fields.


@dataclass(frozen=True)
class ModelClients:
    """The model services as the Censor service reaches them (BentoML's `to_async` proxies)."""

    classifier: Any
    segmenter: Any


@dataclass
class Entry:
    settings: Settings
    stores: Stores
    annotation: AnnotationDesk
    views: Views
    capacity: Capacity
    models: ModelClients | None = field(default=None, init=False)
    """The model services as this Censor worker reaches them; None until the worker has started."""
    _censorer: Censorer | None = field(default=None, init=False)
    _checked: float = field(default=0.0, init=False)
    _runner: asyncio.Task | None = field(default=None, init=False)
    _video_runner: asyncio.Task | None = field(default=None, init=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Entry:
        stores = Stores.open(settings.data_dir, settings.threshold, Shared.of(settings))
        matcher = Matcher(stores.hash_lists, settings.known_refresh_s, settings.known_distance)
        views = Views(stores.images, Defaults.from_settings(settings), Limits.from_settings(settings), matcher)
        annotation = AnnotationDesk(
            settings.annotation_root,
            settings.data_dir,
            settings.annotation_max_pool,
            settings.max_batch_images,
            settings.max_upload_bytes,
        )
        return cls(settings, stores, annotation, views, Capacity.from_settings(settings))

    @property
    def store(self) -> ImageStore:
        return self.stores.images

    @property
    def access(self) -> AccessStore:
        return self.stores.access

    @property
    def jobs(self) -> JobStore:
        return self.stores.jobs

    # ---- wiring ----

    def images_app(self) -> Starlette:
        return images_app(self.store, self.views, self.access, self.stores.hash_lists)

    def admin_app(self) -> Starlette:
        return admin_app(self.access, self.stores.hash_lists, self.settings.hash_list_max_bytes, self.views.matcher)

    def jobs_app(self) -> Starlette:
        return jobs_app(self.jobs, self.settings.jobs_root)

    def videos_app(self) -> Starlette:
        return videos_app(self.stores.videos, self.settings.video_max_bytes, self.views.matcher)

    def annotation_app(self) -> Starlette:
        return annotation_app(self.annotation, self.access, self.current_censorer)

    async def current_censorer(self) -> Censorer:
        """The pipeline of this worker's model services (the routes mounted beside the APIs use it)."""
        if self.models is None:
            raise Unavailable("the service is still starting", retry_after_s=2)
        return await self.censorer(self.models)

    def start_jobs(self, models: ModelClients) -> None:
        """In each Censor worker: read the hash lists, and work through collection jobs and videos, in
        the background until SIGTERM."""
        self.models = models  # The web app's uploads go through the same pipeline.
        if self.views.matcher is not None:
            self.views.matcher.start()  # Hash lists read from now on, not by the first request.
        if self.annotation.root is not None:
            strategies.load()  # Before the first ranking: loading it stalls the event loop.
        runner = JobRunner(
            self.jobs,
            lambda: self.censorer(models),
            self.settings.max_batch_size,
            videos=self.stores.videos,
            max_video_bytes=self.settings.video_max_bytes,
            lease_s=self.settings.lease_s,
        )
        self._runner = asyncio.get_running_loop().create_task(runner.run(DRAINING.is_set))
        videos = VideoRunner(self.stores.videos, lambda: self.censorer(models), self.settings)
        self._video_runner = asyncio.get_running_loop().create_task(videos.run(DRAINING.is_set))

    async def stop_jobs(self) -> None:
        """At shutdown (after SIGTERM): the runners end their step on their own (they watch
        DRAINING) and give back every claim they hold; awaited here, so that happens before the
        process exits, cut short (and the give-back done on cancelling) within half the grace."""
        runners = [task for task in (self._runner, self._video_runner) if task is not None]
        if not runners:
            return
        _, late = await asyncio.wait(runners, timeout=self.settings.shutdown_grace_s / 2)
        for task in late:
            task.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    def middleware(self) -> list[tuple[type, dict[str, Any]]]:
        """In the order they run: JSON errors, probes and draining, body limits, the API description,
        tokens, uploads."""
        limit, batch = self.settings.max_upload_bytes, self.settings.max_batch_images
        forms = {
            "/censor": FormSpec({"image": True, **FORM_TEXT_FIELDS}, limit + FORM_SLACK_BYTES, FORM_FLAGS),
            "/censor/batch": FormSpec(
                {"images": True, **FORM_TEXT_FIELDS},
                limit * batch + FORM_SLACK_BYTES,
                FORM_FLAGS,
            ),
        }
        bodies = {
            "/annotation/labels": MOST_LABEL_BYTES,
            WEB_PREFIX + "/upload/file": limit,
            "/videos/": self.settings.video_max_bytes,
            "/admin/hash-lists": self.settings.hash_list_max_bytes,
        }
        return [
            (JSONErrors, {"html_prefixes": (WEB_PREFIX + "/",)}),
            (PathAliases, {"aliases": {"/jobs": "/jobs/", "/videos": "/videos/", WEB_PREFIX: WEB_PREFIX + "/"}}),
            (Probes, {"timeout_s": self.settings.probe_timeout_s}),
            (
                BodyLimit,
                {
                    "default": self.settings.max_body_bytes,
                    "limits": bodies,
                    "skip": frozenset(forms),
                    "idle_s": self.settings.body_idle_s,
                },
            ),
            (OpenAPIExtension, {"most_files": batch, "routes": described_paths(), "schemas": described_schemas()}),
            (AccessGuard, {"store": self.access, "metrics_open": self.settings.metrics_open}),
            (UploadGuard, {"routes": forms, "idle_s": self.settings.body_idle_s}),
        ]

    def prepare(self) -> None:
        """Once, before the workers start: half-written files of a killed run swept away, and on
        a first start with no token, one admin token, printed here and never again. In shared mode
        other replicas' claims are left alone (their leases say when they are free again)."""
        if not self.stores.shared:
            released = self.jobs.release_claims()
            if released:
                print(f"{released} job item(s) a stopped run had claimed are pending again", file=sys.stderr)
        swept = self.store.sweep()
        if swept:
            print(f"swept {swept} half-written file(s) a stopped run left in {self.store.scratch}", file=sys.stderr)
        made = self.access.ensure_first_admin()
        if made is not None:
            print(
                f"\nFIRST START: admin token (shown once, store it now): {made.secret}\n", file=sys.stderr, flush=True
            )

    # ---- the pipeline for the models served now ----

    async def censorer(self, models: ModelClients) -> Censorer:
        """Asked again every GORE_MODEL_INFO_TTL_S: a redeployed model service is noticed, and
        results carry the tags that made them."""
        if self._censorer is None or time.monotonic() - self._checked > self.settings.model_info_ttl_s:
            deadline = self.settings.model_retry_deadline_s
            classifier = ModelInfo.model_validate(
                await with_retries(models.classifier.info, stage="classifier info", deadline_s=deadline)
            )
            segmenter = ModelInfo.model_validate(
                await with_retries(models.segmenter.info, stage="segmenter info", deadline_s=deadline)
            )
            current = self._censorer
            if current is None or (classifier, segmenter) != (current.classifier, current.segmenter):
                self._censorer = Censorer(
                    self.store,
                    models.classifier.classify,
                    models.segmenter.segment,
                    classifier,
                    segmenter,
                    self.views,
                    self.capacity,
                    sample=models.classifier.uncertainty,
                    passes=self.settings.uncertainty_passes,
                )
            self._checked = time.monotonic()
        return self._censorer
