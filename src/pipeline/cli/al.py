"""`gore-censor al ...`: active learning (SPEC section 4; seed 002).

`simulate` runs the paper's experiment on a labelled data set; `next` ranks a folder of
unlabelled images with a stored classifier; `labels` takes annotators' labels into a data set.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import (
    DataArgument,
    ProfileOption,
    WeightsOption,
    console,
    fail,
    profile_named,
    reported,
    typer_group,
)
from pipeline.metrics import DROPOUT_PASSES

al_app = typer_group("Active learning: simulate strategies, rank images to label next, take labels in.")

STRATEGY_HELP = (
    "random, least_confidence, entropy (the paper's), margin, mc_dropout, disagreement (between members), "
    "gore_averse (ours: uncertain images predicted clean first)"
)


def _set_threads(threads: int) -> None:
    if threads > 0:
        import cv2
        import tensorflow as tf

        cv2.setNumThreads(threads)  # Augmentation and resizing.

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow ran an op in this process already: its thread pools are fixed.
            console.print("TensorFlow is initialised already; keeping its own thread counts")


@al_app.command("simulate")
def simulate(
    data: DataArgument,
    out: Annotated[Path, typer.Option(help="Folder for report.md, results.json and the plots.")] = Path("build/al"),
    quick: Annotated[
        bool,
        typer.Option(
            help="Sized for a 2-core CPU (minutes): two MobileNetV2 members (BCE, WRL) at 128 px whose encoder "
            "starts from the demo segmenter (`make models`) and stays frozen, every image of the data set, 5 folds, "
            "1 seed, 32 images per query, 10 MC passes. Options given explicitly still win."
        ),
    ] = False,
    strategy: Annotated[
        list[str] | None, typer.Option(help=f"A strategy to run (repeat it); default: all. {STRATEGY_HELP}.")
    ] = None,
    member: Annotated[
        list[str] | None,
        typer.Option(
            help="A member ARCHITECTURE[:LOSS] to train (repeat for a committee; disagreement needs two); "
            "default: the paper's resnet50v2_al:bce (--quick: mobilenetv2:bce and mobilenetv2:wrl)."
        ),
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="Train this profile's classifier members (and input size) instead of --member.")
    ] = None,
    input_size: Annotated[
        int | None, typer.Option(help="Model input side in pixels; default 224 (--quick: 128).")
    ] = None,
    weights: WeightsOption = None,
    trainable_from: Annotated[
        str | None,
        typer.Option(help="Freeze encoder layers before this layer name prefix; default: the architecture's own."),
    ] = None,
    encoder_from: Annotated[
        str | None,
        typer.Option(
            help="Model store tag whose layers of the same name start the members' encoders; "
            "default: none (--quick: gore-segmenter-demo:latest, as `make models` starts the demo members)."
        ),
    ] = None,
    frozen_encoder: Annotated[
        bool | None,
        typer.Option(
            help="Freeze the whole encoder and train only the heads, on encoder outputs cached once per image "
            "and augmented view (minutes on a CPU); default: off (--quick: on)."
        ),
    ] = None,
    views: Annotated[
        int, typer.Option(min=0, help="With --frozen-encoder: augmented views cached per image, besides the plain one.")
    ] = 3,
    folds: Annotated[int | None, typer.Option(min=2, help="k of the k-fold cross validation; default 5.")] = None,
    run_folds: Annotated[int | None, typer.Option(min=1, help="Run only the first n folds; default: all.")] = None,
    seed: Annotated[
        list[int] | None, typer.Option(help="A seed (repeat it): runs per fold; default 0 to 4 (--quick: 0).")
    ] = None,
    validation_share: Annotated[
        float, typer.Option(min=0.01, max=0.9, help="Share of each training fold held out for validation.")
    ] = 0.2,
    initial_share: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Share of each class labelled before the first cycle.")
    ] = 0.2,
    query_size: Annotated[
        int | None, typer.Option(min=1, help="Images queried per cycle; default 500 (--quick: 32).")
    ] = None,
    budget: Annotated[
        int | None, typer.Option(min=1, help="Stop once this many images are labelled; default: the whole pool.")
    ] = None,
    mc_passes: Annotated[
        int | None, typer.Option(min=2, help="Inference-dropout passes for mc_dropout; default 30 (--quick: 10).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs per cycle; default 5.")] = None,
    patience: Annotated[
        int | None, typer.Option(min=1, help="Early stopping on validation loss, in epochs; default 2.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Images per batch; default 32.")] = None,
    learning_rate: Annotated[float, typer.Option(min=0.0, help="Adam learning rate (paper: 1e-3).")] = 1e-3,
    augmentation: Annotated[
        str, typer.Option(help="paper (flips, shifts, shear, rotation, zoom), thesis, or none.")
    ] = "paper",
    full_fits: Annotated[
        int | None, typer.Option(min=1, help="Cycles of full supervision; default: as many as a loop makes.")
    ] = None,
    within: Annotated[float, typer.Option(min=0.0, help="'Within' full supervision's accuracy (paper: 0.01).")] = 0.01,
    limit: Annotated[
        int | None,
        typer.Option(min=10, help="Use a stratified subset of this many images; default: all."),
    ] = None,
    split_seed: Annotated[int, typer.Option(help="Seed of the folds and of --limit's subset.")] = 0,
    threads: Annotated[int, typer.Option(min=0, help="TensorFlow CPU threads; 0: its own choice.")] = 0,
) -> None:
    """The paper's experiment: k-fold cross validation, several seeds, every strategy and full
    supervision; accuracy, Double F1 and recall by share of labelled data (plots and a Table 2), and
    the gore images an annotator was shown before the model came within 1% of full supervision."""
    from pipeline.active_learning.learners import PAPER, QUICK
    from pipeline.active_learning.strategies import STRATEGIES

    preset = QUICK if quick else PAPER

    def pick(value, key):
        return preset[key] if value is None else value

    unknown = sorted(set(strategy or []) - set(STRATEGIES))
    if unknown:
        fail(f"unknown strategy {unknown}; choose from {list(STRATEGIES)}")
    if augmentation not in ("paper", "thesis", "none"):
        fail("--augmentation is paper, thesis or none")
    _set_threads(threads)
    from pipeline.active_learning.keras_learner import CycleTraining
    from pipeline.active_learning.learners import learners, member_specs
    from pipeline.active_learning.loop import LoopSettings
    from pipeline.active_learning.report import reached, write_report
    from pipeline.active_learning.simulate import SimulationSettings
    from pipeline.active_learning.simulate import simulate as run
    from pipeline.data.dataset import Dataset

    if profile is not None:
        spec = profile_named(profile)
        specs, size = spec.classifier.members, input_size or spec.classifier.input_size
    else:
        try:
            specs = member_specs(member or preset["members"])
        except ValueError as error:
            fail(str(error))
        size = pick(input_size, "input_size")
    chosen_weights = pick(weights, "weights")
    with reported():
        settings = SimulationSettings(
            folds=pick(folds, "folds"),
            run_folds=pick(run_folds, "run_folds"),
            validation_share=validation_share,
            seeds=pick(seed, "seeds"),
            strategies=strategy or list(STRATEGIES),
            loop=LoopSettings(
                initial_share=initial_share,
                query_size=pick(query_size, "query_size"),
                budget=budget,
                mc_passes=pick(mc_passes, "mc_passes"),
            ),
            full_fits=full_fits,
            within=within,
            limit=pick(limit, "limit"),
            split_seed=split_seed,
        )
        if "disagreement" in settings.strategies and len(specs) < 2:
            fail(
                "the disagreement strategy needs two members or more: repeat --member, or leave it out with --strategy"
            )
        training = CycleTraining(
            epochs=pick(epochs, "epochs"),
            patience=pick(patience, "patience"),
            batch_size=pick(batch_size, "batch_size"),
            learning_rate=learning_rate,
            augmentation=augmentation,
        )
        encoder, encoder_tag = None, pick(encoder_from, "encoder_from")
        if encoder_tag:
            from pipeline.model_store.loading import load_stored, stored_model

            encoder = load_stored(stored_model(encoder_tag), "keras")
        dataset = Dataset.load(data)
        started = time.perf_counter()
        made = learners(
            specs,
            input_size=size,
            training=training,
            weights=chosen_weights,
            trainable_from=trainable_from,
            encoder=encoder,
            encoder_tag=encoder_tag,
            frozen=pick(frozen_encoder, "frozen_encoder"),
            views=views,
            augmentation=augmentation,  # type: ignore[arg-type]
            seed=split_seed,
        )

        def progress(step: str) -> None:
            console.print(f"[{time.perf_counter() - started:7.1f} s] {step}", highlight=False)

        result = run(dataset, made.make, settings, model=made.described, test_inputs=made.inputs, progress=progress)
        report = write_report(result, out)
    console.print(f"report: {report} ({(time.perf_counter() - started) / 60:.1f} min)")
    for row in reached(result):
        shown = "not reached" if row.gore_shown is None else f"{row.gore_shown:.1f} gore images shown"
        console.print(f"  {row.strategy}: {shown} (pool: {row.pool_gore:.1f})", highlight=False)


@al_app.command("next")
def next_images(
    folder: Annotated[Path, typer.Argument(help="A folder of unlabelled images.")],
    strategy: Annotated[str, typer.Option(help=f"How to rank: {STRATEGY_HELP}.")] = "entropy",
    count: Annotated[int, typer.Option("--count", "-k", min=1, help="How many images to list.")] = 20,
    profile: ProfileOption = None,
    model: Annotated[
        str | None, typer.Option(help="Model store tag of the classifier; default gore-classifier-<profile>:latest.")
    ] = None,
    mc_passes: Annotated[int, typer.Option(min=2, help="Inference-dropout passes for mc_dropout.")] = DROPOUT_PASSES,
    exclude: Annotated[
        list[Path] | None, typer.Option(help="A labelled data set folder (repeat it): its images are left out.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Breaks exact ties (and orders random).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document instead of lines.")] = False,
    allow_untrained: Annotated[
        bool, typer.Option(help="Rank with a model that was never trained (the order is then meaningless).")
    ] = False,
) -> None:
    """The next images to label: rank, score, gore probability, SHA-256 id and path, best first."""
    from pipeline.active_learning.queue import next_to_label
    from pipeline.active_learning.strategies import STRATEGIES
    from pipeline.config import get_settings
    from pipeline.model_store.loading import load_for_serving, stored_model
    from pipeline.model_store.metadata import model_name

    if strategy not in STRATEGIES:
        fail(f"unknown strategy {strategy!r}; choose from {list(STRATEGIES)}")
    with reported():
        tag = model or f"{model_name('classifier', profile or get_settings().profile)}:latest"
        classifier, info = load_for_serving(stored_model(tag), allow_untrained=allow_untrained, backend="keras")
        queue = next_to_label(
            folder,
            classifier,
            strategy,  # type: ignore[arg-type]
            count,
            model=info.tag,
            demo=info.demo,
            mc_passes=mc_passes,
            exclude=exclude,
            seed=seed,
        )
    for problem in queue.skipped:
        console.print(f"[yellow]skipped:[/] {problem}", highlight=False)
    if info.demo:
        console.print("DEMO MODEL: trained on synthetic images; this order says nothing about gore.")
    if as_json:
        print(json.dumps(queue.model_dump(), indent=1))
        return
    for item in queue.items:
        print(f"{item.rank}\t{item.score:.6f}\t{item.gore_probability:.6f}\t{item.id}\t{item.path}")
    console.print(f"{len(queue.items)} of {queue.pool} unlabelled images, by {strategy}, with {info.tag}")


@al_app.command("labels")
def labels(
    source: Annotated[Path, typer.Argument(help="Labels: a CSV file (image,label) or a VIA project (.json).")],
    images: Annotated[Path, typer.Option(help="Folder holding the labelled images.")],
    out: Annotated[Path, typer.Option(help="Data set folder to add them to (dataset.json, class folders, masks).")],
    label_format: Annotated[
        str | None, typer.Option("--format", help="csv or via; default: from the file's suffix.")
    ] = None,
) -> None:
    """Take labels into a data set folder in the training tools' formats (CSV: gore/ and not_gore/ copies;
    VIA: masks), keeping what it held; exit 1 if any label had a problem."""
    from pipeline.data.dataset import Dataset

    if label_format not in (None, "csv", "via"):
        fail("--format is csv or via")
    with reported():
        added = Dataset.add_labels(source, images, out, label_format)  # type: ignore[arg-type]
    dataset, problems = added.dataset, added.problems
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    gore = int(dataset.labels().sum())
    console.print(f"{out / 'dataset.json'}: {len(dataset)} samples ({gore} gore)")
    if problems:
        raise typer.Exit(code=1)
