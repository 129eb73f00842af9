"""The shape of the code, in numbers: modules and lines per package, the deepest chain of imports
between modules, and the imports from the web app into the serving package.

    python benchmarks/import_graph.py [CHECKOUT]     # default: this checkout

Every `pipeline.*` import counts, those inside functions too (`from a import b` counts as an arrow
to module `a.b` when that is a module, else to `a`).
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path


def modules(source: Path) -> dict[str, Path]:
    found = {}
    for path in source.rglob("*.py"):
        parts = list(path.relative_to(source).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(["pipeline", *parts])] = path
    return found


def arrows(found: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in found.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
                for alias in node.names:
                    nested = f"{node.module}.{alias.name}"
                    targets.add(nested if nested in found else node.module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name.startswith("pipeline")}
        edges[name] = {t for t in targets if t in found and t != name}
    return edges


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def main(checkout: Path) -> None:
    found = modules(checkout / "src" / "pipeline")
    edges = arrows(found)
    count, lines = Counter(), Counter()
    for name, path in found.items():
        count[room(name)] += 1
        lines[room(name)] += len(path.read_text().splitlines())
    total = sum(lines.values())
    print("modules and lines per package:")
    for name in sorted(count, key=lambda r: -lines[r]):
        print(f"  {name}: {count[name]} modules, {lines[name]:,} lines ({lines[name] / total:.0%})")

    memo: dict[str, tuple[str, ...]] = {}

    def longest(module: str, stack: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The longest chain from `module` (imports back into the chain so far are not followed)."""
        if module not in memo:
            best: tuple[str, ...] = (module,)
            for target in edges[module] - set(stack):
                chain = (module, *longest(target, (*stack, module)))
                best = chain if len(chain) > len(best) else best
            memo[module] = best
        return memo[module]

    sys.setrecursionlimit(10_000)
    deepest = max((longest(name) for name in found), key=len)
    print(f"deepest chain: {len(deepest) - 1} arrows: " + " -> ".join(m.removeprefix("pipeline.") for m in deepest))
    web_to_serving = sum(1 for m in found if room(m) == "web" for t in edges[m] if room(t) == "serving")
    print(f"arrows from web modules to serving modules: {web_to_serving}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
