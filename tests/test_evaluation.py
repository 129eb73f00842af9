"""Evaluation: the threshold study, the served pipeline as a classifier and as a masker, and the
leak table (how much gore a censored image still shows), on models whose answers are known
exactly (tests/red_pixel_models.py), so every figure is predicted here before it is measured."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from red_pixel_models import red_classifier, red_segmenter

from pipeline.data.dataset import Dataset, Sample
from pipeline.evaluation.evaluate import evaluate_pipeline
from pipeline.evaluation.leaks import leak_study
from pipeline.evaluation.thresholds import threshold_study

GREY, RED = (30, 30, 30), (200, 20, 20)
SIDE = 400


def test_the_threshold_study_finds_the_points_a_reader_would_by_hand():
    """Labels 0 0 1 1 1 scored 0.1 0.6 0.4 0.8 0.9: at 0.4 every gore image is caught with one false
    alarm (precision 3/4, recall 1, F1 6/7), the best F1 of the five cuts, and the highest
    threshold that still reaches 90% and 95% recall."""
    study = threshold_study(np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.6, 0.4, 0.8, 0.9]))
    assert study["max_f1_threshold"] == pytest.approx(0.4)
    assert study["max_f1"] == pytest.approx(6 / 7)
    assert study["recall_90_threshold"] == pytest.approx(0.4) and study["recall_95_threshold"] == pytest.approx(0.4)


def picture(tmp_path, name: str, red_side: int) -> Sample:
    """A grey square with a red square in its middle; its mask is exactly the red square."""
    pixels = np.full((SIDE, SIDE, 3), GREY, np.uint8)
    mask = np.zeros((SIDE, SIDE), np.uint8)
    start = (SIDE - red_side) // 2
    pixels[start : start + red_side, start : start + red_side] = RED
    mask[start : start + red_side, start : start + red_side] = 255
    Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    Image.fromarray(mask).save(tmp_path / f"{name}_mask.png")
    return Sample(image=f"{name}.png", mask=f"{name}_mask.png", gore=red_side > 0)


@pytest.fixture(scope="module")
def models():
    return red_classifier(), red_segmenter()


@pytest.fixture
def data(tmp_path):
    """Flagged: 40% red (p ~ 1). Missed: 2% red (p = sigmoid(2 - 5) ~ 0.05). Clean: no red."""
    samples = [picture(tmp_path, "flagged", 253), picture(tmp_path, "missed", 57), picture(tmp_path, "clean", 0)]
    dataset = Dataset(name="red squares", samples=samples)
    dataset.save(tmp_path)
    return Dataset.load(tmp_path)


def test_the_leak_table_counts_a_missed_image_whole_and_a_flagged_one_by_its_mask(models, data):
    classifier, segmenter = models
    rows = leak_study(
        classifier, segmenter, data, threshold=0.5, seg_threshold=0.5, ratios={"1:1": (640, 640), "4:1": (1280, 320)}
    )
    assert [(row["aspect ratio"].split()[0], row["margin"]) for row in rows] == [
        (ratio, margin) for ratio in ("1:1", "4:1") for margin in (0.0, 1.0, 2.0)
    ]
    flagged, missed = 253**2, 57**2
    for row in rows:
        # The missed image shows all its gore; the flagged one almost none (the red segmenter finds red exactly).
        assert row["leak"] == pytest.approx(missed / (flagged + missed), abs=0.01), row
        assert row["leak, flagged images"] < 0.01, row
    for ratio in ("1:1", "4:1"):
        hidden = [row["over-censoring"] for row in rows if row["aspect ratio"].startswith(ratio)]
        assert hidden[0] < 0.01 and hidden[0] < hidden[1] < hidden[2], "a wider margin hides more clean pixels"


def test_the_pipeline_report_scores_what_the_served_pipeline_would_censor(models, data, tmp_path):
    classifier, segmenter = models
    report = evaluate_pipeline(classifier, segmenter, data, tmp_path / "report", threshold=0.5, seg_threshold=0.5)
    as_classifier = report.tables["Table 30 columns: the pipeline as a classifier (censored = gore)"]
    assert as_classifier["precision"] == pytest.approx(1.0) and as_classifier["recall"] == pytest.approx(0.5)
    masks = report.tables["Table 31 columns: pipeline masks on the gore images (full size, post-processed)"]
    assert masks["iou"] == pytest.approx(0.5, abs=0.02), "about 1 for the flagged image, 0 for the missed one"
    written = (tmp_path / "report" / "report.md").read_text()
    assert "Leak and over-censoring" in written and "| 1:1 (640 x 640) | 0.0000 |" in written
