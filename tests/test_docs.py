"""The documentation: the MkDocs site builds with --strict, the README's links resolve, and the
README keeps the quickstart that CI and users run verbatim."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=root, capture_output=True, text=True, timeout=300)


def test_the_site_builds_strict(tmp_path):
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    for page in ("index.html", "guide/suites/index.html", "statistics/index.html", "api/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


@pytest.mark.parametrize("breakage", [
    ("guide/data.md", "[a page that is not there](nowhere.md)"),
    ("guide/data.md", "[a heading that is not there](suites.md#no-such-heading)"),
    ("guide/new-page.md", "# A page left out of the nav"),
])
def test_a_broken_link_or_a_page_outside_the_nav_fails_the_build(tmp_path, breakage):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy)
    page, text = breakage
    with (copy / "docs" / page).open("a", encoding="utf-8") as f:
        f.write("\n" + text + "\n")
    result = build(copy, tmp_path / "site")
    assert result.returncode != 0
    assert "WARNING" in result.stderr and page in result.stderr


def _anchors(markdown: str) -> set[str]:
    """GitHub's and MkDocs' heading ids, for the headings used here (no duplicates)."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_in_the_readme_resolves():
    missing = []
    for target in LINK.findall(README.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else README
        if not file.exists():
            missing.append(target)
        elif anchor and anchor not in _anchors(file.read_text(encoding="utf-8")):
            missing.append(target)
    assert missing == []


def test_the_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    # The quickstart's two commands, as .ci/run and users run them.
    assert ("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/segbench run suites/upsampling.toml"
            in text)
    assert "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest" in text
    assert "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest" in (
        ROOT / ".ci" / "run").read_text(encoding="utf-8")
