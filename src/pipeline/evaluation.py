"""Thesis-style evaluation: tables (SPEC Tables 13, 22, 30, 31), curves and plots, as a report.

The error grid shows the images a model got wrong. On real data those are gore images, so
thumbnails are heavily blurred unless `show_images` is set (synthetic data only, please).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # Files only, no display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

from pipeline.architectures import build_member, build_voting_ensemble  # noqa: E402
from pipeline.censor_mask import censor_image  # noqa: E402
from pipeline.data.manifest import Dataset, Sample, read_mask  # noqa: E402
from pipeline.metrics import classification_metrics, segmentation_metrics  # noqa: E402
from pipeline.profiles import Profile  # noqa: E402
from pipeline.training.batches import load_images, load_masks, split_samples, whole_images, whole_masks  # noqa: E402


@dataclass
class Report:
    title: str
    tables: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        lines += [f"> {note}" for note in self.notes] + ([""] if self.notes else [])
        for name, row in self.tables.items():
            lines += [f"## {name}", "", "| " + " | ".join(row) + " |", "|" + " --- |" * len(row),
                      "| " + " | ".join(f"{v:.4f}" for v in row.values()) + " |", ""]
        lines += [f"![{caption}]({path})" for caption, path in self.figures.items()]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> Path:
        path = Path(out_dir) / "report.md"
        path.write_text(self.markdown())
        return path


def threshold_study(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Thresholds at max F1 and at 90% and 95% recall (thesis 5.2.7), from the PR curve."""
    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    result = {"max_f1_threshold": float(thresholds[int(np.argmax(f1))]), "max_f1": float(f1.max())}
    for target in (0.90, 0.95):
        reaching = np.flatnonzero(recall[:-1] >= target)
        result[f"recall_{int(target * 100)}_threshold"] = float(thresholds[reaching[-1]]) if reaching.size else 0.0
    return result


