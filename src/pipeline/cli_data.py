"""`gore-censor data ...`: convert, split, validate and synthesise data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import track

data_app = typer.Typer(help="Data sets: VIA projects, class folders, mask pairs, splits, synthetic data.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def _report(problems) -> None:
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    if problems:
        console.print(f"{len(problems)} problem(s)")
        raise typer.Exit(code=1)
    console.print("no problems found")


@data_app.command("via")
def via(project: Path, images: Annotated[Path, typer.Option(help="Folder holding the project's images.")],
        out: Annotated[Path, typer.Option(help="Where masks/ and dataset.json go.")]) -> None:
    """VIA project JSON -> masks (filled polygons, 9x9 mean filter, PNG) and labels."""
    from pipeline.data.via import convert_via

    dataset, problems = convert_via(project, images, out)
    console.print(f"{len(dataset.samples)} samples written to {out / 'dataset.json'}")
    _report(problems)


@data_app.command("folders")
def folders(root: Path) -> None:
    """root/gore/* and root/not_gore/* -> root/dataset.json (classification)."""
    from pipeline.data.folders import from_class_folders

    console.print(f"wrote {from_class_folders(root).save(root)}")


@data_app.command("pairs")
def pairs(root: Path) -> None:
    """root/images/<stem>.* with root/masks/<stem>.png -> root/dataset.json (segmentation)."""
    from pipeline.data.folders import from_mask_pairs

    console.print(f"wrote {from_mask_pairs(root).save(root)}")


@data_app.command("split")
def split(folder: Path, seed: int = 0, validation: float = 0.15, test: float = 0.15) -> None:
    """Stratified train / validation / test split (label and region attributes), by seed."""
    from pipeline.data.manifest import Dataset
    from pipeline.data.split import split_dataset

    dataset = split_dataset(Dataset.load(folder), seed=seed, validation=validation, test=test)
    dataset.save(folder)
    for part in ("train", "validation", "test"):
        subset = dataset.subset(part)
        console.print(f"{part}: {len(subset)} ({sum(s.gore for s in subset)} gore)")


@data_app.command("validate")
def validate(folder: Annotated[Path | None, typer.Argument(help="A folder with dataset.json.")] = None,
             via: Annotated[Path | None, typer.Option(help="A VIA project to check instead.")] = None,
             images: Annotated[Path | None, typer.Option(help="The VIA project's image folder.")] = None) -> None:
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
def synth(out: Path, count: int = 600, seed: int = 0, size: int = 320) -> None:
    """A SYNTHETIC data set (deterministic by seed): procedural wound-like regions, exact masks."""
    from pipeline.data.split import split_dataset
    from pipeline.data.synthetic import generate

    steps = iter(track(range(count), description="synthesising", console=console))
    dataset = generate(out, count, seed=seed, size=size, progress=lambda _: next(steps, None))
    split_dataset(dataset, seed=seed).save(out)
    console.print(f"{count} SYNTHETIC images in {out} ({sum(s.gore for s in dataset.samples)} positive), split by seed {seed}")
