"""The layout: one room per concern, and imports that only go one way between rooms."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "pipeline"


def room(module: str) -> str:
    """pipeline.serving.censorer -> serving; pipeline.config -> config."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports_between_rooms() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        here = room(".".join(("pipeline", *path.relative_to(SOURCE).with_suffix("").parts)))
        for node in ast.walk(ast.parse(path.read_text())):  # Imports inside functions count too.
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("pipeline.") and room(name) != here:
                    edges.setdefault(here, set()).add(room(name))
    return edges


EDGES = imports_between_rooms()


def test_there_is_no_import_cycle_between_rooms():
    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in EDGES.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(r for r in EDGES if r in reachable(r))
    assert not cycles, f"rooms on an import cycle: {cycles}; edges: {EDGES}"


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("training", "evaluation"),
        ("training", "serving"),
        ("serving", "training"),
        ("serving", "evaluation"),
        ("data", "training"),
        ("imaging", "serving"),
        ("serving", "web"),  # The web app builds on the service; service.py mounts it.
        ("stores", "serving"),
        ("stores", "web"),
        ("imaging", "web"),
        ("training", "web"),
        # Active learning is a peer of training and evaluation: it builds on training, nothing below builds on it.
        ("active_learning", "serving"),
        ("active_learning", "evaluation"),
        ("active_learning", "cli"),
        ("training", "active_learning"),
        ("evaluation", "active_learning"),
        ("data", "active_learning"),
        # Uncertainty is shared by evaluation, active learning and the service: it builds on none of them.
        ("uncertainty", "serving"),
        ("uncertainty", "active_learning"),
        ("uncertainty", "evaluation"),
        ("uncertainty", "web"),
    ],
)
def test_rooms_stay_out_of_each_other(importer, forbidden):
    assert forbidden not in EDGES.get(importer, set()), f"{importer} imports {forbidden}"


def test_the_stores_import_nothing_above_them():
    """State is the bottom floor: the pipeline and the web app build on the stores, never the reverse."""
    assert EDGES.get("stores", set()) <= {"errors", "files"}, EDGES.get("stores")


def test_the_web_app_does_not_import_the_composition_root():
    """service.py hands the web app what it uses (settings, stores, views, the pipeline); the web app
    knows nothing of how the service is wired."""
    for path in (SOURCE / "web").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module != "pipeline.serving.entry", f"{path.name} imports the composition root"


def test_no_module_sits_loose_beside_the_rooms():
    loose = sorted(p.name for p in SOURCE.glob("*.py"))
    assert loose == ["__init__.py", "config.py", "demo.py", "errors.py", "metrics.py", "profiles.py"], (
        "shared kernel only: config, errors, profiles, metrics, and the demo recipe"
    )


def test_the_light_modules_stay_light():
    """The Censor service and the CLI's start import these; TensorFlow must not come with them."""
    import subprocess
    import sys

    code = (
        "import sys, pipeline.config, pipeline.profiles, pipeline.model_store.metadata, pipeline.serving.schemas, "
        "pipeline.cli; print('tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_the_query_strategies_stay_light():
    """A service may rank with them: scikit-activeml and NumPy, never TensorFlow."""
    import subprocess
    import sys

    code = "import sys, pipeline.active_learning.strategies; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
