"""ThreatExchange's and HMA's plain signal file: `<signal type> <signal>` a line (`pdq <hex>`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pipeline.known.pdq import checked_hash
from pipeline.stores.hash_lists import ListEntry

PDQ_NAMES = frozenset({"pdq", "hash_pdq"})  # SignalType.get_name(), and ThreatExchange's indicator type.
MOST_KINDS = 20  # Other signal types counted by name; past that, as "other" (the answer names them all).


def read(lines: Iterable[str], skipped: dict[str, int]) -> Iterator[ListEntry]:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        kind, _, signal = text.partition(" ")
        if not signal:  # A bare hash: the file is of one type, PDQ.
            kind, signal = "pdq", kind
        if kind.lower() not in PDQ_NAMES:
            kind = kind[:40] if kind[:40] in skipped or len(skipped) < MOST_KINDS else "other"
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        try:
            yield ListEntry(hash=checked_hash(signal))
        except ValueError as error:
            raise ValueError(f"line {number}: {error}") from None


def write(entries: Iterable[ListEntry], label: str | None = None) -> Iterator[str]:
    for entry in entries:
        yield f"pdq {entry.hash}\n"
