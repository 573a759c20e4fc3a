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


# --- console blocks: docs/console.py ---------------------------------------------------------

CONSOLE = ROOT / "docs" / "console.py"


def console(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CONSOLE), *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_every_console_block_in_the_readme_and_docs_is_current():
    result = console("--check")
    assert result.returncode == 0, result.stderr


def page(tmp_path, text):
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_stale_block_fails_the_check_and_is_rewritten(tmp_path):
    path = page(tmp_path, "Intro.\n\n<!-- console -->\n```console\n$ echo hello\nold output\n```\n\nAfter.\n")
    check = console("--check", path)
    assert check.returncode == 1
    assert "page.md:4: stale" in check.stderr and "-old output" in check.stderr and "+hello" in check.stderr
    assert console(path).returncode == 0
    assert path.read_text() == "Intro.\n\n<!-- console -->\n```console\n$ echo hello\nhello\n```\n\nAfter.\n"
    assert console("--check", path).returncode == 0


def test_commands_share_one_shell_and_their_output_is_normalised(tmp_path):
    path = page(tmp_path, "  <!-- console -->\n  ```console\n  $ false\n  $ echo $?\n"
                          "  $ echo $SEGBENCH_DATA_CACHE $HOME/x; printf 'bar 10%%\\rbar 100%%\\n'\n  ```\n")
    assert console(path).returncode == 0
    assert path.read_text() == ("  <!-- console -->\n  ```console\n  $ false\n  $ echo $?\n  1\n"
                                "  $ echo $SEGBENCH_DATA_CACHE $HOME/x; printf 'bar 10%%\\rbar 100%%\\n'\n"
                                "  ~/.cache/segbench ~/x\n  bar 100%\n  ```\n")


def test_a_changed_duration_alone_is_not_stale(tmp_path):
    path = page(tmp_path, "<!-- console -->\n```console\n$ echo cached in 3.9 s, 12.0 MiB\ncached in 0.4 s, 12.0 MiB\n```\n")
    assert console("--check", path).returncode == 0
    path.write_text(path.read_text().replace("12.0 MiB\n```", "11.0 MiB\n```"))
    assert console("--check", path).returncode == 1


def test_from_runs_another_command_in_place_of_the_shown_one(tmp_path):
    block = "<!-- console from=\"{}\" -->\n```console\n$ segbench run suites/upsampling.toml\ntable\n```\n"
    assert console("--check", page(tmp_path, block.format("echo table"))).returncode == 0
    assert console("--check", page(tmp_path, block.format("ls no-such-file"))).returncode == 1
    bare = console("--check", page(tmp_path, "<!-- console pending -->\n```console\n$ echo x\nx\n```\n"))
    assert bare.returncode != 0 and "unknown console option 'pending'" in bare.stderr


def test_a_console_block_without_a_marker_is_refused(tmp_path):
    path = page(tmp_path, "```console\n$ echo made up\nmade up\n```\n\n````markdown\n```console\n$ quoted\n```\n````\n")
    result = console("--check", path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{path}:1: a console block without a <!-- console --> marker"]
