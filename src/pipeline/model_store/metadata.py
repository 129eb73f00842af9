"""What gore-censor keeps with every model in the BentoML store, and what a service reports."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from pipeline.profiles import Backend, Role


class StoredModelMetadata(BaseModel):
    """The metadata of a model in the store (BentoML keeps it as a dict of basic types)."""

    profile: str
    role: Role
    architecture: str
    input_size: int
    threshold: float = Field(description="What the profile's model was tuned for: gore probability or pixel threshold.")
    parameters: int
    trained: bool
    demo: bool
    source: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    spec: dict[str, Any] | None = Field(
        None, description="The profile spec the model is rebuilt from on load; absent: load model.json."
    )
    fingerprint: list[float] | None = Field(
        None, description="Outputs on the probe images at registration; absent for stochastic models."
    )
    backends: list[Backend] = Field(default_factory=lambda: ["keras"], description="What the store holds it for.")
    backend: Backend = Field("keras", description="What serves it unless GORE_BACKEND says otherwise.")


class ModelInfo(BaseModel):
    """What a model service reports about the model it serves."""

    tag: str
    profile: str
    architecture: str
    input_size: int
    threshold: float
    trained: bool
    demo: bool
    parameters: int
    backend: Backend = Field("keras", description="What runs the model in this service.")

    @classmethod
    def of(cls, tag: str, meta: StoredModelMetadata) -> ModelInfo:
        return cls(tag=tag, **meta.model_dump(include=set(cls.model_fields) - {"tag"}))


def model_name(role: Role, profile: str) -> str:
    return f"gore-{role}-{profile}"
