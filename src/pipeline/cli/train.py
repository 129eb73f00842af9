"""`gore-censor train ...`: the profile's models on your data, with the profile's hyper-parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import (
    DataArgument,
    ProfileOption,
    WeightsOption,
    console,
    fail,
    profile_named,
    reported,
    typer_group,
)
from pipeline.profiles import TrainingSpec

train_app = typer_group("Train the profile's models on your data (dataset.json with a split).")

RunsOption = Annotated[Path, typer.Option(help="Runs folder: each run keeps <runs>/<profile>/<name>/.")]
EpochsOption = Annotated[int | None, typer.Option(help="Most epochs; default: the profile's.")]
BatchOption = Annotated[int | None, typer.Option(help="Images per batch; default: the profile's.")]
RateOption = Annotated[float | None, typer.Option(help="Adam learning rate; default: the profile's.")]
PatienceOption = Annotated[int | None, typer.Option(help="Early-stopping patience in epochs; default: the profile's.")]
ResumeOption = Annotated[bool, typer.Option(help="Continue the run from its last weights.")]


def _spec(spec: TrainingSpec, **overrides) -> TrainingSpec:
    """The profile's hyper-parameters, with what the command line set instead."""
    names = {"weights": "encoder_weights"}
    return spec.model_copy(update={names.get(k, k): v for k, v in overrides.items() if v is not None})


def _load(data: Path):
    from pipeline.data.dataset import Dataset

    with reported():
        return Dataset.load(data)


@train_app.command("member")
def member(
    data: DataArgument,
    name: Annotated[str, typer.Option(help="Member name in the profile.")],
    profile: ProfileOption = None,
    runs: RunsOption = Path("runs"),
    epochs: EpochsOption = None,
    batch_size: BatchOption = None,
    learning_rate: RateOption = None,
    patience: PatienceOption = None,
    weights: WeightsOption = None,
    resume: ResumeOption = False,
) -> None:
    """One classifier member, early-stopped on validation Double F1 (thesis: lr 1e-5, <= 1000 epochs, patience 300)."""
    from pipeline.training.trainers import BEST, train_member

    spec = profile_named(profile)
    members = {m.name: m for m in spec.classifier.members}
    if name not in members:
        fail(f"{name!r} is not a member of {spec.name}: {sorted(members)}")
    with reported():
        training = _spec(
            spec.training_plan().member,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience,
            weights=weights,
        )
        dataset = _load(data)
        _, metrics = train_member(
            dataset.require("train"),
            dataset.require("validation"),
            members[name],
            runs / spec.name / name,
            training,
            input_size=spec.classifier.input_size,
            resume=resume,
        )
    console.print(f"best checkpoint: {runs / spec.name / name / BEST}; validation {metrics}")


@train_app.command("vote")
def vote(data: DataArgument, profile: ProfileOption = None, runs: RunsOption = Path("runs")) -> None:
    """The vote on the members' best checkpoints; registers the profile's TRAINED classifier."""
    from pipeline.model_store.registry import register_model
    from pipeline.training.trainers import load_member, train_vote

    spec = profile_named(profile)
    with reported():
        dataset = _load(data)
        size = spec.classifier.input_size
        members = [load_member(runs / spec.name / m.name, m, input_size=size) for m in spec.classifier.members]
        ensemble, metrics = train_vote(
            dataset.require("train"),
            dataset.require("validation"),
            members,
            input_size=size,
            name=f"{spec.name}_classifier",
        )
        tag = register_model(
            ensemble,
            role="classifier",
            profile=spec,
            trained=True,
            metrics={"validation": metrics},
            source=f"trained on {data}",
        )
    console.print(f"{tag}: validation {metrics}")


@train_app.command("segmenter")
def segmenter(
    data: DataArgument,
    profile: ProfileOption = None,
    runs: RunsOption = Path("runs"),
    epochs: EpochsOption = None,
    batch_size: BatchOption = None,
    learning_rate: RateOption = None,
    patience: PatienceOption = None,
    weights: WeightsOption = None,
    resume: ResumeOption = False,
) -> None:
    """The segmenter on the gore images with masks, early-stopped on validation IoU; registers it TRAINED.

    Thesis: lr 5e-6, about 400 epochs, patience 100."""
    from pipeline.model_store.registry import register_model
    from pipeline.training.trainers import train_segmenter

    spec = profile_named(profile)
    with reported():
        training = _spec(
            spec.training_plan().segmenter,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience,
            weights=weights,
        )
        dataset = _load(data)
        model, metrics = train_segmenter(
            dataset.require("train", with_masks=True, gore_only=True),
            dataset.require("validation", with_masks=True, gore_only=True),
            spec.segmenter,
            runs / spec.name / "segmenter",
            training,
            resume=resume,
        )
        tag = register_model(
            model,
            role="segmenter",
            profile=spec,
            trained=True,
            metrics={"validation": metrics},
            source=f"trained on {data}",
        )
    console.print(f"{tag}: validation {metrics}")


@train_app.command("demo")
def demo(
    work_dir: Annotated[Path, typer.Option(help="Where the synthetic data, runs and reports go.")] = Path("build/demo"),
) -> None:
    """`make models`: synthesise data, train the DEMO profile on it, register the DEMO models."""
    import tf_keras

    from pipeline.demo import train_demo

    # The data is seeded; the weights' initial values are too, so the recipe gives the same models
    # on every run (unseeded, one run in four here fell short of the demo bar).
    tf_keras.utils.set_random_seed(0)
    train_demo(work_dir, console=console)
