"""`gore-censor evaluate ...`: thesis-style reports of the profile's stored models on a data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DataArgument, ProfileOption, profile_named, reported, typer_group
from pipeline.metrics import DROPOUT_PASSES

evaluate_app = typer_group("Thesis-style reports: tables, PR curve, uncertainty, errors.")

SplitOption = Annotated[str, typer.Option(help="Which split to evaluate on: train, validation or test.")]
ThresholdOption = Annotated[
    float | None, typer.Option(min=0.0, max=1.0, help="Decision threshold; default: what the model was tuned for.")
]


def _stored(role: str, profile: str):
    """The profile's latest stored model and its metadata (untrained ones too: reports say what they measure)."""
    from pipeline.model_store.loading import load_for_serving, stored_model
    from pipeline.model_store.metadata import model_name

    return load_for_serving(stored_model(f"{model_name(role, profile)}:latest"), allow_untrained=True)


def _split(data: Path, split: str, **kwargs):
    from pipeline.data.dataset import Dataset

    return Dataset.load(data).require(split, **kwargs)


@evaluate_app.command("classifier")
def evaluate_classifier(
    data: DataArgument,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("report/classifier"),
    profile: ProfileOption = None,
    split: SplitOption = "test",
    threshold: ThresholdOption = None,
    mc_passes: Annotated[int, typer.Option(help="Monte Carlo dropout passes (0: skip).")] = DROPOUT_PASSES,
    show_images: Annotated[
        bool, typer.Option(help="Show the error grid unblurred (on real data these are gore).")
    ] = False,
) -> None:
    """Table 13 columns, the precision-recall curve with the max-F1 / 90% / 95% recall thresholds,
    MC-dropout uncertainty of right and wrong answers, and a grid of errors (blurred unless --show-images)."""
    from pipeline.evaluation.evaluate import evaluate_classifier as run

    spec = profile_named(profile)
    with reported():
        model, info = _stored("classifier", spec.name)
        report = run(
            model,
            _split(data, split),
            out,
            threshold=info.threshold if threshold is None else threshold,
            profile=spec,
            mc_passes=mc_passes,
            show_images=show_images,
        )
    print(report.markdown())


@evaluate_app.command("segmenter")
def evaluate_segmenter(
    data: DataArgument,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("report/segmenter"),
    profile: ProfileOption = None,
    split: SplitOption = "test",
    threshold: ThresholdOption = None,
) -> None:
    """Table 22 columns on the split's gore images."""
    from pipeline.evaluation.evaluate import evaluate_segmenter as run

    spec = profile_named(profile)
    with reported():
        model, info = _stored("segmenter", spec.name)
        report = run(
            model,
            _split(data, split, with_masks=True, gore_only=True),
            out,
            threshold=info.threshold if threshold is None else threshold,
        )
    print(report.markdown())


@evaluate_app.command("pipeline")
def evaluate_pipeline(
    data: DataArgument,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("report/pipeline"),
    profile: ProfileOption = None,
    split: SplitOption = "test",
    threshold: ThresholdOption = None,
) -> None:
    """Tables 30 and 31 columns: the served pipeline as a classifier, and its masks."""
    from pipeline.evaluation.evaluate import evaluate_pipeline as run

    spec = profile_named(profile)
    with reported():
        classifier, classifier_info = _stored("classifier", spec.name)
        segmenter, segmenter_info = _stored("segmenter", spec.name)
        report = run(
            classifier,
            segmenter,
            _split(data, split),
            out,
            threshold=classifier_info.threshold if threshold is None else threshold,
            seg_threshold=segmenter_info.threshold,
        )
    print(report.markdown())
