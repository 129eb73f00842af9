"""Hash list files as the field exchanges them, one converter per format:

    signals   ThreatExchange's and HMA's plain signal file (LocalFileSignalExchangeAPI): one
              `<signal type> <signal>` a line, e.g. `pdq 3f0a...`; the type may be left out when
              the whole file is one type.
    hma-csv   the CSV HMA and the ThreatExchange CLI keep fetched hashes in (`simple.HASH_PDQ.te`):
              indicator, indicator id, descriptor id, added on, labels (space separated); the CLI's
              own variant without the indicator id is read too.

Only PDQ hashes are read; rows of other signal types are counted and skipped. A file is hostile:
every row is checked, and one bad row refuses the file with its line number (nothing imported).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from pipeline.known.formats import hma_csv, signals
from pipeline.stores.hash_lists import ListEntry

Format = Literal["signals", "hma-csv"]
FORMATS: dict[str, tuple] = {"signals": (signals.read, signals.write), "hma-csv": (hma_csv.read, hma_csv.write)}
MOST_ERRORS_SHOWN = 5


@dataclass
class Parsed:
    entries: list[ListEntry] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    """Signal type -> rows of that type left out (not PDQ)."""


def entries(lines: Iterable[str], format: str, skipped: dict[str, int] | None = None) -> Iterator[ListEntry]:
    """The PDQ hashes of a list file as they are read (a large list is never held whole);
    ValueError names the first bad line."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    return FORMATS[format][0](lines, {} if skipped is None else skipped)


def read_list(lines: Iterable[str], format: str) -> Parsed:
    """Every PDQ hash of a (small) list file, held; ValueError names the first bad line."""
    parsed = Parsed()
    parsed.entries.extend(entries(lines, format, parsed.skipped))
    return parsed


def write_list(entries: Iterable[ListEntry], format: str, label: str | None = None) -> Iterator[str]:
    """The list as `format`'s lines, each ending in a newline."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    return FORMATS[format][1](entries, label)
