"""`gore-censor data ...`: convert, split, validate and synthesise data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import track

from pipeline.cli.common import DataArgument, console, reported, typer_group

data_app = typer_group("Data sets: VIA projects, class folders, mask pairs, splits, synthetic data.")


def _report(problems) -> None:
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    if problems:
        console.print(f"{len(problems)} problem(s)")
        raise typer.Exit(code=1)
    console.print("no problems found")


@data_app.command("via")
def via(
    project: Annotated[Path, typer.Argument(help="A VIA project or annotations JSON file.")],
    images: Annotated[Path, typer.Option(help="Folder holding the project's images.")],
    out: Annotated[Path, typer.Option(help="Where masks/ and dataset.json go.")],
) -> None:
    """VIA project JSON -> masks (filled polygons, 9x9 mean filter, PNG) and labels."""
    from pipeline.data.dataset import Dataset

    with reported():
        dataset, problems = Dataset.from_via(project, images, out)
    console.print(f"{len(dataset)} samples written to {out / 'dataset.json'}")
    _report(problems)


@data_app.command("folders")
def folders(root: Annotated[Path, typer.Argument(help="A folder with gore/ and not_gore/ inside.")]) -> None:
    """root/gore/* and root/not_gore/* -> root/dataset.json (classification)."""
    from pipeline.data.dataset import Dataset

    with reported():
        console.print(f"wrote {Dataset.from_class_folders(root).save(root)}")


@data_app.command("pairs")
def pairs(root: Annotated[Path, typer.Argument(help="A folder with images/ and masks/ inside.")]) -> None:
    """root/images/<stem>.* with root/masks/<stem>.png -> root/dataset.json (segmentation)."""
    from pipeline.data.dataset import Dataset

    with reported():
        console.print(f"wrote {Dataset.from_pairs(root).save(root)}")


@data_app.command("split")
def split(
    folder: DataArgument,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same split.")] = 0,
    validation: Annotated[float, typer.Option(help="Share of samples for validation.")] = 0.15,
    test: Annotated[float, typer.Option(help="Share of samples for test.")] = 0.15,
) -> None:
    """Stratified train / validation / test split (label and region attributes), by seed."""
    from pipeline.data.dataset import Dataset

    with reported():
        dataset = Dataset.load(folder).split(seed=seed, validation=validation, test=test)
    dataset.save()
    for part in ("train", "validation", "test"):
        subset = dataset.subset(part)
        console.print(f"{part}: {len(subset)} ({int(subset.labels().sum())} gore)")


@data_app.command("validate")
def validate(
    folder: Annotated[Path | None, typer.Argument(help="A folder with dataset.json.")] = None,
    via: Annotated[Path | None, typer.Option(help="A VIA project to check instead.")] = None,
    images: Annotated[Path | None, typer.Option(help="The VIA project's image folder.")] = None,
) -> None:
    """List every problem (missing file, polygon outside the image, unreadable image, empty class); exit 1 if any."""
    from pipeline.data.validation import validate_dataset, validate_via

    if via is not None:
        if images is None:
            raise typer.BadParameter("--via needs --images")
        _report(validate_via(via, images))
    elif folder is not None:
        _report(validate_dataset(folder))
    else:
        raise typer.BadParameter("give a data set folder, or --via PROJECT --images FOLDER")


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the synthetic data set into.")],
    count: Annotated[int, typer.Option(help="How many images.")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same images and split.")] = 0,
    size: Annotated[int, typer.Option(help="Side of the square images, in pixels.")] = 320,
) -> None:
    """A SYNTHETIC data set (deterministic by seed): procedural wound-like regions, exact masks."""
    from pipeline.data.synthetic import generate

    steps = iter(track(range(count), description="synthesising", console=console))
    dataset = generate(out, count, seed=seed, size=size, progress=lambda _: next(steps, None)).split(seed=seed)
    dataset.save()
    console.print(f"{count} SYNTHETIC images in {out} ({int(dataset.labels().sum())} positive), split by seed {seed}")
