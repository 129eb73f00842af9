"""`gore-censor train ...` and `gore-censor evaluate ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

train_app = typer.Typer(help="Train the profile's models on your data (dataset.json with a split).", no_args_is_help=True)
evaluate_app = typer.Typer(help="Thesis-style reports: tables, PR curve, uncertainty, errors.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)

Profile = Annotated[str, typer.Option(help="Model profile: models/<name>.yaml.")]
Weights = Annotated[str, typer.Option(help="Encoder start: 'imagenet' (needs network) or 'none'.")]


def _config(epochs: int, batch_size: int, learning_rate: float, patience: int, weights: str):
    from pipeline.training.trainers import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, patience=patience,
                       weights=None if weights == "none" else weights)


@train_app.command("member")
def member(data: Path, name: Annotated[str, typer.Option(help="Member name in the profile.")], profile: Profile = "thesis",
           runs: Path = Path("runs"), epochs: int = 1000, batch_size: int = 16, learning_rate: float = 1e-5,
           patience: int = 300, weights: Weights = "imagenet", resume: bool = False) -> None:
    """One classifier member (thesis: lr 1e-5, up to 1000 epochs, patience 300 on validation Double F1)."""
    from pipeline.profiles import load_profile
    from pipeline.training.trainers import BEST, train_member

    spec = load_profile(profile)
    members = {m.name: m for m in spec.classifier.members}
    if name not in members:
        raise typer.BadParameter(f"{name!r} is not a member of {profile}: {sorted(members)}")
    _, metrics = train_member(data, members[name], runs / profile / name, _config(epochs, batch_size, learning_rate, patience, weights),
                              input_size=spec.classifier.input_size, resume=resume)
    console.print(f"best checkpoint: {runs / profile / name / BEST}; validation {metrics}")


@train_app.command("vote")
def vote(data: Path, profile: Profile = "thesis", runs: Path = Path("runs")) -> None:
    """The vote on the members' best checkpoints; registers the profile's TRAINED classifier."""
    from pipeline.model_store import register_model
    from pipeline.profiles import load_profile
    from pipeline.training.trainers import TrainConfig, load_member, train_vote

    spec = load_profile(profile)
    members = [load_member(runs / profile / m.name, m, input_size=spec.classifier.input_size) for m in spec.classifier.members]
    ensemble, metrics = train_vote(data, members, TrainConfig(), input_size=spec.classifier.input_size, name=f"{profile}_classifier")
    tag = register_model(ensemble, role="classifier", profile=spec, trained=True, metrics={"validation": metrics}, source=f"trained on {data}")
    console.print(f"{tag}: validation {metrics}")


@train_app.command("segmenter")
def segmenter(data: Path, profile: Profile = "thesis", runs: Path = Path("runs"), epochs: int = 400, batch_size: int = 8,
              learning_rate: float = 5e-6, patience: int = 100, weights: Weights = "imagenet", resume: bool = False) -> None:
    """The segmenter (thesis: lr 5e-6, about 400 epochs, patience 100 on validation IoU); registers it TRAINED."""
    from pipeline.model_store import register_model
    from pipeline.profiles import load_profile
    from pipeline.training.trainers import train_segmenter

    spec = load_profile(profile)
    model, metrics = train_segmenter(data, spec.segmenter, runs / profile / "segmenter",
                                     _config(epochs, batch_size, learning_rate, patience, weights), resume=resume)
    tag = register_model(model, role="segmenter", profile=spec, trained=True, metrics={"validation": metrics}, source=f"trained on {data}")
    console.print(f"{tag}: validation {metrics}")


@train_app.command("demo")
def demo(work_dir: Path = Path("build/demo")) -> None:
    """`make models`: synthesise data, train the DEMO profile on it, register the DEMO models."""
    from pipeline.training.demo import train_demo

    train_demo(work_dir, console=console)


def _load(tag: str):
    from pipeline.model_store import load_for_serving, stored_model

    return load_for_serving(stored_model(tag), allow_untrained=True)


@evaluate_app.command("classifier")
def evaluate_classifier(data: Path, out: Path = Path("report/classifier"), profile: Profile = "demo", split: str = "test",
                        threshold: float = 0.5, mc_passes: int = 30, show_images: bool = False) -> None:
    """Table 13 columns, the precision-recall curve with the max-F1 / 90% / 95% recall thresholds,
    MC-dropout uncertainty of right and wrong answers, and a grid of errors (blurred unless --show-images)."""
    from pipeline.evaluation import evaluate_classifier as run
    from pipeline.model_store import model_name
    from pipeline.profiles import load_profile

    model, _ = _load(f"{model_name('classifier', profile)}:latest")
    report = run(model, data, out, profile=load_profile(profile), split=split, threshold=threshold, mc_passes=mc_passes,
                 show_images=show_images)
    print(report.markdown())


@evaluate_app.command("segmenter")
def evaluate_segmenter(data: Path, out: Path = Path("report/segmenter"), profile: Profile = "demo", split: str = "test",
                       threshold: float = 0.5) -> None:
    """Table 22 columns on the split's gore images."""
    from pipeline.evaluation import evaluate_segmenter as run
    from pipeline.model_store import model_name

    model, _ = _load(f"{model_name('segmenter', profile)}:latest")
    print(run(model, data, out, split=split, threshold=threshold).markdown())


@evaluate_app.command("pipeline")
def evaluate_pipeline(data: Path, out: Path = Path("report/pipeline"), profile: Profile = "demo", split: str = "test",
                      threshold: float = 0.5) -> None:
    """Tables 30 and 31 columns: the served pipeline as a classifier, and its masks."""
    from pipeline.evaluation import evaluate_pipeline as run
    from pipeline.model_store import model_name

    classifier, _ = _load(f"{model_name('classifier', profile)}:latest")
    segmenter_model, _ = _load(f"{model_name('segmenter', profile)}:latest")
    print(run(classifier, segmenter_model, data, out, split=split, threshold=threshold).markdown())
