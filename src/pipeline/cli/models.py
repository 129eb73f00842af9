"""`gore-censor models ...`: build, import, check and list the models in the BentoML model store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import ProfileOption, WeightsOption, console, fail, profile_named, reported, typer_group

models_app = typer_group("Build, import, check and list the models in the BentoML model store.")
ROLES = ("classifier", "segmenter")


OnnxOption = Annotated[
    bool, typer.Option(help="Also export for ONNX Runtime (the thesis models: about 2 minutes and 10 GB of memory).")
]


@models_app.command("build")
def build(profile: ProfileOption = None, weights: WeightsOption = "imagenet", onnx: OnnxOption = True) -> None:
    """Build a profile's models fresh and register them as UNTRAINED (servable only as a dry run)."""
    from pipeline.architectures import build_profile_model
    from pipeline.model_store.registry import register_model

    spec = profile_named(profile)
    with reported():
        for role in ROLES:
            with console.status(f"building {spec.name} {role}"):
                model = build_profile_model(spec, role, weights=None if weights == "none" else weights)
            source = f"built, encoder weights {weights}"
            tag = register_model(model, role=role, profile=spec, trained=False, source=source, with_onnx=onnx)
            console.print(f"{role}: {tag} ({model.count_params():,} parameters, untrained)")


@models_app.command("ensure")
def ensure(
    profile: ProfileOption = None,
    work_dir: Annotated[Path, typer.Option(help="Where demo training keeps its data and runs.")] = Path("build/demo"),
    keras: Annotated[
        bool,
        typer.Option(
            help="Make sure they have a Keras copy too (the keras backend, uncertainty): demo models are then "
            "trained here, not taken from the repository (ONNX only)."
        ),
    ] = False,
) -> None:
    """Make sure the store holds the profile's models: demo models come from the repository (or are trained)."""
    from pipeline.config import get_settings
    from pipeline.errors import ModelNotReady
    from pipeline.model_store.loading import TRAINING_EXTRAS, has_model, keras_available, stored_metadata, stored_model
    from pipeline.model_store.metadata import model_name
    from pipeline.model_store.shipped import FOLDER, import_shipped, read_manifest

    spec = profile_named(profile)
    missing = [role for role in ROLES if not has_model(role, spec.name)]
    if keras and not missing:
        latest = (stored_model(f"{model_name(role, spec.name)}:latest") for role in ROLES)
        missing = [
            role for role, stored in zip(ROLES, latest, strict=True) if "keras" not in stored_metadata(stored).backends
        ]
    if not missing:
        console.print(f"the store holds the {spec.name} models")
        return
    if not spec.demo:
        fail(
            f"the store has no {spec.name} {' or '.join(missing)}: import weights trained elsewhere with "
            f"`gore-censor models import --profile {spec.name} --classifier FILE --segmenter FILE`"
        )
    profiles_dir = get_settings().profiles_dir
    if not keras and read_manifest(profiles_dir) is not None:
        try:
            tags = import_shipped(profiles_dir)
        except ModelNotReady as error:
            console.print(f"[yellow]{escape(str(error))}; training them here instead[/]")
        else:
            console.print(
                f"[bold yellow]DEMO models[/] from the repository (models/{FOLDER}: int8 weights, ONNX only; "
                f"trained on SYNTHETIC data, not gore detectors): {', '.join(tags.values())}"
            )
            return
    if not keras_available():
        fail(f"training the demo models needs TensorFlow: {TRAINING_EXTRAS}")
    console.print("[bold yellow]no demo models in the store: training them on SYNTHETIC data[/]")
    from pipeline.demo import train_demo

    train_demo(work_dir, console=console)


@models_app.command("pack-demo")
def pack_demo_weights(
    work_dir: Annotated[
        Path, typer.Option(help="Where `gore-censor train demo` kept its data (the held-out test split).")
    ] = Path("build/demo"),
) -> None:
    """`make demo-weights`: the store's latest demo models, int8 weights, into the repository (models/demo-weights)."""
    from pipeline.config import get_settings
    from pipeline.demo import pack_demo

    with reported():
        pack_demo(work_dir, get_settings().profiles_dir, console=console)


@models_app.command("import")
def import_weights(
    classifier: Annotated[Path, typer.Option(help="Classifier trained elsewhere: .keras, or .h5 model or weights.")],
    segmenter: Annotated[Path, typer.Option(help="Segmenter trained elsewhere: .keras, or .h5 model or weights.")],
    profile: ProfileOption = None,
    onnx: OnnxOption = True,
) -> None:
    """Register models trained elsewhere as the profile's TRAINED models."""
    from pipeline.model_store.imports import load_weights_file
    from pipeline.model_store.registry import register_model

    spec = profile_named(profile)
    with reported():
        for role, path in (("classifier", classifier), ("segmenter", segmenter)):
            model, architecture = load_weights_file(path, spec, role)
            tag = register_model(
                model,
                role=role,
                profile=spec,
                trained=True,
                source=f"imported from {path.name}",
                architecture=architecture,
                with_onnx=onnx,
            )
            console.print(f"{role}: {tag} ({model.count_params():,} parameters)")


@models_app.command("onnx")
def add_onnx(profile: ProfileOption = None) -> None:
    """Give the profile's latest models an ONNX copy (stores from before ONNX Runtime): a new version each."""
    from pipeline.model_store.loading import load_stored, stored_metadata, stored_model
    from pipeline.model_store.metadata import model_name
    from pipeline.model_store.registry import register_model

    spec = profile_named(profile)
    with reported():
        for role in ROLES:
            stored = stored_model(f"{model_name(role, spec.name)}:latest")
            meta = stored_metadata(stored)
            if "onnx" in meta.backends:
                console.print(f"{stored.tag} has an ONNX copy already")
                continue
            tag = register_model(
                load_stored(stored),
                role=role,
                profile=spec,
                trained=meta.trained,
                metrics=meta.metrics,
                source=f"{meta.source}; ONNX copy added to {stored.tag}",
                architecture=None if meta.spec is not None else meta.architecture,
            )
            console.print(f"{role}: {tag} (the weights of {stored.tag}, with an ONNX copy)")


@models_app.command("check")
def check(
    tag: Annotated[str, typer.Argument(help="Model store tag, e.g. gore-segmenter-thesis:latest.")],
    backend: Annotated[str, typer.Option(help="keras, onnx, or auto (the model's own).")] = "auto",
) -> None:
    """Load a stored model the way a service does and check it still gives its registration outputs."""
    from pipeline.model_store.loading import stored_model, verify_stored

    with reported():
        info = verify_stored(stored_model(tag), backend)
    console.print(
        f"{info.tag} loads and gives its recorded outputs ({info.architecture}, {info.parameters:,} parameters)"
    )


@models_app.command("list")
def list_models() -> None:
    """The gore-censor models in the store, newest first."""
    import bentoml

    table = Table("tag", "profile", "role", "architecture", "parameters", "trained", "demo", "backends")
    for stored in sorted(bentoml.models.list(), key=lambda m: m.info.creation_time, reverse=True):
        meta = stored.info.metadata
        if "role" in meta:
            table.add_row(
                str(stored.tag),
                meta["profile"],
                meta["role"],
                meta["architecture"],
                f"{meta['parameters']:,}",
                str(meta["trained"]),
                str(meta["demo"]),
                ", ".join(meta.get("backends", ["keras"])),
            )
    out = Console()
    if not out.is_terminal:  # Piped or captured: full tags, not cut to 80 columns.
        out.width = 250
    out.print(table)
