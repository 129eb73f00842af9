"""The known-content benchmark (benchmarks/hashes_bench.py, `make bench-hashes`) at toy sizes:
its pieces run, and what it reports holds where it can be checked in seconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from pipeline.known.pdq import MATCH_DISTANCE, codes, pdq_of

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("hashes_bench", REPO / "benchmarks" / "hashes_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sources(bench):
    kept, _ = bench.make_sources(6, workers=1)
    return kept


@pytest.fixture(scope="module")
def unrelated(bench):
    return bench.unrelated_hashes(60, workers=1)


def test_the_indexes_find_what_brute_force_finds(bench, monkeypatch):
    import pipeline.known.index

    monkeypatch.setattr(pipeline.known.index, "TAIL", 1000)  # The multi-index tables at this small size.
    rows = bench.lookup(20_000, queries=200, flat_queries=200, seed=5)
    assert [r["index"] for r in rows] == list(bench.INDEXES)
    for row in rows:
        assert row["planted_found"] == row["planted"] == 100  # Every near-duplicate at 1 to 31 bits...
        assert row["agree"] == row["compared_with_flat"] == 200  # ...and the same keys and distances as brute force.
        assert row["random_hits"] == 0
        assert row["median_ms"] > 0 and row["build_s"] > 0
    assert rows[0]["candidates"] < rows[1]["candidates"] == 20_000  # The multi-hash index compares a few only.


def test_the_first_dihedral_hash_is_the_plain_one(bench):
    image = bench.source_picture(1)
    dihedral, quality = bench.dihedral_codes(image)
    plain = pdq_of(image)
    assert dihedral.shape == (8, 32)
    assert np.array_equal(dihedral[0], codes([plain.hash])[0]) and quality == plain.quality


def test_the_recall_table_has_every_transform_and_mirroring_needs_the_dihedral_hashes(bench, sources):
    rows = bench.recall_rows(sources)
    assert [r["transform"] for r in rows] == [*bench.TRANSFORMS, "all"]
    by = {r["transform"]: r for r in rows}
    assert by["JPEG quality 50"]["plain"] == by["brightness +20"]["plain"] == 1.0
    mirrored = by["mirrored (horizontal flip)"]
    assert mirrored["plain"] == 0.0  # PDQ is not mirror-invariant by itself...
    assert mirrored["plain + mirror"] == mirrored["dihedral"] >= 0.75  # ...the mirror's hash (one of 8) is.
    assert all(r["dihedral"] >= r["plain + mirror"] >= r["plain"] for r in rows)
    assert [r["change"] for r in bench.sweep_rows(sources)] == list(bench.SWEEP)


def test_unrelated_images_match_no_source(bench, sources, unrelated):
    found = bench.false_matches(sources, unrelated)
    assert found["matched"] == {variant: 0 for variant in bench.VARIANTS}
    assert found["plain_percentiles"][0] > MATCH_DISTANCE


def test_the_reviewers_gain_adds_up(bench, sources, unrelated):
    gain = bench.reviewer_gain(sources, unrelated, size=40)
    for mode in bench.VARIANTS:
        counted = gain[mode]
        assert counted["reveals"] == gain["size"] - counted["caught"] - counted["false"]
    assert gain["dihedral"]["reveals"] <= gain["plain"]["reveals"] < gain["size"]


def test_the_cost_rows_time_every_hash(bench):
    (row,) = bench.cost_rows(sizes=((60, 80),), repeats=1)
    assert row["size"] == "80x60" and all(value >= 0 for value in row.values() if isinstance(value, float))
