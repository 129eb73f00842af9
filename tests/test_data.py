"""Data sets: VIA projects to masks, class folders, mask pairs, stratified splits, validation, synthetic data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.data.dataset import Dataset, Sample, read_mask
from pipeline.data.synthetic import generate
from pipeline.data.validation import validate_dataset, validate_via

GORE_CENSOR = str(Path(sys.executable).with_name("gore-censor"))


@pytest.fixture
def via_project(tmp_path):
    """A hand-made VIA 2 project: a square wound on wound.jpg, nothing on clean.jpg."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (100, 80), (90, 90, 90)).save(images / "wound.jpg")
    Image.new("RGB", (60, 60), (90, 90, 90)).save(images / "clean.jpg")
    project = {
        "_via_settings": {},
        "_via_img_metadata": {
            "wound.jpg1234": {
                "filename": "wound.jpg",
                "size": 1234,
                "file_attributes": {},
                "regions": [
                    {
                        "shape_attributes": {
                            "name": "polygon",
                            "all_points_x": [20, 60, 60, 20],
                            "all_points_y": [20, 20, 50, 50],
                        },
                        "region_attributes": {"Gore": {"true": True}, "Blood": "true", "Wound": True, "Burn": {}},
                    }
                ],
            },
            "clean.jpg99": {"filename": "clean.jpg", "size": 99, "file_attributes": {}, "regions": []},
        },
    }
    path = tmp_path / "project.json"
    path.write_text(json.dumps(project))
    return path, images


def test_via_polygons_become_filled_masks_with_soft_edges(via_project, tmp_path):
    project, images = via_project
    dataset, problems = Dataset.from_via(project, images, tmp_path / "out")
    assert problems == []
    wound, clean = dataset.samples
    assert wound.gore and not clean.gore
    assert wound.attributes == {"Gore": True, "Blood": True, "Wound": True, "Burn": False}
    mask = read_mask(tmp_path / "out" / wound.mask)
    assert mask.shape == (80, 100)
    assert mask[25:45, 25:55].min() == 1.0 and mask[:10].max() == 0.0 and mask[60:].max() == 0.0
    edge = mask[35, 14:27]  # The 9x9 mean filter ramps across the polygon edge at x = 20.
    assert 0.0 < edge[6] < 1.0 and np.all(np.diff(edge) >= 0)
    assert read_mask(tmp_path / "out" / clean.mask).max() == 0.0
    assert (tmp_path / "out" / wound.image).resolve() == (images / "wound.jpg").resolve()
    assert Dataset.load(tmp_path / "out") == dataset


