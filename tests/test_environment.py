"""A record names segbench's own commit and, separately, the suite's repository's commit,
not whatever repository the command happened to run in."""

import shutil
import subprocess
from pathlib import Path

import pytest

import segbench
from segbench.environment import git_commit, run_environment, segbench_commit

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _repository_with_a_suite(folder: Path) -> str:
    folder.mkdir()
    (folder / "suite.toml").write_text('name = "s"\n')
    for command in (["init", "-q"], ["add", "suite.toml"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "s"]):
        subprocess.run(["git", *command], cwd=folder, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True, text=True).stdout.strip()


@needs_git
def test_the_suite_commit_is_the_suites_repository_not_the_working_directory(tmp_path, monkeypatch):
    commit = _repository_with_a_suite(tmp_path / "experiments")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recorded = run_environment(tmp_path / "experiments" / "suite.toml")
    assert recorded["suite_commit"] == commit
    assert recorded["segbench_commit"] == segbench_commit()


@needs_git
def test_a_suite_outside_any_repository_has_no_suite_commit(tmp_path):
    (tmp_path / "suite.toml").write_text('name = "s"\n')
    assert run_environment(tmp_path / "suite.toml")["suite_commit"] is None


@needs_git
def test_segbench_commit_is_the_commit_of_segbench_s_own_source():
    source = Path(segbench.__file__).parent
    assert segbench_commit() == git_commit(source)
    if segbench_commit() is not None:  # a checkout (editable install), as in this repository
        assert len(segbench_commit()) == 40
