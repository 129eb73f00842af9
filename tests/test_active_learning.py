"""Active learning: strategies pick the right images, the loop grows and stops as the paper's does,
labels land in the training tools' formats, and `gore-censor al` runs end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from images import RED
from PIL import Image
from typer.testing import CliRunner

from pipeline.active_learning.loop import LoopSettings, initial_pool, run_loop
from pipeline.active_learning.strategies import STRATEGIES, PoolPredictions, rank, utilities
from pipeline.cli import app

# Seven unlabelled images: 0 sure gore, 1 a coin toss, 2 sure clean, 3 leaning gore,
# 4 leaning clean, 5 fairly sure gore, 6 nearly a coin toss on the clean side.
P = np.array([0.97, 0.52, 0.05, 0.70, 0.35, 0.88, 0.45])
MC_DRAWS = np.array(  # Per image across 3 passes: image 5 spreads most, then 3; 0 and 2 not at all.
    [
        [0.97, 0.52, 0.05, 0.50, 0.35, 0.40, 0.45],
        [0.97, 0.52, 0.05, 0.70, 0.30, 0.90, 0.45],
        [0.97, 0.52, 0.05, 0.90, 0.40, 0.99, 0.46],
    ]
)
MEMBERS = np.array(  # Two members: they disagree most on image 2, then on 4.
    [
        [0.97, 0.50, 0.02, 0.70, 0.20, 0.88, 0.45],
        [0.96, 0.54, 0.90, 0.71, 0.60, 0.88, 0.45],
    ]
)
PREDICTIONS = PoolPredictions(count=7, probabilities=P, mc_draws=MC_DRAWS, members=MEMBERS)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # Binary: all three rank by |p - 0.5|: 1 (0.02), 6 (0.05), 4 (0.15), 3 (0.20).
        ("least_confidence", [1, 6, 4, 3]),
        ("entropy", [1, 6, 4, 3]),
        ("margin", [1, 6, 4, 3]),
        ("mc_dropout", [5, 3, 4, 6]),
        ("disagreement", [2, 4, 1, 0]),
        # Ours: as uncertain, but on the clean side, comes first; 4 (p 0.35) before 1 (p 0.52).
        ("gore_averse", [4, 6, 1, 2]),
    ],
)
def test_each_strategy_picks_the_right_images(strategy, expected):
    assert rank(strategy, PREDICTIONS, 4).indices == expected


def test_scores_are_scikit_activeml_uncertainties():
    entropy = rank("entropy", PREDICTIONS, 1)
    assert entropy.scores == [pytest.approx(-(0.52 * np.log(0.52) + 0.48 * np.log(0.48)))]
    assert rank("least_confidence", PREDICTIONS, 1).scores == [pytest.approx(0.48)]
    assert rank("mc_dropout", PREDICTIONS, 1).scores == [pytest.approx(np.std([0.40, 0.90, 0.99]))]


def test_gore_averse_shows_confident_gore_last_and_confident_clean_before_it():
    order = rank("gore_averse", PREDICTIONS, 7).indices
    assert order[-1] == 0 and order.index(2) < order.index(5) < order.index(0)
    # Entropy treats sure-clean 2 (p 0.05) and sure-gore 0 (p 0.97) alike; ours does not.
    assert utilities("gore_averse", PREDICTIONS)[2] > 10 * utilities("gore_averse", PREDICTIONS)[0]


def test_random_is_reproducible_by_seed_and_never_repeats():
    first, again, other = (rank("random", PoolPredictions(count=50), 20, seed=s).indices for s in (3, 3, 4))
    assert first == again and first != other and len(set(first)) == 20 and max(first) < 50


def test_ties_are_broken_at_random_not_by_position():
    flat = PoolPredictions(count=100, probabilities=np.full(100, 0.5))
    picks = rank("entropy", flat, 10, seed=1).indices
    assert len(set(picks)) == 10 and picks != list(range(10))


def test_strategies_say_what_they_lack():
    only_p = PoolPredictions(count=7, probabilities=P)
    with pytest.raises(ValueError, match="MC-dropout draws"):
        rank("mc_dropout", only_p, 2)
    with pytest.raises(ValueError, match="two voting members"):
        rank("disagreement", PoolPredictions(count=7, probabilities=P, members=MEMBERS[:1]), 2)
    with pytest.raises(ValueError, match="dimension"):
        PoolPredictions(count=6, probabilities=P)
    assert rank("entropy", only_p, 50).indices == [1, 6, 4, 3, 5, 2, 0]  # k above the pool: all of it.


def test_the_initial_pool_is_random_but_class_balanced():
    labels = np.array([1] * 30 + [0] * 70)
    first = initial_pool(labels, 0.2, np.random.default_rng(0))
    again = initial_pool(labels, 0.2, np.random.default_rng(1))
    assert labels[first].sum() == 6 and (labels[first] == 0).sum() == 14 and len(set(first)) == 20
    assert set(first) != set(again) and labels[again].sum() == 6


class FixedLearner:
    """Predicts p = position / (N - 1) for pool position i, so the right queries are known."""

    def __init__(self, size: int):
        self.p = np.linspace(0, 1, size)
        self.fits: list[int] = []
        self.asked: list[tuple[int, bool]] = []

    def start(self, seed: int) -> None:
        self.fits = []

    def fit(self, indices, labels) -> None:
        assert len(set(indices.tolist())) == len(indices), "every image is labelled once"
        self.fits.append(len(indices))

    def predict(self, indices, *, mc_passes=0, members=False):
        self.asked.append((mc_passes, members))
        p = self.p[indices]
        return PoolPredictions(
            count=len(indices),
            probabilities=p,
            mc_draws=np.stack([p, np.clip(p + 0.1 * np.sin(indices), 0, 1)]) if mc_passes else None,
            members=np.stack([p, 1 - p]) if members else None,
        )


LABELS = (np.arange(100) % 4 == 0).astype(int)  # 25 gore, 75 clean.


def test_the_loop_grows_by_the_query_size_until_the_pool_is_empty():
    learner = FixedLearner(100)
    result = run_loop(learner, LABELS, "entropy", LoopSettings(query_size=15))
    sizes = [c.labelled for c in result.cycles]
    assert sizes == [20, 35, 50, 65, 80, 95, 100] and learner.fits == sizes
    assert result.stopped == "pool empty" and sorted(result.order) == list(range(100))
    assert [c.gore_shown for c in result.cycles][-1] == 25 and result.cycles[-1].share == 1.0
    first_query = set(result.order[20:35])  # The unlabelled images nearest p = 0.5.
    unlabelled = [i for i in range(100) if i not in result.order[:20]]
    assert first_query == set(sorted(unlabelled, key=lambda i: abs(learner.p[i] - 0.5))[:15])


def test_the_loop_stops_when_the_budget_is_spent():
    result = run_loop(FixedLearner(100), LABELS, "random", LoopSettings(query_size=15, budget=57, seed=2))
    assert [c.labelled for c in result.cycles] == [20, 35, 50, 57] and result.stopped == "budget spent"
    shown = [int(LABELS[result.order[: c.labelled]].sum()) for c in result.cycles]
    assert [c.gore_shown for c in result.cycles] == shown
    with pytest.raises(ValueError, match="below the initial pool"):
        run_loop(FixedLearner(100), LABELS, "random", LoopSettings(budget=10))


def test_the_loop_asks_for_what_each_strategy_needs():
    for strategy, asked in (("mc_dropout", (7, False)), ("disagreement", (0, True)), ("margin", (0, False))):
        learner = FixedLearner(100)
        run_loop(learner, LABELS, strategy, LoopSettings(query_size=40, mc_passes=7))
        assert learner.asked == [asked, asked], strategy
    learner = FixedLearner(100)
    run_loop(learner, LABELS, "random", LoopSettings(query_size=40))
    assert learner.asked == [], "random sampling needs no predictions"


def test_gore_averse_shows_fewer_gore_images_per_query_than_entropy():
    # Gore is where the learner says so (p > 0.5): our strategy queries below the boundary first.
    labels = (np.linspace(0, 1, 100) > 0.5).astype(int)
    shown = {
        s: run_loop(FixedLearner(100), labels, s, LoopSettings(query_size=20)).cycles[1].gore_shown
        for s in ("entropy", "gore_averse")
    }
    assert shown["gore_averse"] < shown["entropy"], shown


runner = CliRunner()


def _gray_with_red_rows(rows: int) -> np.ndarray:
    pixels = np.full((224, 224, 3), 128, np.uint8)
    pixels[:rows] = RED
    return pixels


@pytest.fixture
def unlabelled(tmp_path):
    """Red-model probabilities sigmoid(100 * rows / 224 - 5): 10 rows 0.37, 11 rows 0.48,
    16 rows 0.89, none 0.007, 40 rows ~1."""
    folder = tmp_path / "pool"
    folder.mkdir()
    for rows in (0, 10, 11, 16, 40):
        Image.fromarray(_gray_with_red_rows(rows)).save(folder / f"rows{rows:02d}.png")
    return folder


def test_al_next_ranks_a_folder_with_the_stored_classifier(red_model_tags, unlabelled, tmp_path):
    red = ["--profile", "redtest"]
    done = runner.invoke(app, ["al", "next", str(unlabelled), *red, "--strategy", "entropy", "-k", "5", "--json"])
    assert done.exit_code == 0, done.output
    queue = json.loads(done.stdout)
    names = [item["path"].rsplit("/", 1)[-1] for item in queue["items"]]
    assert names == ["rows11.png", "rows10.png", "rows16.png", "rows00.png", "rows40.png"]
    assert queue["model"] == red_model_tags["classifier"] and len(queue["items"][0]["id"]) == 64
    done = runner.invoke(app, ["al", "next", str(unlabelled), *red, "--strategy", "gore_averse", "-k", "3"])
    assert done.exit_code == 0, done.output
    lines = [line.split("\t") for line in done.stdout.strip().splitlines()]
    assert [line[-1].rsplit("/", 1)[-1] for line in lines] == ["rows10.png", "rows11.png", "rows00.png"]
    assert abs(float(lines[0][2]) - 0.369) < 0.01  # Its gore probability, as the red model gives it.
    # Labelled images leave the queue; a model without our members cannot do MC dropout.
    labelled = tmp_path / "labelled"
    (tmp_path / "labels.csv").write_text("image,label\nrows10.png,clean\n")
    assert runner.invoke(app, ["al", "labels", str(tmp_path / "labels.csv"), "--images", str(unlabelled),
                               "--out", str(labelled)]).exit_code == 0  # fmt: skip
    done = runner.invoke(
        app, ["al", "next", str(unlabelled), *red, "--strategy", "gore_averse", "--exclude", str(labelled)]
    )
    assert "rows10.png" not in done.stdout and "rows11.png" in done.stdout
    done = runner.invoke(app, ["al", "next", str(unlabelled), *red, "--strategy", "mc_dropout"])
    assert done.exit_code == 2 and "imported whole" in done.output


def test_al_labels_takes_csv_and_via_into_one_data_set(unlabelled, tmp_path):
    from pipeline.data.dataset import Dataset

    out = tmp_path / "labelled"
    csv = tmp_path / "labels.csv"
    csv.write_text("filename,gore\nrows40.png,gore\nrows00.png,0\nrows16.png,maybe\nmissing.png,1\n")
    done = runner.invoke(app, ["al", "labels", str(csv), "--images", str(unlabelled), "--out", str(out)])
    assert done.exit_code == 1 and "maybe" in done.output and "missing.png" in done.output
    assert (out / "gore" / "rows40.png").is_file() and (out / "not_gore" / "rows00.png").is_file()
    first = Dataset.load(out)
    assert {s.image: s.gore for s in first.samples} == {"gore/rows40.png": True, "not_gore/rows00.png": False}

    csv.write_text("image,label\nrows40.png,not_gore\n")  # Relabelled: the copy moves.
    assert runner.invoke(app, ["al", "labels", str(csv), "--images", str(unlabelled), "--out", str(out)]).exit_code == 0
    assert not (out / "gore" / "rows40.png").exists() and (out / "not_gore" / "rows40.png").is_file()

    via = tmp_path / "project.json"
    region = {"shape_attributes": {"name": "rect", "x": 0, "y": 0, "width": 223, "height": 16}, "region_attributes": {}}
    via.write_text(json.dumps({"a": {"filename": "rows16.png", "size": 1, "regions": [region], "file_attributes": {}}}))
    assert runner.invoke(app, ["al", "labels", str(via), "--images", str(unlabelled), "--out", str(out)]).exit_code == 0
    merged = {s.image.rsplit("/", 1)[-1]: (s.gore, s.mask) for s in Dataset.load(out).samples}
    assert merged == {
        "rows40.png": (False, None),
        "rows00.png": (False, None),
        "rows16.png": (True, "masks/rows16.png"),
    }
    assert np.asarray(Image.open(out / "masks" / "rows16.png"))[:10].min() == 255


def test_al_simulate_runs_end_to_end_on_a_tiny_synthetic_set(tmp_path):
    from pipeline.data.synthetic import generate

    generate(tmp_path / "data", 40, seed=3, size=48)
    out = tmp_path / "al"
    args = ["al", "simulate", str(tmp_path / "data"), "--out", str(out), "--member", "mobilenetv2_035:bce"]
    args += ["--input-size", "32", "--weights", "none", "--folds", "2", "--run-folds", "1", "--seed", "0"]
    args += ["--strategy", "gore_averse", "--query-size", "6", "--epochs", "1"]
    args += ["--batch-size", "8", "--augmentation", "none"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    result = json.loads((out / "results.json").read_text())
    runs = {r["strategy"]: r for r in result["runs"]}
    assert set(runs) == {"gore_averse", "full"}
    # 40 images, 2 folds: 20 to train, 4 of them for validation, a pool of 16 with its share of gore.
    pool, pool_gore = runs["gore_averse"]["pool"], runs["gore_averse"]["pool_gore"]
    assert pool == 16 and runs["gore_averse"]["test"] == 20 and 0 < pool_gore < pool
    initial = round(0.2 * pool_gore) + round(0.2 * (pool - pool_gore))
    cycles = runs["gore_averse"]["cycles"]
    assert len(cycles) == 1 + -(-(pool - initial) // 6)
    assert [c["labelled"] for c in cycles] == [initial, initial + 6, initial + 12, 16][: len(cycles)]
    assert cycles[-1]["share"] == 1.0 and cycles[-1]["gore_shown"] == pool_gore
    assert all(0.0 <= c["metrics"]["accuracy"] <= 1.0 for c in cycles)
    assert runs["full"]["cycles"][0]["labelled"] == 16
    report = (out / "report.md").read_text()
    assert "| labelled data | gore_averse | full supervision |" in report
    assert "gore images shown by then" in report and "| full supervision |" in report
    assert all((out / name).stat().st_size > 1000 for name in ("curves.png", "gore_shown.png", "fold_0.png"))


def test_al_simulate_with_a_frozen_encoder_trains_heads_on_cached_views(tmp_path):
    from pipeline.data.synthetic import generate

    generate(tmp_path / "data", 30, seed=4, size=48)
    out = tmp_path / "al"
    args = ["al", "simulate", str(tmp_path / "data"), "--out", str(out), "--member", "mobilenetv2_035:bce"]
    args += ["--member", "mobilenetv2_035:wrl", "--frozen-encoder", "--views", "1", "--input-size", "32"]
    args += ["--weights", "none", "--folds", "2", "--run-folds", "1", "--seed", "1", "--strategy", "mc_dropout"]
    args += ["--strategy", "disagreement", "--query-size", "5", "--epochs", "2", "--mc-passes", "3"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    result = json.loads((out / "results.json").read_text())
    model = result["model"]
    assert model.startswith("mobilenetv2_035:bce, mobilenetv2_035:wrl at 32 px") and "encoder frozen" in model
    for run in result["runs"]:
        assert run["cycles"][-1]["labelled"] == run["pool"] == 12 and run["stopped"] == "pool empty"
    assert [r["strategy"] for r in result["runs"]] == ["mc_dropout", "disagreement", "full"]


def test_al_simulate_refuses_what_it_cannot_run(tmp_path):
    done = runner.invoke(app, ["al", "simulate", str(tmp_path), "--strategy", "psychic"])
    assert done.exit_code == 2 and "unknown strategy" in done.output
    one = ["--member", "mobilenetv2_035:bce", "--weights", "none"]
    done = runner.invoke(app, ["al", "simulate", str(tmp_path), "--strategy", "disagreement", *one])
    assert done.exit_code == 2 and "two members" in done.output


def test_the_command_accepts_every_strategy_the_library_has(tmp_path):
    """Each strategy passes the command's checks and reaches the data set (here: none there)."""
    two = ["--member", "mobilenetv2_035:bce", "--member", "mobilenetv2_035:wrl", "--weights", "none"]
    for strategy in STRATEGIES:
        done = runner.invoke(app, ["al", "simulate", str(tmp_path), "--strategy", strategy, *two])
        assert "no dataset manifest" in done.output and "unknown strategy" not in done.output, (strategy, done.output)


