"""The routes mounted beside the BentoML APIs: one module per sub-app (images, admin, jobs,
annotation, videos), each with its OpenAPI description (`PATHS`, `SCHEMAS`) beside its routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pipeline.serving.routes import admin, annotation, images, jobs, videos

SUB_APPS = (images, admin, jobs, annotation, videos)


def described_paths() -> dict[str, Any]:
    """Every mounted route's OpenAPI path item, for the one API description."""
    return {path: item for module in SUB_APPS for path, item in module.PATHS.items()}


def described_schemas() -> tuple[type[BaseModel], ...]:
    return tuple(model for module in SUB_APPS for model in module.SCHEMAS)
