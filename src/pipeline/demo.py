"""`make models`: a synthetic data set, the demo profile trained on it, then registered.

DEMO MODELS: trained on synthetic images only; they are not gore detectors. The figures they
reach measure an easy synthetic task, and their metadata says so. The hyper-parameters are the
demo profile's (`models/demo.yaml`); this recipe only says what to train in which order.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import track

from pipeline.data.dataset import Dataset
from pipeline.data.synthetic import generate
from pipeline.evaluation.evaluate import evaluate_classifier, evaluate_pipeline, evaluate_segmenter
from pipeline.files import atomic_write
from pipeline.model_store.loading import stored_metadata, stored_model
from pipeline.model_store.metadata import model_name
from pipeline.model_store.onnx import ONNX_FILE, OnnxModel
from pipeline.model_store.probes import fingerprint, probe_outputs
from pipeline.model_store.registry import register_model
from pipeline.model_store.shipped import (
    FOLDER,
    MANIFEST,
    ROLES,
    ShippedModel,
    ShippedWeights,
    pack,
    recipe_digest,
    shipped_folder,
    unpack,
)
from pipeline.profiles import load_profile
from pipeline.training.trainers import train_member, train_segmenter, train_vote

PROGRESS = 1 if sys.stdout.isatty() else 2  # Keras: a progress bar in a terminal, a line per epoch in logs.


@dataclass(frozen=True)
class DemoPlan:
    """Sized for a 2-core CPU. No ImageNet weights: the segmenter trains from random weights
    first (dense masks teach an encoder fast), and each member's MobileNetV2 encoder starts from
    the segmenter's, standing in for ImageNet pretraining."""

    images: int = 480
    seed: int = 0
    mc_passes: int = 0  # MC dropout and the leak study: `gore-censor evaluate`, not the first start.


def synthetic_data(data_dir: Path, plan: DemoPlan, console: Console) -> Dataset:
    if not (data_dir / "dataset.json").is_file():
        console.print(f"synthesising {plan.images} SYNTHETIC images (seed {plan.seed})")
        steps = iter(track(range(plan.images), description="synthesising", console=console))
        generate(data_dir, plan.images, seed=plan.seed, progress=lambda _: next(steps, None)).split(
            seed=plan.seed
        ).save()
    return Dataset.load(data_dir)


def train_demo(work_dir: Path, plan: DemoPlan = DemoPlan(), console: Console | None = None) -> dict[str, str]:
    console = console or Console(stderr=True)
    work_dir = Path(work_dir)
    runs, reports = work_dir / "runs", work_dir / "report"
    started = time.perf_counter()

    def say(message: str) -> None:  # Seconds since the start: where a first start spends its time.
        console.print(f"[{time.perf_counter() - started:5.0f} s] {message}")

    profile = load_profile("demo")
    training = profile.training_plan()
    data = synthetic_data(work_dir / "data", plan, console)  # Read from disk once; every step below shares it.
    train, validation, test = (data.require(split) for split in ("train", "validation", "test"))
    gore_with_masks = {
        split: data.require(split, with_masks=True, gore_only=True) for split in ("train", "validation", "test")
    }

    say(f"training DEMO segmenter {profile.segmenter.architecture}")
    segmenter, _ = train_segmenter(
        gore_with_masks["train"],
        gore_with_masks["validation"],
        profile.segmenter,
        runs / "segmenter",
        training.segmenter,
        resume=True,
        verbose=PROGRESS,
    )
    members = []
    for spec in profile.classifier.members:
        say(f"training DEMO member {spec.name} ({spec.architecture}, {spec.loss}), encoder from the segmenter")
        member, metrics = train_member(
            train,
            validation,
            spec,
            runs / spec.name,
            training.member,
            input_size=profile.classifier.input_size,
            resume=True,
            encoder_from=segmenter,
            verbose=PROGRESS,
        )
        say(f"  validation {metrics}")
        members.append(member)
    say("training the vote")
    classifier, _ = train_vote(
        train, validation, members, input_size=profile.classifier.input_size, name="demo_classifier"
    )

    say("evaluating on the held-out synthetic test split")
    threshold, seg_threshold = profile.classifier.threshold, profile.segmenter.threshold
    cls_report = evaluate_classifier(
        classifier, test, reports / "classifier", threshold=threshold, profile=profile, mc_passes=plan.mc_passes
    )
    seg_report = evaluate_segmenter(segmenter, gore_with_masks["test"], reports / "segmenter", threshold=seg_threshold)
    pipe_report = evaluate_pipeline(  # The leak study: `gore-censor evaluate pipeline`, not the first start.
        classifier, segmenter, test, reports / "pipeline", threshold=threshold, seg_threshold=seg_threshold, leaks=False
    )
    minutes = (time.perf_counter() - started) / 60
    common = {"data": f"SYNTHETIC ({data.name}, {len(data)} images)", "train_minutes": round(minutes, 1)}
    classifier_metrics = {
        **common,
        "test": next(iter(cls_report.tables.values())),
        "pipeline_test": next(iter(pipe_report.tables.values())),
    }
    segmenter_metrics = {
        **common,
        "test": next(iter(seg_report.tables.values())),
        "pipeline_test": list(pipe_report.tables.values())[-1],
    }
    say("registering (each model loaded back and compared; ONNX copies exported and checked)")
    source = "make models: DEMO, trained on synthetic data"
    tags = {
        "classifier": register_model(
            classifier, role="classifier", profile=profile, trained=True, metrics=classifier_metrics, source=source
        ),
        "segmenter": register_model(
            segmenter, role="segmenter", profile=profile, trained=True, metrics=segmenter_metrics, source=source
        ),
    }
    say(f"registered {tags} after {minutes:.1f} minutes; reports in {reports}")
    return tags


