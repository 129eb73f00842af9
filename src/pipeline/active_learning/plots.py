"""A simulation's pictures, drawn like the paper's Figures 3 to 7 (matplotlib object API, files only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from pipeline.active_learning.curves import TITLES, CurvePoint

# The paper's colours for its three strategies; ours after them.
COLOURS = {
    "random": "tab:red",
    "least_confidence": "tab:green",
    "entropy": "tab:blue",
    "margin": "tab:olive",
    "mc_dropout": "tab:purple",
    "disagreement": "tab:orange",
    "gore_averse": "tab:brown",
}
STYLES = {"least_confidence": (0, (4, 2)), "margin": (0, (1, 1))}  # Identical binary rankings: keep all visible.


def _strategy_lines(ax, means: dict[str, list[CurvePoint]], metric: str, x: str = "share") -> None:
    for strategy, points in means.items():
        if strategy == "full":
            continue
        xs = [100 * p.share if x == "share" else p.gore_shown for p in points]
        ax.plot(
            xs,
            [p.metrics[metric] for p in points],
            marker="o",
            markersize=3,
            color=COLOURS.get(strategy),
            linestyle=STYLES.get(strategy, "-"),
            label=strategy,
        )
    if "full" in means:
        ax.axhline(means["full"][0].metrics[metric], color="black", linestyle=":", label="full supervision")


def plot_curves(means: dict[str, list[CurvePoint]], metrics: Sequence[str], path: Path, *, title: str) -> None:
    fig = Figure(figsize=(5 * len(metrics), 4))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        _strategy_lines(ax, means, metric)
        ax.set(xlabel="labelled data (%)", ylabel=f"mean test {TITLES[metric]}", title=TITLES[metric])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_fold(means: dict[str, list[CurvePoint]], path: Path, *, title: str) -> None:
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    _strategy_lines(ax, means, "accuracy")
    ax.set(xlabel="labelled data (%)", ylabel="average test accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_gore_shown(means: dict[str, list[CurvePoint]], path: Path) -> None:
    """Accuracy against the gore images an annotator has seen: lower left is better for people."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    _strategy_lines(ax, means, "accuracy", x="gore")
    ax.set(xlabel="gore images shown to the annotator (mean per run)", ylabel="mean test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
