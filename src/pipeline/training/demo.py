"""`make models`: a synthetic data set, the demo profile trained on it, then registered.

DEMO MODELS: trained on synthetic images only; they are not gore detectors. The figures they
reach measure an easy synthetic task, and their metadata says so.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import track

from pipeline.data.manifest import Dataset
from pipeline.data.split import split_dataset
from pipeline.data.synthetic import generate
from pipeline.evaluation import evaluate_classifier, evaluate_pipeline, evaluate_segmenter
from pipeline.model_store import register_model
from pipeline.profiles import load_profile
from pipeline.training.trainers import TrainConfig, train_member, train_segmenter, train_vote


PROGRESS = 1 if sys.stdout.isatty() else 2  # Keras: a progress bar in a terminal, a line per epoch in logs.


@dataclass(frozen=True)
class DemoPlan:
    """Sized for a 2-core CPU and a 15-minute budget. No ImageNet weights: the segmenter trains
    from random weights first (dense masks teach an encoder fast), and each member's MobileNetV2
    encoder starts from the segmenter's, standing in for ImageNet pretraining."""

    images: int = 560
    seed: int = 0
    member: TrainConfig = TrainConfig(epochs=6, batch_size=16, learning_rate=1e-3, patience=3, weights=None, verbose=PROGRESS)
    segmenter: TrainConfig = TrainConfig(epochs=10, batch_size=8, learning_rate=1e-3, patience=5, weights=None, verbose=PROGRESS)
    mc_passes: int = 10


def train_demo(work_dir: Path, plan: DemoPlan = DemoPlan(), console: Console | None = None) -> dict[str, str]:
    console = console or Console(stderr=True)
    work_dir = Path(work_dir)
    data_dir, runs, reports = work_dir / "data", work_dir / "runs", work_dir / "report"
    started = time.perf_counter()
    profile = load_profile("demo")
    if not (data_dir / "dataset.json").is_file():
        console.print(f"synthesising {plan.images} SYNTHETIC images (seed {plan.seed})")
        steps = iter(track(range(plan.images), description="synthesising", console=console))
        dataset = generate(data_dir, plan.images, seed=plan.seed, progress=lambda _: next(steps, None))
        split_dataset(dataset, seed=plan.seed).save(data_dir)
    console.print(f"training DEMO segmenter {profile.segmenter.architecture}")
    segmenter, _ = train_segmenter(data_dir, profile.segmenter, runs / "segmenter", plan.segmenter, resume=True)
    members = []
    for spec in profile.classifier.members:
        console.print(f"training DEMO member {spec.name} ({spec.architecture}, {spec.loss}), encoder from the segmenter")
        member, metrics = train_member(data_dir, spec, runs / spec.name, plan.member, input_size=profile.classifier.input_size,
                                       resume=True, encoder_from=segmenter)
        console.print(f"  validation {metrics}")
        members.append(member)
    console.print("training the vote")
    classifier, _ = train_vote(data_dir, members, plan.member, input_size=profile.classifier.input_size, name="demo_classifier")

    console.print("evaluating on the held-out synthetic test split")
    cls_report = evaluate_classifier(classifier, data_dir, reports / "classifier", profile=profile, mc_passes=plan.mc_passes)
    seg_report = evaluate_segmenter(segmenter, data_dir, reports / "segmenter")
    pipe_report = evaluate_pipeline(classifier, segmenter, data_dir, reports / "pipeline")
    minutes = (time.perf_counter() - started) / 60
    dataset = Dataset.load(data_dir)
    common = {"data": f"SYNTHETIC ({dataset.name}, {len(dataset.samples)} images)", "train_minutes": round(minutes, 1)}
    classifier_metrics = {**common, "test": next(iter(cls_report.tables.values())),
                          "pipeline_test": next(iter(pipe_report.tables.values()))}
    segmenter_metrics = {**common, "test": next(iter(seg_report.tables.values())),
                         "pipeline_test": list(pipe_report.tables.values())[-1]}
    tags = {
        "classifier": register_model(classifier, role="classifier", profile=profile, trained=True, metrics=classifier_metrics,
                                     source="make models: DEMO, trained on synthetic data"),
        "segmenter": register_model(segmenter, role="segmenter", profile=profile, trained=True, metrics=segmenter_metrics,
                                    source="make models: DEMO, trained on synthetic data"),
    }
    console.print(f"registered {tags} after {minutes:.1f} minutes; reports in {reports}")
    return tags
