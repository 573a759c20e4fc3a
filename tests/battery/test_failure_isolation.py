"""Battery rows for issue 13, root cause 3: failures stay in their run.

A bad ``[train] timeout_s`` exits 2 before training; a plugin that calls ``sys.exit()``
fails its own runs (exit 1, named in the summary) while the others finish, whatever code
it exits with; Ctrl-C inside a run stops the suite with 130. The focused tests (worker
deaths, timeouts) are in tests/test_failure_isolation.py.
"""

from __future__ import annotations

import pytest

from .harness import Case, check_case, tiny

# Misbehaves from its second call on (a preflight may call a loss once).
PLUGIN = '''
import sys

import torch
from segbench import hookimpl


class Misbehaving(torch.nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act, self.calls = act, 0

    def forward(self, logits, target):
        self.calls += 1
        if self.calls >= 2:
            self.act()
        return torch.nn.functional.cross_entropy(logits, target)


def interrupt():
    raise KeyboardInterrupt


ACTS = {"exit3": lambda: sys.exit(3), "exit0": lambda: sys.exit(0), "exit_bare": lambda: sys.exit(),
        "exit_text": lambda: sys.exit("giving up"), "interrupting": interrupt}


def factory(act):
    def make(mode, num_classes, ignore_index):
        """Cross-entropy that misbehaves from its second call on."""
        return Misbehaving(act)
    return make


@hookimpl
def segbench_losses(register):
    for name, act in ACTS.items():
        register.add_loss(name, factory(act))
'''


def write_plugin(tmp):
    (tmp / "misbehaving.py").write_text(PLUGIN)


def losses(*names, plugins=False) -> str:
    """TINY with one seed and one run per loss in ``names`` (instead of per upsampler)."""
    seeds = '[0]\nplugins = ["misbehaving.py"]' if plugins else "[0]"
    return tiny(drop=['"model.upsampler"'], seeds=seeds, add=f'"train.loss" = {list(names)!r}\n'.replace("'", '"'))


VALIDATE = ["validate", "{suite}", "--set"]
RUN = ["run", "{suite}", "-o", "{tmp}/out", "-q"]
RUN_PLUGIN = [*RUN, "-p", "{tmp}/misbehaving.py"]
BAD_TIMEOUT = "train.timeout_s: expected a number of seconds > 0 and at most 2,592,000 (30 days; leave it out for no limit)"

CASES = [
    Case("timeout-zero", [*VALIDATE, "train.timeout_s=0"], 2, f"{BAD_TIMEOUT}, got 0", suite=tiny()),
    Case("timeout-zero-float", [*VALIDATE, "train.timeout_s=0.0"], 2, BAD_TIMEOUT, suite=tiny()),
    Case("timeout-negative", [*VALIDATE, "train.timeout_s=-5"], 2, f"{BAD_TIMEOUT}, got -5", suite=tiny()),
    Case("timeout-nan", [*VALIDATE, "train.timeout_s=nan"], 2, f"{BAD_TIMEOUT}, got nan", suite=tiny()),
    Case("timeout-inf", [*VALIDATE, "train.timeout_s=inf"], 2, f"{BAD_TIMEOUT}, got inf", suite=tiny()),
    Case("timeout-minus-inf", [*VALIDATE, "train.timeout_s=-inf"], 2, BAD_TIMEOUT, suite=tiny()),
    Case("timeout-string", [*VALIDATE, 'train.timeout_s="60"'], 2, f"{BAD_TIMEOUT}, got '60'", suite=tiny()),
    Case("timeout-bool", [*VALIDATE, "train.timeout_s=true"], 2, BAD_TIMEOUT, suite=tiny()),
    Case("timeout-list", [*VALIDATE, "train.timeout_s=[60]"], 2, BAD_TIMEOUT, suite=tiny()),
    Case("timeout-table", [*VALIDATE, "train.timeout_s={{ s = 60 }}"], 2, BAD_TIMEOUT, suite=tiny()),
    Case("timeout-in-file", ["validate", "{suite}"], 2, f"{BAD_TIMEOUT}, got -1", suite=tiny(batch_size="4\ntimeout_s = -1")),
    Case("timeout-in-ablate", ["validate", "{suite}"], 2, 'ablate."train.timeout_s"[1]: expected a number of seconds > 0',
         suite=tiny(add='"train.timeout_s" = [60, 0]\n')),
    Case("timeout-misspelt", [*VALIDATE, "train.timeout=60"], 2, "did you mean train.timeout_s?", suite=tiny()),
    Case("timeout-in-seconds-unit", [*VALIDATE, 'train.timeout_s="10 min"'], 2, BAD_TIMEOUT, suite=tiny()),
    Case("timeout-bad-on-run", [*RUN, "--set", "train.timeout_s=0"], 2, BAD_TIMEOUT, suite=tiny()),
    Case("timeout-valid", [*VALIDATE, "train.timeout_s=600"], 0, "2 variant(s) x 2 seed(s)", suite=tiny()),
    Case("timeout-valid-fraction", [*VALIDATE, "train.timeout_s=0.5"], 0, "2 variant(s) x 2 seed(s)", suite=tiny()),
    Case("sys-exit-3", RUN_PLUGIN, 1, "SystemExit: plugin called sys.exit(3)", suite=losses("exit3", "ce"), setup=write_plugin),
    Case("sys-exit-3-counted", RUN_PLUGIN, 1, "1 run(s) failed", suite=losses("exit3", "ce"), setup=write_plugin),
    Case("sys-exit-0-still-fails", RUN_PLUGIN, 1, "plugin called sys.exit(0)", suite=losses("ce", "exit0"), setup=write_plugin),
    Case("sys-exit-bare", RUN_PLUGIN, 1, "plugin called sys.exit()", suite=losses("exit_bare", "ce"), setup=write_plugin),
    Case("sys-exit-text", RUN_PLUGIN, 1, "plugin called sys.exit('giving up')", suite=losses("exit_text", "ce"), setup=write_plugin),
    Case("sys-exit-suite-plugins", RUN, 1, "plugin called sys.exit(3)", suite=losses("exit3", "ce", plugins=True), setup=write_plugin),
    Case("sys-exit-report-written", RUN_PLUGIN, 1, "report:", suite=losses("exit3", "ce"), setup=write_plugin),
    Case("ctrl-c-in-a-run", RUN_PLUGIN, 130, "interrupted; finished runs are kept", suite=losses("ce", "interrupting"), setup=write_plugin),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path):
    check_case(case, tmp_path)
