"""`gore-censor hashes ...`: hash lists of known content from the shell (import, export, list,
enable, disable, delete) and the PDQ hashes of image files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.access import DataDirOption
from pipeline.cli.common import console, reported, service_tables, typer_group

hashes_app = typer_group("Hash lists of known content (PDQ): HMA and ThreatExchange files in and out.")
SHELL = "gore-censor hashes (shell)"
FormatOption = Annotated[str, typer.Option("--format", help="signals (`pdq <hash>` lines) or hma-csv (HMA's CSV).")]


def _lists(data_dir: Path | None):
    from pipeline.stores.hash_lists import HashLists

    return service_tables(HashLists, data_dir)


def _audit(data_dir: Path | None, action: str, detail: str) -> None:
    from pipeline.stores.access import AccessStore

    service_tables(AccessStore, data_dir).audit(SHELL, action, detail=detail)


@hashes_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="The list file (UTF-8 text).")],
    name: Annotated[str, typer.Option(help="The list's name (unique).")],
    source: Annotated[str, typer.Option(help="Where it came from (an exchange, a partner).")],
    label: Annotated[str, typer.Option(help="gore (a match makes an image gore), not_gore or info (shown only).")],
    format: FormatOption = "signals",
    tag: Annotated[list[str] | None, typer.Option(help="Other labels of the list; repeat for several.")] = None,
    disabled: Annotated[bool, typer.Option(help="Import it disabled (not matched until enabled).")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """A list from a file, whole or not at all; a bad row names its line."""
    from pipeline.known.lists import import_list

    def lines():
        with file.open(encoding="utf-8", newline="") as text:
            yield from text

    with reported():
        made, _, skipped = import_list(
            _lists(data_dir),
            lines,
            name=name,
            source=source,
            label=label,
            format=format,
            by=SHELL,
            tags=tag or (),
            enabled=not disabled,
        )
    _audit(data_dir, "hash list imported", f"{made.name}: {made.size} hashes, {made.label}")
    others = ", ".join(f"{n} {kind}" for kind, n in skipped.items())
    said = f"list {made.name!r}: {made.size:,} PDQ hashes, {made.label}"
    console.print(said + (f"; skipped {others}" if others else ""))


@hashes_app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="The list; `reviews` is this deployment's own reviews.")],
    format: FormatOption = "hma-csv",
    label: Annotated[str | None, typer.Option(help="Only the hashes of this label (gore, not_gore, info).")] = None,
    output: Annotated[Path | None, typer.Option(help="Write here; default: standard output.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """A list as a file others can import (HMA, ThreatExchange, another gore-censor)."""
    from pipeline.known.lists import export_list

    with reported():
        lines = export_list(_lists(data_dir), name, format, label)
        if output is None:
            sys.stdout.writelines(lines)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                out.writelines(lines)
    _audit(data_dir, "hash list exported", f"{name} ({format})")


@hashes_app.command("list")
def list_lists(data_dir: DataDirOption = None) -> None:
    """Every list: name, label, source, size, enabled."""
    table = Table("name", "label", "source", "hashes", "enabled", "tags", "created", "by")
    for found in _lists(data_dir).lists():
        table.add_row(
            found.name,
            found.label,
            found.source,
            f"{found.size:,}",
            "yes" if found.enabled else "no",
            " ".join(found.tags),
            found.created_at.isoformat(timespec="seconds"),
            found.created_by,
        )
    Console(width=200).print(table)


def _enable(name: str, enabled: bool, data_dir: Path | None) -> None:
    with reported():
        changed = _lists(data_dir).set_enabled(name, enabled)
    _audit(data_dir, "hash list " + ("enabled" if enabled else "disabled"), changed.name)
    console.print(f"list {changed.name!r} is {'enabled' if enabled else 'disabled'}")


@hashes_app.command("enable")
def enable(name: str, data_dir: DataDirOption = None) -> None:
    """Match the list again (every replica within GORE_KNOWN_REFRESH_S)."""
    _enable(name, True, data_dir)


@hashes_app.command("disable")
def disable(name: str, data_dir: DataDirOption = None) -> None:
    """Keep the list but stop matching it."""
    _enable(name, False, data_dir)


@hashes_app.command("delete")
def delete(name: str, data_dir: DataDirOption = None) -> None:
    """Delete a list and its hashes (to replace a list: delete it, import the new one)."""
    with reported():
        gone = _lists(data_dir).delete(name)
    _audit(data_dir, "hash list deleted", gone.name)
    console.print(f"list {gone.name!r} deleted ({gone.size:,} hashes)")


@hashes_app.command("of")
def hashes_of(files: Annotated[list[Path], typer.Argument(help="Image files.")]) -> None:
    """Each image's PDQ hash and quality, as JSON lines (decoded as the service decodes uploads)."""
    from pipeline.config import get_settings
    from pipeline.known.pdq import image_pdq
    from pipeline.serving.views import Limits

    limits = Limits.from_settings(get_settings())
    for path in files:
        with reported():
            decoded = limits.decode(path.read_bytes(), path.name)
            pdq = image_pdq(decoded.frames)
        print(json.dumps({"file": str(path), "pdq": pdq.hash, "quality": pdq.quality}))


@hashes_app.command("backfill")
def backfill_command(data_dir: DataDirOption = None) -> None:
    """PDQ hashes for the image records stored before PDQ, so the lists can match them (safe while
    the service runs; each original is decoded once)."""
    from pipeline.config import get_settings
    from pipeline.known.backfill import backfill
    from pipeline.serving.views import Limits
    from pipeline.stores import Shared, image_store

    settings = get_settings()
    shared = None if data_dir else Shared.of(settings)
    store = image_store(data_dir or settings.data_dir, settings.threshold, shared)
    with reported():
        done, failed = backfill(store, Limits.from_settings(settings).decode)
    _audit(data_dir, "PDQ hashes backfilled", f"{done} records; {len(failed)} could not be read")
    console.print(f"{done:,} record(s) gained a PDQ hash" + (f"; not readable: {', '.join(failed)}" if failed else ""))
