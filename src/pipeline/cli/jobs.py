"""`gore-censor job`: a collection censored in this process, with a progress bar; resumable."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pipeline.cli.common import console, fail, reported
from pipeline.config import get_settings


def job(
    folder: Annotated[Path | None, typer.Argument(help="A folder: every image in it, recursively.")] = None,
    resume: Annotated[str | None, typer.Option(help="Go on with this job (its id) where it stopped.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where results go; default: $GORE_DATA_DIR.")] = None,
    render: Annotated[bool, typer.Option(help="Write each censored copy and mask now.")] = True,
    allow_untrained: Annotated[bool, typer.Option(help="Dry run with untrained models.")] = False,
) -> None:
    """Censor a whole collection in this process, as the service's jobs do: images already analysed
    cost only their hash, bad files are recorded and skipped, and `--resume ID` goes on after a stop."""
    from pipeline.serving.jobs import JobRunner
    from pipeline.serving.local_models import local_censorer
    from pipeline.stores.jobs import JobStore

    settings = get_settings()
    store = JobStore.in_data_dir(data_dir or settings.data_dir)
    store.release_claims()
    with reported():
        if resume is not None:
            status = store.status(resume)
        elif folder is not None and folder.is_dir():
            root = folder.resolve()
            paths = sorted(
                os.path.relpath(Path(here) / name, root)
                for here, _, names in os.walk(root)
                for name in names
                if not name.startswith(".")
            )
            status = store.create_for(paths, root, str(folder), by="gore-censor job (shell)")
        else:
            fail("give a folder of images, or --resume JOB_ID")
        censorer = local_censorer(settings, allow_untrained=allow_untrained, data_dir=data_dir, render=render)

    async def current():  # The runner asks for the pipeline as the service does.
        return censorer

    runner = JobRunner(store, current, settings.max_batch_size)
    console.print(f"job {status.id}: {status.total:,} files from {status.source}")
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("censoring", total=status.total, completed=status.done + status.failed, note="")

        async def work() -> None:
            while await runner.step():
                now = store.status(status.id)
                progress.update(
                    bar,
                    completed=now.done + now.failed,
                    note=f"{now.failed} failed, {now.already_analysed} already analysed",
                )

        asyncio.run(work())
    final = store.status(status.id)
    console.print(
        f"job {final.id}: {final.done:,} done, {final.failed:,} failed "
        f"(`gore-censor` keeps each file's outcome in {store.path})"
    )
    if final.failed:
        raise typer.Exit(code=1)
