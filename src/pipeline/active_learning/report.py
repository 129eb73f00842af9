"""A simulation's tables and report: the paper's Table 2, and the gore images annotators saw.

A strategy "came within" full supervision at the first cycle whose mean accuracy (`curves`) is
at least full supervision's minus `within` (paper: 1%).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel

from pipeline.active_learning.curves import METRICS, TITLES, curves
from pipeline.active_learning.plots import plot_curves, plot_fold, plot_gore_shown
from pipeline.active_learning.simulate import SimulationResult
from pipeline.files import atomic_write


class Reached(BaseModel):
    strategy: str
    cycle: int | None
    share: float | None
    labelled: float | None
    gore_shown: float | None
    accuracy: float | None
    pool_gore: float


def reached(result: SimulationResult) -> list[Reached]:
    """Per strategy: the first cycle within `within` of full supervision's accuracy, and the gore
    images shown by then (mean over runs). Not reached: None, and every gore image was shown."""
    means = curves(result)
    target = means["full"][0].metrics["accuracy"] - result.settings.within
    pool_gore = means["full"][0].gore_shown
    rows = [
        Reached(
            strategy="full",
            cycle=0,
            share=1.0,
            labelled=means["full"][0].labelled,
            gore_shown=pool_gore,
            accuracy=means["full"][0].metrics["accuracy"],
            pool_gore=pool_gore,
        )
    ]
    for strategy in result.settings.strategies:
        point = next((p for p in means[strategy] if p.metrics["accuracy"] >= target), None)
        rows.append(
            Reached(
                strategy=strategy,
                cycle=None if point is None else point.cycle,
                share=None if point is None else point.share,
                labelled=None if point is None else point.labelled,
                gore_shown=None if point is None else point.gore_shown,
                accuracy=None if point is None else point.metrics["accuracy"],
                pool_gore=pool_gore,
            )
        )
    return rows


def _name(strategy: str) -> str:
    return "full supervision" if strategy == "full" else strategy


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def metric_table(result: SimulationResult, metric: str) -> list[str]:
    """Paper's Table 2: mean test score per share of labelled data, strategies side by side."""
    means = curves(result)
    strategies = result.settings.strategies
    full = means["full"][0].metrics[metric]
    longest = max(len(means[s]) for s in strategies)
    rows = []
    for i in range(longest):
        share = np.mean([means[s][i].share for s in strategies if len(means[s]) > i])
        cells = [f"{means[s][i].metrics[metric]:.4f}" if len(means[s]) > i else "" for s in strategies]
        rows.append([f"{100 * share:.1f}%", *cells, f"{full:.4f}"])
    return _table(["labelled data", *strategies, "full supervision"], rows)


def reached_table(result: SimulationResult) -> list[str]:
    within = f"{100 * result.settings.within:g}%"
    rows = []
    for row in reached(result):
        if row.cycle is None:
            rows.append([_name(row.strategy), "not reached", "", f"all {row.pool_gore:.1f}", ""])
        else:
            saved = 1 - row.gore_shown / row.pool_gore if row.pool_gore else 0.0
            rows.append(
                [
                    _name(row.strategy),
                    f"{100 * row.share:.1f}% ({row.labelled:.1f} images)",
                    f"{row.accuracy:.4f}",
                    f"**{row.gore_shown:.1f}** of {row.pool_gore:.1f}",
                    f"{100 * saved:.1f}%",
                ]
            )
    return _table(
        [
            "strategy",
            f"labelled when first within {within} of full supervision",
            "accuracy then",
            "gore images shown by then",
            "gore images never shown",
        ],
        rows,
    )


def markdown(result: SimulationResult, figures: dict[str, str]) -> str:
    s = result.settings
    runs = len({(r.fold, r.seed) for r in result.runs})
    lines = [
        f"# Active learning simulation: {result.data}",
        "",
        f"{result.images} images ({result.gore} gore); model: {result.model}. {s.folds}-fold cross validation "
        f"(folds run: {s.run_folds or s.folds}), seeds {s.seeds}: {runs} runs per strategy; "
        f"{100 * s.validation_share:g}% of each training fold for validation; initial pool "
        f"{100 * s.loop.initial_share:g}% per class; {s.loop.query_size} images per query; "
        f"budget {s.loop.budget or 'none'}; MC-dropout passes {s.loop.mc_passes}.",
        "",
        "> With two classes, least confidence, entropy and margin rank images identically (all are",
        "> monotone in |p - 0.5|); their curves differ only where ties are broken at random.",
        "",
        f"## Gore images an annotator was shown before the model came within {100 * s.within:g}% of full "
        "supervision (accuracy, mean curve)",
        "",
        *reached_table(result),
        "",
    ]
    for metric in METRICS:
        lines += [f"## Mean test {TITLES[metric]} by share of labelled data (paper's Table 2)", ""]
        lines += [*metric_table(result, metric), ""]
    lines += [f"![{caption}]({path})" for caption, path in figures.items()]
    return "\n".join(lines) + "\n"


def write_report(result: SimulationResult, out_dir: Path) -> Path:
    """results.json, the figures and report.md in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "results.json", result.model_dump_json(indent=1), mode=0o644)
    figures = {"mean test scores by share of labelled data": "curves.png"}
    plot_curves(curves(result), METRICS, out_dir / "curves.png", title=f"{result.data}: mean of every run")
    figures["accuracy by gore images shown"] = "gore_shown.png"
    plot_gore_shown(curves(result), out_dir / "gore_shown.png")
    for fold in sorted({r.fold for r in result.runs}):
        test = next(r.test for r in result.runs if r.fold == fold)
        name = f"fold_{fold}.png"
        plot_fold(curves(result, fold), out_dir / name, title=f"fold {fold} ({test} test images)")
        figures[f"fold {fold}: mean test accuracy (paper's Figures 3 to 7)"] = name
    return atomic_write(out_dir / "report.md", markdown(result, figures), mode=0o644)
