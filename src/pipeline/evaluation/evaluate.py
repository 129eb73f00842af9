"""The thesis' evaluations on a loaded split: the classifier (Table 13), the segmenter (Table 22)
and the served pipeline (Tables 30 and 31), each written as a report with its pictures.

The error grid shows the images a model got wrong. On real data those are gore images, so
thumbnails are heavily blurred unless `show_images` is set (synthetic data is shown as is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tf_keras

from pipeline.data.dataset import Dataset
from pipeline.evaluation.leaks import leak_study
from pipeline.evaluation.plots import plot_errors, plot_pr_curve, plot_uncertainty
from pipeline.evaluation.report import Report
from pipeline.evaluation.thresholds import threshold_study
from pipeline.imaging.mask import censor_image
from pipeline.imaging.model_input import model_batch, model_masks
from pipeline.metrics import DROPOUT_PASSES, classification_metrics, segmentation_metrics
from pipeline.profiles import Profile
from pipeline.uncertainty.dropout import mc_dropout_draws, mc_dropout_model


def evaluate_classifier(
    model: tf_keras.Model,
    data: Dataset,
    out_dir: Path,
    *,
    threshold: float,
    profile: Profile | None = None,
    mc_passes: int = DROPOUT_PASSES,
    show_images: bool = False,
) -> Report:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x, labels = model_batch(data.images(), model.input_shape[1]), data.labels()
    probabilities = model.predict(x, batch_size=16, verbose=0).ravel()
    report = Report(f"Classifier evaluation: {model.name} on {data.name} ({len(data)} images)")
    if data.synthetic:
        report.notes.append("Synthetic data: these figures say nothing about real gore.")
    report.tables[f"Table 13 columns, threshold {threshold}"] = classification_metrics(labels, probabilities, threshold)
    study = threshold_study(labels, probabilities)
    report.tables["Threshold study (precision-recall curve)"] = study
    plot_pr_curve(labels, probabilities, study, out_dir / "pr_curve.png")
    report.figures["precision-recall curve"] = "pr_curve.png"
    if profile is not None and mc_passes > 1:
        draws = mc_dropout_draws(mc_dropout_model(model, profile), x, mc_passes)
        correct = (probabilities >= threshold) == labels.astype(bool)
        plot_uncertainty(draws.std(axis=0), correct, out_dir / "mc_dropout.png")
        report.figures[f"MC-dropout uncertainty ({mc_passes} passes)"] = "mc_dropout.png"
    shown = show_images or data.synthetic
    if plot_errors(data.images(), labels, probabilities >= threshold, out_dir / "errors.png", shown):
        report.figures["false positives and false negatives" + ("" if shown else " (blurred)")] = "errors.png"
    report.write(out_dir)
    return report


def evaluate_segmenter(model: tf_keras.Model, data: Dataset, out_dir: Path, *, threshold: float) -> Report:
    """Pass the split's gore images with masks."""
    size = model.input_shape[1]
    maps = model.predict(model_batch(data.images(), size), batch_size=8, verbose=0)[..., 0]
    report = Report(f"Segmenter evaluation: {model.name} on {data.name} ({len(data)} gore images)")
    report.tables[f"Table 22 columns, threshold {threshold}"] = segmentation_metrics(
        model_masks(data.masks(), size), maps, threshold
    )
    report.write(out_dir)
    return report


def evaluate_pipeline(
    classifier: tf_keras.Model,
    segmenter: tf_keras.Model,
    data: Dataset,
    out_dir: Path,
    *,
    threshold: float,
    seg_threshold: float,
    leaks: bool = True,
) -> Report:
    """The served pipeline on full-size images: classify, segment only gore, post-process (Tables 30, 31)."""
    images = data.images()
    probabilities = classifier.predict(model_batch(images, classifier.input_shape[1]), batch_size=16, verbose=0).ravel()
    maps = segmenter.predict(model_batch(images, segmenter.input_shape[1]), batch_size=8, verbose=0)[..., 0]
    with_masks = all(s.mask for s in data.samples)
    truths = data.masks() if with_masks else [None] * len(images)
    censored, rows = [], []
    for sample, image, p, prob_map, truth in zip(data.samples, images, probabilities, maps, truths, strict=True):
        keep = (
            censor_image(image, prob_map, threshold=seg_threshold).keep
            if p >= threshold
            else np.ones(image.shape[:2], np.uint8)
        )
        censored.append(bool((keep == 0).any()))
        if truth is not None and sample.gore:  # Full-size masks differ in size: score each image, then average.
            rows.append(segmentation_metrics(truth[None], (1.0 - keep.astype(np.float32))[None], 0.5))
    report = Report(f"Pipeline evaluation: {classifier.name} then {segmenter.name} on {data.name}")
    report.tables["Table 30 columns: the pipeline as a classifier (censored = gore)"] = classification_metrics(
        data.labels(), np.array(censored, float), 0.5
    )
    if rows:
        report.tables["Table 31 columns: pipeline masks on the gore images (full size, post-processed)"] = {
            key: float(np.mean([r[key] for r in rows])) for key in rows[0]
        }
    if rows and leaks:
        report.tables["Leak and over-censoring by safety margin (model pixels) and aspect ratio"] = leak_study(
            classifier, segmenter, data, threshold=threshold, seg_threshold=seg_threshold
        )
        report.notes.append(
            "Leak: share of true gore pixels left visible (missed images count whole); over-censoring: share of "
            "non-gore pixels hidden. Table 31 uses margin 0, the thesis' post-processing."
        )
    report.write(out_dir)
    return report
