"""`gore-censor`: put models into the store, and censor files without a server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli_data import data_app
from pipeline.cli_train import evaluate_app, train_app
from pipeline.config import get_settings

app = typer.Typer(help="Gore classification and censoring.", no_args_is_help=True, pretty_exceptions_enable=False)
models_app = typer.Typer(help="Build, import and list the models in the BentoML model store.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
console = Console(stderr=True, soft_wrap=True)

ProfileOption = Annotated[str, typer.Option(help="Model profile: a file models/<name>.yaml.")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


@models_app.command("build")
def build(
    profile: ProfileOption = "demo",
    weights: Annotated[str, typer.Option(help="Encoder weights: 'imagenet' (needs network) or 'none'.")] = "imagenet",
) -> None:
    """Build a profile's models fresh and register them as UNTRAINED (servable only as a dry run)."""
    from pipeline.errors import WeightsUnavailable
    from pipeline.model_store import build_profile_model, register_model
    from pipeline.profiles import load_profile

    try:
        spec = load_profile(profile)
        for role in ("classifier", "segmenter"):
            with console.status(f"building {profile} {role}"):
                model = build_profile_model(spec, role, weights=None if weights == "none" else weights)
            tag = register_model(model, role=role, profile=spec, trained=False, source=f"built, encoder weights {weights}")
            console.print(f"{role}: {tag} ({model.count_params():,} parameters, untrained)")
    except (ValueError, WeightsUnavailable) as error:
        raise _fail(str(error)) from None


@models_app.command("ensure")
def ensure(
    profile: ProfileOption = "demo",
    work_dir: Annotated[Path, typer.Option(help="Where demo training keeps its data and runs.")] = Path("build/demo"),
) -> None:
    """Make sure the store holds the profile's models: demo models are trained if missing."""
    import bentoml

    from pipeline.model_store import model_name

    def stored(role: str) -> bool:
        try:
            return bool(bentoml.models.list(model_name(role, profile)))
        except bentoml.exceptions.NotFound:
            return False

    missing = [role for role in ("classifier", "segmenter") if not stored(role)]
    if not missing:
        console.print(f"the store holds the {profile} models")
        return
    if profile != "demo":
        raise _fail(
            f"the store has no {profile} {' or '.join(missing)}: import weights trained elsewhere with "
            f"`gore-censor models import --profile {profile} --classifier FILE --segmenter FILE`"
        )
    console.print("[bold yellow]no demo models in the store: training them on SYNTHETIC data (about 15 minutes)[/]")
    from pipeline.training.demo import train_demo

    train_demo(work_dir, console=console)


@models_app.command("import")
def import_weights(
    classifier: Annotated[Path, typer.Option(help="Classifier trained elsewhere: .keras, or .h5 model or weights.")],
    segmenter: Annotated[Path, typer.Option(help="Segmenter trained elsewhere: .keras, or .h5 model or weights.")],
    profile: ProfileOption = "thesis",
) -> None:
    """Register models trained elsewhere as the profile's TRAINED models."""
    from pipeline.model_store import load_weights_file, register_model
    from pipeline.profiles import load_profile

    try:
        spec = load_profile(profile)
        for role, path in (("classifier", classifier), ("segmenter", segmenter)):
            model, architecture = load_weights_file(path, spec, role)
            tag = register_model(model, role=role, profile=spec, trained=True, source=f"imported from {path.name}",
                                 architecture=architecture)
            console.print(f"{role}: {tag} ({model.count_params():,} parameters)")
    except (ValueError, FileNotFoundError) as error:
        raise _fail(str(error)) from None


@models_app.command("check")
def check(tag: Annotated[str, typer.Argument(help="Model store tag, e.g. gore-segmenter-thesis:latest.")]) -> None:
    """Load a stored model the way a service does and check it still gives its registration outputs."""
    from pipeline.errors import ModelNotReady
    from pipeline.model_store import stored_model, verify_stored

    try:
        info = verify_stored(stored_model(tag))
    except ModelNotReady as error:
        raise _fail(str(error)) from None
    console.print(f"{info.tag} loads and gives its recorded outputs ({info.architecture}, {info.parameters:,} parameters)")


@models_app.command("list")
def list_models() -> None:
    """The gore-censor models in the store, newest first."""
    import bentoml

    table = Table("tag", "profile", "role", "architecture", "parameters", "trained", "demo")
    for stored in sorted(bentoml.models.list(), key=lambda m: m.info.creation_time, reverse=True):
        meta = stored.info.metadata
        if "role" in meta:
            table.add_row(
                str(stored.tag), meta["profile"], meta["role"], meta["architecture"], f"{meta['parameters']:,}",
                str(meta["trained"]), str(meta["demo"]),
            )
    out = Console()
    if not out.is_terminal:  # Piped or captured: full tags, not cut to 80 columns.
        out.width = 250
    out.print(table)


@app.command()
def censor(
    files: Annotated[list[Path], typer.Argument(help="Image files.", exists=True, dir_okay=False)],
    threshold: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Gore probability to censor at.")] = None,
    style: Annotated[Optional[str], typer.Option(help="black, blur or pixelate.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Where results go (default GORE_DATA_DIR).")] = None,
    allow_untrained: Annotated[bool, typer.Option(help="Dry run with untrained models.")] = False,
) -> None:
    """Run the pipeline in-process and write the same JSON and files as the service; prints the JSON."""
    from pipeline.censoring import Censorer, Upload
    from pipeline.errors import ModelNotReady, PipelineError
    from pipeline.local_models import local_model
    from pipeline.metadata_store import FileSystemStore
    from pipeline.schemas import CensorOptions

    settings = get_settings()
    if style is not None and style not in ("black", "blur", "pixelate"):
        raise _fail(f"--style must be black, blur or pixelate, not {style!r}")
    try:
        classify, classifier_info = local_model(settings.classifier_tag, allow_untrained or settings.allow_untrained)
        segment, segmenter_info = local_model(settings.segmenter_tag, allow_untrained or settings.allow_untrained)
    except ModelNotReady as error:
        raise _fail(str(error)) from None
    censorer = Censorer(
        store=FileSystemStore(data_dir or settings.data_dir),
        classify=classify,
        segment=segment,
        classifier=classifier_info,
        segmenter=segmenter_info,
        seg_threshold=settings.seg_threshold,
        max_upload_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
    )
    options = CensorOptions(threshold=settings.threshold if threshold is None else threshold,
                            style=style or settings.style)
    outcomes = asyncio.run(censorer.censor([Upload(path, path.name) for path in files], options))
    failed = 0
    for path, outcome in zip(files, outcomes, strict=True):
        if isinstance(outcome, PipelineError):
            failed += 1
            console.print(f"[red]error:[/] {outcome}", markup=True, highlight=False)
        else:
            print(json.dumps(outcome.model_dump(mode="json")))
    if failed:
        raise typer.Exit(code=1)


if __name__ == "__main__":  # `python -m pipeline.cli`: what the services' start-up check runs.
    app()
