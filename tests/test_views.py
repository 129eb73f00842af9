"""How an analysis is shown: the verdict follows the latest review, and a gore answer without a
segmentation links no censored copy (clients withhold the whole image) instead of failing."""

from __future__ import annotations

from datetime import timedelta

from test_image_store import ID, T0, analysis, record

from pipeline.serving.views import Defaults, Limits, Views
from pipeline.stores.images import FileSystemStore
from pipeline.stores.records import Review


def views(tmp_path, threshold=None) -> Views:
    return Views(FileSystemStore(tmp_path), Defaults(threshold, None, "black", 2.0), Limits(10**6, 10**7, 10))


def test_an_older_analysis_read_with_a_lower_threshold_is_gore_without_a_copy(tmp_path):
    """Made at 0.5 (p = 0.4, not segmented), read by a deployment now at 0.3."""
    shown = views(tmp_path, threshold=0.3)
    old = analysis(probability=0.4, segmented=False)
    result = shown.result(record(old), old, shown.defaults.options(old))
    assert result.gore is True and result.verdict == "gore" and result.threshold == 0.3
    assert result.censored is None and result.mask is None and result.censored_fraction is None


def test_the_latest_review_decides_the_verdict(tmp_path):
    shown = views(tmp_path)
    reviewed = record(
        analysis(probability=0.9),
        reviews=[Review(verdict="gore", by="a", at=T0), Review(verdict="not_gore", by="b", at=T0 + timedelta(1))],
    )
    result = shown.result(reviewed, reviewed.analyses["c:1|s:1"], shown.defaults.options(reviewed.analyses["c:1|s:1"]))
    assert result.verdict == "not_gore" and result.review.by == "b"
    assert result.gore is True, "the models said gore; the review overrides the verdict, not the analysis"
    assert result.id == ID
