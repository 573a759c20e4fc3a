"""Benchmarks run on demand (``python -m pytest benchmarks``), not in the test command; the
``quick`` ones (``-m quick``, under a minute) also run in CI, so a broken benchmark shows.

Each benchmark times a reference and segbench side by side in one session; the session
ends with a table of ratios (this machine is noisy, so ratios, not absolute times, are
what the README reports)."""

from __future__ import annotations

import pytest

_ratios: list = []
_shares: list = []


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SEGBENCH_DATA_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def ratios():
    """Collects ``(name, ratio, target)`` rows for the summary."""
    return _ratios


@pytest.fixture(scope="session")
def shares():
    """Collects ``(name, share)`` rows: a part's share of a whole, e.g. loading in a step."""
    return _shares


def median_seconds(benchmark) -> float:
    return benchmark.stats.stats.median


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: a benchmark of a few seconds; CI runs these (`-m quick`)")


def pytest_terminal_summary(terminalreporter):
    if _ratios or _shares:
        terminalreporter.section("segbench ratios (median times, same run)")
    for name, ratio, target in _ratios:
        if target is None:
            terminalreporter.write_line(f"{name}: {ratio:.3g}x (no target; reported)")
            continue
        verdict = "meets" if ratio >= target else "MISSES"
        terminalreporter.write_line(f"{name}: {ratio:.3g}x ({verdict} the target of {target:g}x)")
    for name, share in _shares:
        terminalreporter.write_line(f"{name}: {share:.1%}")