def pack_demo(work_dir: Path, profiles_dir: Path, console: Console | None = None) -> Path:
    """`make demo-weights`: the latest demo models of the store, their ONNX copies with int8 weights,
    measured again on the synthetic test split `train_demo` held out, into <profiles>/demo-weights/."""
    console = console or Console(stderr=True)
    out = shipped_folder(profiles_dir)
    reports = Path(work_dir) / "report-packed"
    profile = load_profile("demo")
    data = Dataset.load(Path(work_dir) / "data")
    test, gore_test = data.require("test"), data.require("test", with_masks=True, gore_only=True)
    stored = {role: stored_model(f"{model_name(role, profile.name)}:latest") for role in ROLES}
    packed, models = {}, {}
    with tempfile.TemporaryDirectory(prefix="gore-pack-") as staging:
        for role, model in stored.items():
            packed[role] = pack(Path(model.path_of(ONNX_FILE)).read_bytes())
            path = Path(staging) / f"{role}.onnx"
            path.write_bytes(unpack(packed[role]))
            models[role] = OnnxModel(path, name=f"DEMO {role}, int8 weights of {model.tag}")
        console.print("evaluating the packed models on the held-out synthetic test split")
        threshold, seg_threshold = profile.classifier.threshold, profile.segmenter.threshold
        classifier, segmenter = models["classifier"], models["segmenter"]
        cls = evaluate_classifier(classifier, test, reports / "classifier", threshold=threshold, mc_passes=0)
        seg = evaluate_segmenter(segmenter, gore_test, reports / "segmenter", threshold=seg_threshold)
        pipe = evaluate_pipeline(
            classifier,
            segmenter,
            test,
            reports / "pipeline",
            threshold=threshold,
            seg_threshold=seg_threshold,
            leaks=False,
        )
        common = {"data": f"SYNTHETIC ({data.name}, {len(data)} images)", "weights": "int8 per output channel"}
        metrics = {
            "classifier": {**common, "test": first(cls), "pipeline_test": first(pipe)},
            "segmenter": {**common, "test": first(seg), "pipeline_test": list(pipe.tables.values())[-1]},
        }
        shipped = {}
        for role, model in stored.items():
            meta = stored_metadata(model).model_copy(
                update={
                    "metrics": metrics[role],
                    "source": f"models/{FOLDER}: int8 weights of {model.tag} (DEMO, trained on synthetic data)",
                    "fingerprint": fingerprint(probe_outputs(models[role])),
                }
            )
            atomic_write(out / f"{role}.npz", packed[role], mode=0o644)
            digest = hashlib.sha256(packed[role]).hexdigest()
            shipped[role] = ShippedModel(file=f"{role}.npz", sha256=digest, metadata=meta)
    made = f"{datetime.now(UTC):%Y-%m-%d}, from {', '.join(str(m.tag) for m in stored.values())}"
    manifest = ShippedWeights(profile=profile.name, recipe=recipe_digest(profiles_dir), made=made, models=shipped)
    atomic_write(out / MANIFEST, manifest.model_dump_json(indent=1), mode=0o644)
    console.print(f"wrote {out}: {sum(len(p) for p in packed.values()) / 2**20:.1f} MB; reports in {reports}")
    return out


def first(report) -> dict:
    return next(iter(report.tables.values()))
