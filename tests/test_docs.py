"""The documentation: README.md is the front door (short, every page one click away), and the
site in docs/ builds with no warning (a broken link or heading fails)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_the_readme_is_the_front_door_and_short():
    assert len(README.splitlines()) < 300
    for needed in ("make serve", "make test", "/censor", "Demo models", "not gore detectors"):
        assert needed in README, f"the README says {needed!r}"


def test_every_page_of_the_site_is_one_click_from_the_readme():
    linked = set(re.findall(r"\]\(docs/([^)#]+\.md)\)", README))
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, f"not linked from README.md: {sorted(pages - linked)}"


def test_the_site_builds_with_no_warning(tmp_path):
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "hostile-input" / "index.html").is_file()
