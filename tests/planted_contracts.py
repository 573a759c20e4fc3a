"""Runs a file of planted contract classes in a nested pytest session and collects each
check's outcome, for the tests that show a contract catching each planted mistake."""

import textwrap

import pytest


class Outcomes:
    """A pytest plugin keeping ``{"Class::check": (outcome, longrepr text)}``."""

    def __init__(self):
        self.seen = {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.seen[report.nodeid.split("::", 1)[1]] = (report.outcome, str(report.longrepr or ""))


def run_planted(folder, module_name: str, source: str, *args) -> dict:
    """The outcomes of the contract checks in ``source``, written as ``module_name``.py."""
    (folder / f"{module_name}.py").write_text(textwrap.dedent(source))
    seen = Outcomes()
    pytest.main([str(folder), "-q", "-p", "no:cacheprovider", "-p", "no:benchmark", "--rootdir", str(folder), *args,
                 "-W", "ignore::DeprecationWarning"], plugins=[seen])
    return seen.seen


def outcome(outcomes, name, check):
    return outcomes[f"Test_{name}::{check}"]


def failure(outcomes, name, check):
    """The text of a check that must have failed for the planted class ``Test_<name>``."""
    result, text = outcome(outcomes, name, check)
    assert result == "failed", f"{name}::{check} should fail, but {result}"
    return text