def test_the_validator_lists_every_problem_with_file_and_reason(via_project, tmp_path):
    project, images = via_project
    data = json.loads(project.read_text())
    entries = data["_via_img_metadata"]
    entries["wound.jpg1234"]["regions"][0]["shape_attributes"]["all_points_x"][1] = 150  # Outside 100 px.
    entries["gone.jpg1"] = {"filename": "gone.jpg", "size": 1, "regions": [], "file_attributes": {}}
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    entries["broken.jpg1"] = {"filename": "broken.jpg", "size": 1, "regions": [], "file_attributes": {}}
    project.write_text(json.dumps(data))
    reasons = {f"{p.file}: {p.reason}" for p in validate_via(project, images)}
    assert any(r.startswith("wound.jpg: region 0: polygon outside") for r in reasons)
    assert any(r.startswith("gone.jpg: image file missing") for r in reasons)
    assert any(r.startswith("broken.jpg: unreadable image") for r in reasons)
    done = subprocess.run(
        [GORE_CENSOR, "data", "validate", "--via", str(project), "--images", str(images)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "polygon outside" in done.stderr and "3 problem(s)" in done.stderr


def test_an_empty_class_is_a_problem(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Dataset(name="x", samples=[Sample(image="a.png", gore=True)]).save(tmp_path)
    assert [p.reason for p in validate_dataset(tmp_path)] == ["empty class: no not gore samples"]


def test_class_folders_and_mask_pairs(tmp_path):
    for folder, n in (("gore", 2), ("not_gore", 3)):
        (tmp_path / "cls" / folder).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8)).save(tmp_path / "cls" / folder / f"{i}.jpg")
    dataset = Dataset.from_class_folders(tmp_path / "cls")
    assert sorted((s.image, s.gore) for s in dataset.samples)[:2] == [("gore/0.jpg", True), ("gore/1.jpg", True)]
    assert sum(not s.gore for s in dataset.samples) == 3
    (tmp_path / "seg" / "images").mkdir(parents=True)
    (tmp_path / "seg" / "masks").mkdir()
    for name, value in (("hit", 255), ("miss", 0)):
        Image.new("RGB", (8, 8)).save(tmp_path / "seg" / "images" / f"{name}.png")
        Image.new("L", (8, 8), value).save(tmp_path / "seg" / "masks" / f"{name}.png")
    assert {s.image: s.gore for s in Dataset.from_pairs(tmp_path / "seg").samples} == {
        "images/hit.png": True,
        "images/miss.png": False,
    }
    (tmp_path / "cls" / "maybe").mkdir()
    with pytest.raises(ValueError, match="gore / not_gore"):
        Dataset.from_class_folders(tmp_path / "cls")


def _dataset(n_gore=40, n_clean=80):
    samples = [
        Sample(image=f"g{i}.png", gore=True, attributes={"Gore": True, "Blood": True, "Burn": i % 4 == 0})
        for i in range(n_gore)
    ]
    samples += [Sample(image=f"c{i}.png", gore=False) for i in range(n_clean)]
    return Dataset(name="t", samples=samples)


def test_splits_are_stratified_and_reproducible_by_seed():
    first = _dataset().split(seed=3)
    assert first == _dataset().split(seed=3)
    assert [s.split for s in first.samples] != [s.split for s in _dataset().split(seed=4).samples]
    for part, size in (("train", 84), ("validation", 18), ("test", 18)):
        subset = first.subset(part)
        assert len(subset) == size
        assert subset.labels().mean() == pytest.approx(1 / 3, abs=0.06), "the gore share holds in every split"
    burns = [s.split for s in first.samples if s.attributes.get("Burn")]
    assert set(burns) == {"train", "validation", "test"}, "rare attributes reach every split"
    assert first.samples[0].stratum == "gore+Gore+Blood+Burn"


def test_synthetic_data_is_deterministic_labelled_and_about_a_third_positive(tmp_path):
    a, b = generate(tmp_path / "a", 30, seed=7, size=96), generate(tmp_path / "b", 30, seed=7, size=96)
    assert a.samples == b.samples and a.synthetic and "SYNTHETIC" in a.note
    assert (tmp_path / "a" / "SYNTHETIC.txt").read_text().startswith("SYNTHETIC")
    first = lambda root: np.asarray(Image.open(root / a.samples[0].image))  # noqa: E731
    assert np.array_equal(first(tmp_path / "a"), first(tmp_path / "b"))
    assert generate(tmp_path / "c", 30, seed=8, size=96).samples != a.samples
    big = generate(tmp_path / "d", 120, seed=1, size=64)
    assert 0.25 < np.mean([s.gore for s in big.samples]) < 0.42
    assert {"red_object", "food"} <= {s.kind for s in big.samples}, "hard negatives are red but not wounds"
    for sample in a.samples:
        mask = read_mask(tmp_path / "a" / sample.mask)
        assert set(np.unique(mask)) <= {0.0, 1.0}, "synthetic masks are exact"
        assert mask.any() == sample.gore


def test_the_synth_command_writes_a_split_data_set(tmp_path):
    done = subprocess.run(
        [GORE_CENSOR, "data", "synth", str(tmp_path), "--count", "60", "--size", "64"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    dataset = Dataset.load(tmp_path)
    assert len(dataset.samples) == 60 and all(s.split for s in dataset.samples)
    assert validate_dataset(tmp_path) == []


def test_views_read_each_image_once_and_know_their_split(tmp_path, monkeypatch):
    from pipeline.data import dataset as module

    generate(tmp_path, 24, seed=5, size=64).split(seed=5).save()
    data = Dataset.load(tmp_path)
    reads = []
    monkeypatch.setattr(module, "read_rgb", lambda path: reads.append(path) or np.zeros((2, 2, 3), np.uint8))
    train = data.require("train")
    assert len(train.images()) == len(train) and len(reads) == len(train)
    data.require("train").images()
    data.subset("train", gore_only=True).images()
    assert len(reads) == len(train), "views share their parent's pixel cache"
    assert train.name.endswith("train split") and train.labels().tolist() == [int(s.gore) for s in train.samples]
    gore_masks = data.require("test", with_masks=True, gore_only=True)
    assert all(s.gore for s in gore_masks.samples) and all(m.any() for m in gore_masks.masks())
    with pytest.raises(ValueError, match="gore-censor data split"):
        Dataset.load(tmp_path).model_copy(update={"samples": []}).require("validation")
