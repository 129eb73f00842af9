"""A report: titled tables of figures, notes and pictures, written as Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.files import atomic_write

Row = dict[str, float | str]


def _cell(value: float | str) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@dataclass
class Report:
    title: str
    tables: dict[str, Row | list[Row]] = field(default_factory=dict)
    """A table is one row of figures, or several rows with the same columns."""
    notes: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        lines += [f"> {note}" for note in self.notes] + ([""] if self.notes else [])
        for name, table in self.tables.items():
            rows = table if isinstance(table, list) else [table]
            lines += [f"## {name}", "", "| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
            lines += ["| " + " | ".join(_cell(v) for v in row.values()) + " |" for row in rows] + [""]
        lines += [f"![{caption}]({path})" for caption, path in self.figures.items()]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> Path:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return atomic_write(Path(out_dir) / "report.md", self.markdown(), mode=0o644)
