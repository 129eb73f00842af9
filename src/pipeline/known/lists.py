"""Importing and exporting hash lists: the one path the CLI and the admin route share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from pipeline.errors import InvalidRequest
from pipeline.known.formats import entries, write_list
from pipeline.stores.hash_lists import HashList, HashLists, ListLabel

Lines = Callable[[], Iterable[str]]
"""The file's lines, from the start, each time it is called: it is read twice, never held whole."""


def import_list(
    lists: HashLists,
    lines: Lines,
    *,
    name: str,
    source: str,
    label: ListLabel,
    format: str,
    by: str,
    tags: Iterable[str] = (),
    enabled: bool = True,
) -> tuple[HashList, int, dict[str, int]]:
    """A list from an exchange file, whole or not at all: every row is checked first (a bad one
    is an InvalidRequest naming its line), then the hashes go in, in one transaction. Returns the
    list, the PDQ rows read, and the rows of other signal types skipped (by type)."""
    skipped: dict[str, int] = {}
    try:
        read = sum(1 for _ in entries(lines(), format, skipped))
    except UnicodeDecodeError:
        raise InvalidRequest("a hash list file is UTF-8 text") from None
    except ValueError as error:
        raise InvalidRequest(f"{error}; nothing was imported") from None
    if not read:
        others = ", ".join(f"{n} {kind}" for kind, n in skipped.items())
        raise InvalidRequest("the file holds no PDQ hash" + (f" (only {others})" if others else ""))
    made = lists.create(name, source, label, entries(lines(), format), by=by, tags=tags, enabled=enabled)
    return made, read, skipped


def export_list(lists: HashLists, name: str, format: str, label: ListLabel | None = None) -> Iterator[str]:
    found = lists.get(name)  # A missing list is refused before the first line.
    try:
        return write_list(lists.entries(name, label), format, found.label)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None
