"""`gore-censor censor`: the service's pipeline in this process, no server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import console, reported
from pipeline.config import MOST_MARGIN, CensorStyle, get_settings


def censor(
    files: Annotated[list[Path], typer.Argument(help="Image files.", exists=True, dir_okay=False)],
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Gore probability to censor at; default: the deployment's."),
    ] = None,
    style: Annotated[
        CensorStyle | None, typer.Option(help="Look of censored pixels; default: the deployment's.")
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=MOST_MARGIN, help="Model pixels to widen the censored region by; default: the deployment's."
        ),
    ] = None,
    uncertainty: Annotated[
        bool, typer.Option(help="N inference-dropout passes (GORE_UNCERTAINTY_PASSES): mean, std; doubt censors.")
    ] = False,
    cascade: Annotated[bool, typer.Option(help="Also the thesis' cascading rule (WRL, then BCE members).")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Where results go; default: $GORE_DATA_DIR.")] = None,
    allow_untrained: Annotated[bool, typer.Option(help="Dry run with untrained models.")] = False,
    render: Annotated[
        bool, typer.Option(help="Write each censored copy and mask now (the service makes them when first asked for).")
    ] = True,
) -> None:
    """Run the pipeline in-process and write the same JSON and files as the service; prints the JSON."""
    from pipeline.errors import PipelineError
    from pipeline.serving.censorer import Upload
    from pipeline.serving.local_models import local_censorer

    settings = get_settings()
    with reported():
        censorer = local_censorer(settings, allow_untrained=allow_untrained, data_dir=data_dir, render=render)
    uploads = [Upload(path, path.name) for path in files]
    outcomes = asyncio.run(censorer.censor(uploads, censorer.options(threshold, style, margin, uncertainty, cascade)))
    failed = 0
    for outcome in outcomes:
        if isinstance(outcome, PipelineError):
            failed += 1
            console.print(f"[red]error:[/] {outcome}", highlight=False)
        else:
            print(json.dumps(outcome.model_dump(mode="json")))
    if failed:
        raise typer.Exit(code=1)
