"""What every command group shares: one console, the common options, one way to fail."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.errors import PipelineError, WeightsUnavailable
from pipeline.profiles import EncoderWeights, Profile, load_profile

if TYPE_CHECKING:
    from pipeline.stores.database import TableStore

console = Console(stderr=True, soft_wrap=True)

ProfileOption = Annotated[
    str | None, typer.Option(help="Model profile, a file <profiles dir>/<name>.yaml; default: $GORE_PROFILE (demo).")
]
WeightsOption = Annotated[
    EncoderWeights | None,
    typer.Option(help="Where encoders start: 'imagenet' (needs network) or 'none' (random); default: the profile's."),
]
DataArgument = Annotated[Path, typer.Argument(help="A data set folder holding dataset.json.")]


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # '[train]' is no markup.
    raise typer.Exit(code=2)


@contextmanager
def reported() -> Iterator[None]:
    """Errors a user can cause end the command with their message, never a traceback."""
    try:
        yield
    except (ValueError, FileNotFoundError, PipelineError, WeightsUnavailable) as error:
        fail(str(error))


TRAINING_MODULES = {"tensorflow", "tf_keras", "keras", "segmentation_models", "albumentations", "tf2onnx", "skimage"}


@contextmanager
def needs_training_extras() -> Iterator[None]:
    """A command that needs TensorFlow (training, evaluation, registering, importing weights) in a
    serving-only install: one line saying what to install, not a traceback."""
    try:
        yield
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in TRAINING_MODULES:
            raise
        from pipeline.model_store.loading import TRAINING_EXTRAS

        # Outside the Typer app (it raised through it): say it, and exit as `fail` would.
        missing = f"({error.name} is not installed)"
        message = f"this command needs the training extras {missing}: {TRAINING_EXTRAS}"
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        raise SystemExit(2) from None


def profile_named(name: str | None) -> Profile:
    from pipeline.config import get_settings

    with reported():
        return load_profile(name or get_settings().profile)


def typer_group(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, pretty_exceptions_enable=False)


Tables = TypeVar("Tables", bound="TableStore")


def service_tables(store: type[Tables], data_dir: Path | None) -> Tables:
    """A table store (tokens, people) where the service keeps it: an explicit folder is that
    folder; else the shared database when GORE_DATABASE_URL is set, else $GORE_DATA_DIR."""
    from pipeline.config import get_settings

    settings = get_settings()
    return store.open(data_dir or settings.data_dir, None if data_dir else settings.database_url)