def _run(strategy: str, fold: int, accuracies: list[float], gore: list[int]):
    from pipeline.active_learning.loop import Cycle
    from pipeline.active_learning.simulate import RunRecord

    cycles = [
        Cycle(cycle=i, labelled=20 + 20 * i, share=(20 + 20 * i) / 100, gore_shown=g, metrics={"accuracy": a})
        for i, (a, g) in enumerate(zip(accuracies, gore, strict=True))
    ]
    return RunRecord(fold=fold, seed=0, strategy=strategy, pool=100, pool_gore=25, test=30, cycles=cycles, stopped="")


def test_the_report_finds_when_each_strategy_came_within_one_percent_and_the_gore_shown_by_then():
    from pipeline.active_learning.report import metric_table, reached
    from pipeline.active_learning.simulate import SimulationResult, SimulationSettings

    runs = [
        # Full supervision: 0.90 in both folds. Entropy's mean curve: 0.80, 0.885, 0.895 -> within 1% at cycle 2.
        _run("full", 0, [0.90], [25]),
        _run("full", 1, [0.90], [25]),
        _run("entropy", 0, [0.80, 0.88, 0.90], [5, 12, 18]),
        _run("entropy", 1, [0.80, 0.89, 0.89], [5, 10, 16]),
        # Ours reaches 0.895 at cycle 1 in the mean, having shown 7 gore images; random never does.
        _run("gore_averse", 0, [0.80, 0.90, 0.90], [5, 7, 11]),
        _run("gore_averse", 1, [0.80, 0.89, 0.90], [5, 7, 13]),
        _run("random", 0, [0.80, 0.85, 0.88], [5, 10, 15]),
        _run("random", 1, [0.80, 0.85, 0.88], [5, 10, 15]),
    ]
    settings = SimulationSettings(folds=2, seeds=[0], strategies=["entropy", "gore_averse", "random"])
    result = SimulationResult(data="t", images=130, gore=31, model="m", settings=settings, runs=runs)
    rows = {row.strategy: row for row in reached(result)}
    assert (rows["entropy"].cycle, rows["entropy"].gore_shown, rows["entropy"].share) == (2, 17.0, 0.6)
    assert (rows["gore_averse"].cycle, rows["gore_averse"].gore_shown) == (1, 7.0)
    assert rows["random"].cycle is None and rows["full"].gore_shown == 25.0
    table = metric_table(result, "accuracy")
    assert table[0] == "| labelled data | entropy | gore_averse | random | full supervision |"
    assert table[3] == "| 40.0% | 0.8850 | 0.8950 | 0.8500 | 0.9000 |"