def plot_pr_curve(labels: np.ndarray, probabilities: np.ndarray, study: dict[str, float], path: Path) -> None:
    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(recall, precision, label="precision-recall")
    for key, marker in (("max_f1_threshold", "o"), ("recall_90_threshold", "s"), ("recall_95_threshold", "^")):
        i = int(np.argmin(np.abs(thresholds - study[key])))
        ax.plot(recall[i], precision[i], marker, label=f"{key.replace('_threshold', '')}: t={study[key]:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mc_dropout_model(ensemble: tf_keras.Model, profile: Profile) -> tf_keras.Model:
    """The same weights with inference dropout in every member (thesis 5.2.5)."""
    members = []
    for spec in profile.classifier.members:
        member = build_member(spec.architecture, weights=None, input_size=profile.classifier.input_size,
                              inference_dropout=True, name=spec.name)
        member.set_weights(ensemble.get_layer(spec.name).get_weights())
        members.append(member)
    mc = build_voting_ensemble(members)
    mc.get_layer("vote").set_weights(ensemble.get_layer("vote").get_weights())
    return mc


def plot_uncertainty(std: np.ndarray, correct: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.boxplot([std[correct], std[~correct]], tick_labels=[f"correct ({correct.sum()})", f"wrong ({(~correct).sum()})"])
    ax.set(ylabel="MC-dropout std of gore probability")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_errors(images: list[np.ndarray], samples: list[Sample], predicted: np.ndarray, path: Path, show_images: bool) -> int:
    wrong = [i for i, s in enumerate(samples) if bool(predicted[i]) != s.gore][:24]
    if not wrong:
        return 0
    cols = 6
    fig, axes = plt.subplots((len(wrong) + cols - 1) // cols, cols, figsize=(2 * cols, 2.2 * ((len(wrong) + cols - 1) // cols)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong):
        thumb = cv2.resize(images[i], (160, 160), interpolation=cv2.INTER_AREA)
        ax.imshow(thumb if show_images else cv2.GaussianBlur(thumb, (0, 0), 12))
        ax.set_title(("false positive" if predicted[i] else "false negative"), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(wrong)


def evaluate_classifier(model: tf_keras.Model, data_dir: Path, out_dir: Path, *, profile: Profile | None = None,
                        split: str = "test", threshold: float = 0.5, mc_passes: int = 30, show_images: bool = False) -> Report:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = Dataset.load(data_dir)
    samples = split_samples(dataset, split)
    images = load_images(data_dir, samples)
    x = whole_images(images, model.input_shape[1])
    labels = np.array([s.gore for s in samples], int)
    probabilities = model.predict(x, batch_size=16, verbose=0).ravel()
    report = Report(f"Classifier evaluation: {model.name}, {split} split of {dataset.name} ({len(samples)} images)")
    if dataset.synthetic:
        report.notes.append("Synthetic data: these figures say nothing about real gore.")
    report.tables[f"Table 13 columns, threshold {threshold}"] = classification_metrics(labels, probabilities, threshold)
    study = threshold_study(labels, probabilities)
    report.tables["Threshold study (precision-recall curve)"] = study
    plot_pr_curve(labels, probabilities, study, out_dir / "pr_curve.png")
    report.figures["precision-recall curve"] = "pr_curve.png"
    if profile is not None and mc_passes > 1:
        mc = mc_dropout_model(model, profile)
        draws = np.stack([mc.predict(x, batch_size=16, verbose=0).ravel() for _ in range(mc_passes)])
        correct = (probabilities >= threshold) == labels.astype(bool)
        plot_uncertainty(draws.std(axis=0), correct, out_dir / "mc_dropout.png")
        report.figures[f"MC-dropout uncertainty ({mc_passes} passes)"] = "mc_dropout.png"
    if plot_errors(images, samples, probabilities >= threshold, out_dir / "errors.png", show_images or dataset.synthetic):
        report.figures["false positives and false negatives" + ("" if show_images or dataset.synthetic else " (blurred)")] = "errors.png"
    report.write(out_dir)
    return report


def _gore_with_masks(dataset: Dataset, split: str) -> list[Sample]:
    return [s for s in split_samples(dataset, split, with_masks=True) if s.gore]


def evaluate_segmenter(model: tf_keras.Model, data_dir: Path, out_dir: Path, *, split: str = "test", threshold: float = 0.5) -> Report:
    dataset = Dataset.load(data_dir)
    samples = _gore_with_masks(dataset, split)
    size = model.input_shape[1]
    x = whole_images(load_images(data_dir, samples), size)
    masks = whole_masks(load_masks(data_dir, samples), size)
    report = Report(f"Segmenter evaluation: {model.name}, {split} split of {dataset.name} ({len(samples)} gore images)")
    report.tables[f"Table 22 columns, threshold {threshold}"] = segmentation_metrics(masks, model.predict(x, batch_size=8, verbose=0)[..., 0], threshold)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    report.write(out_dir)
    return report


def evaluate_pipeline(classifier: tf_keras.Model, segmenter: tf_keras.Model, data_dir: Path, out_dir: Path, *,
                      split: str = "test", threshold: float = 0.5, seg_threshold: float = 0.5) -> Report:
    """The served pipeline on full-size images: classify, segment only gore, post-process (Tables 30, 31)."""
    dataset = Dataset.load(data_dir)
    samples = split_samples(dataset, split)
    images = load_images(data_dir, samples)
    probabilities = classifier.predict(whole_images(images, classifier.input_shape[1]), batch_size=16, verbose=0).ravel()
    maps = segmenter.predict(whole_images(images, segmenter.input_shape[1]), batch_size=8, verbose=0)[..., 0]
    with_masks = all(s.mask for s in samples)
    censored, rows = [], []
    for sample, image, p, prob_map in zip(samples, images, probabilities, maps):
        keep = censor_image(image, prob_map, threshold=seg_threshold).keep if p >= threshold else np.ones(image.shape[:2], np.uint8)
        censored.append(bool((keep == 0).any()))
        if with_masks and sample.gore:  # Full-size masks differ in size: score each image, then average.
            truth = read_mask(Path(data_dir) / sample.mask)
            rows.append(segmentation_metrics(truth[None], (1.0 - keep.astype(np.float32))[None], 0.5))
    report = Report(f"Pipeline evaluation: {classifier.name} then {segmenter.name}, {split} split of {dataset.name}")
    report.tables["Table 30 columns: the pipeline as a classifier (censored = gore)"] = classification_metrics(
        [s.gore for s in samples], np.array(censored, float), 0.5)
    if rows:
        report.tables["Table 31 columns: pipeline masks on the gore images (full size, post-processed)"] = {
            key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    report.write(out_dir)
    return report
