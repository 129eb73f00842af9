"""A report: titled tables of figures, notes and pictures, written as Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    title: str
    tables: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        lines += [f"> {note}" for note in self.notes] + ([""] if self.notes else [])
        for name, row in self.tables.items():
            lines += [
                f"## {name}",
                "",
                "| " + " | ".join(row) + " |",
                "|" + " --- |" * len(row),
                "| " + " | ".join(f"{v:.4f}" for v in row.values()) + " |",
                "",
            ]
        lines += [f"![{caption}]({path})" for caption, path in self.figures.items()]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> Path:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        path = Path(out_dir) / "report.md"
        path.write_text(self.markdown())
        return path
