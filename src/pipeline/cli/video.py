"""`gore-censor video`: a video censored in this process, frame by frame, no server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from pipeline.cli.common import console, reported
from pipeline.config import get_settings


def video(
    file: Annotated[Path, typer.Argument(help="An MP4, MOV, MKV or WebM file.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option(help="Folder for the censored copy, timeline, masks and strip.")] = Path("."),
    mute: Annotated[bool, typer.Option(help="Leave the sound out of the censored copy.")] = False,
    allow_untrained: Annotated[bool, typer.Option(help="Dry run with untrained models.")] = False,
) -> None:
    """Censor a video: classify sampled frames, mask the gore pixels of the gore segments, keep the sound.

    Writes <name>.censored.mp4, <name>.json (the timeline), <name>.masks.jsonl, <name>.strip.png and
    <name>.gore.edl (the gore segments as an edit decision list);
    prints the gore segments. Sampling, padding and limits: the GORE_VIDEO_* settings.
    """
    from pipeline.known.matcher import Matcher
    from pipeline.serving.local_models import local_model
    from pipeline.stores import Shared
    from pipeline.stores.hash_lists import HashLists
    from pipeline.video.censor import VideoCensorer, VideoModels, VideoOptions
    from pipeline.video.decode import VideoLimits

    settings = get_settings()
    untrained = allow_untrained or settings.allow_untrained
    with reported():
        classify, classifier = local_model(
            settings.classifier_tag, untrained, settings.backend, settings.threads_per_model
        )
        segment, segmenter = local_model(
            settings.segmenter_tag, untrained, settings.backend, settings.threads_per_model
        )
        models = VideoModels.of(classify, segment, classifier, segmenter, settings.max_batch_size)
        options = VideoOptions.from_settings(settings, classifier.threshold, segmenter.threshold, mute=mute)
        shared = Shared.of(settings)  # The service's hash lists: a listed frame is gore here too.
        lists = HashLists.open(settings.data_dir, shared.database_url if shared else None)
        matcher = Matcher(lists, settings.known_refresh_s, settings.known_distance)
        censorer = VideoCensorer(models, VideoLimits.from_settings(settings), matcher.match)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f} s of video"),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            tasks = {"analyse": bar.add_task("classifying sampled frames", total=None)}
            tasks["mask"] = bar.add_task("masking and encoding", total=None, start=False)

            def advance(phase: str, done_s: float, total_s: float | None) -> None:
                bar.start_task(tasks[phase])
                bar.update(tasks[phase], completed=done_s, total=total_s)

            result = asyncio.run(censorer.censor(file, out, options, progress=advance))
    if result.demo:
        console.print("[yellow]demo models[/]: trained on synthetic data, not a gore detector", highlight=False)
    if result.stopped:
        console.print(f"[yellow]partial:[/] decoding stopped {result.stopped}", highlight=False)
    for segment_ in result.segments:
        console.print(
            f"gore {segment_.start_s:.2f}-{segment_.end_s:.2f} s (peak {segment_.peak_probability:.2f}), "
            f"masked {segment_.padded_start_s:.2f}-{segment_.padded_end_s:.2f} s",
            highlight=False,
        )
    console.print(
        f"{result.frames} frames, {result.masked_frames} masked, {len(result.hidden_frames)} hidden whole: "
        f"{out / result.outputs['video']}",
        highlight=False,
    )
