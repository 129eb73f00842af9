"""The CSV HMA and the ThreatExchange CLI keep hashes in (`simple.HASH_PDQ.te`):

    indicator, indicator id, first descriptor id, added on, labels (space separated)

The ThreatExchange CLI's variant has no indicator id (four columns); both are read, and so is a
row of the hash alone. Labels become
the hash's tags. Exported rows carry our labels: the list's (or, for reviews, the verdict) first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime

from pipeline.known.pdq import checked_hash
from pipeline.stores.hash_lists import ListEntry

MOST_LINE = 4096  # No row of a hash list is longer: a longer one is refused before csv reads it.


def _short(lines: Iterable[str]) -> Iterator[str]:
    for number, line in enumerate(lines, 1):
        if len(line) > MOST_LINE:
            raise ValueError(f"line {number}: longer than {MOST_LINE} characters")
        if "\n" in line.rstrip("\r\n") or "\r" in line.rstrip("\r\n"):
            raise ValueError(f"line {number}: a field spans lines")
        yield line


def read(lines: Iterable[str], skipped: dict[str, int]) -> Iterator[ListEntry]:
    rows = csv.reader(_short(lines))
    for number in range(1, 2**62):
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as error:
            raise ValueError(f"line {number}: {error}") from None
        if not row or not "".join(row).strip() or row[0].startswith("#"):
            continue
        if row[0].strip().lower() in ("indicator", "hash"):  # A header row.
            continue
        if len(row) not in (1, 4, 5):
            raise ValueError(f"line {number}: expected 4 or 5 columns (indicator[, id], descriptor, added, labels)")
        indicator_id = row[1].strip() if len(row) == 5 else None
        added, labels = (row[-2].strip(), row[-1]) if len(row) > 1 else ("", "")
        try:
            at = datetime.fromisoformat(added.replace("Z", "+00:00")) if added else None
            yield ListEntry(hash=checked_hash(row[0]), tags=labels.split(), at=at, indicator_id=indicator_id or None)
        except ValueError as error:
            raise ValueError(f"line {number}: {error}") from None


def write(entries: Iterable[ListEntry], label: str | None = None) -> Iterator[str]:
    for entry in entries:
        out = io.StringIO()
        labels = [entry.label or label or "", *entry.tags]
        at = entry.at.isoformat() if entry.at else ""
        csv.writer(out, lineterminator="\n").writerow(
            [entry.hash, entry.indicator_id or "", "0", at, " ".join(t for t in labels if t)]
        )
        yield out.getvalue()
