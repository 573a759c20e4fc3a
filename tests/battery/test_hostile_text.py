"""Battery rows for root causes 7 and 12: hostile text in variant labels, suite descriptions,
class names and plugin descriptions. Every command ends as the row says, prints no escape
sequence or other control character, and every CSV cell that would be a spreadsheet formula
opens as text.

The hostile text is in labels and descriptions, not suite names (a suite name is refused
with control characters or path separators).
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from segbench.gate import save_baseline

from .harness import Case, run_case, tiny

# mathtext (root cause 7), a spreadsheet formula and terminal escapes (colour, window title)
LABEL = "$\\alpha$ =cmd|' /C calc'!A0 \x1b[31mred\x1b]0;title\x07"
LABEL_SHOWN = "$\\alpha$ =cmd|' /C calc'!A0 red"
FORMULA_LABEL = "=1+2 $\\frac{$ \x1b[2Jcleared"  # a formula; mathtext matplotlib cannot parse; erase the screen
FORMULA_SHOWN = "=1+2 $\\frac{$ cleared"
DESCRIPTION = "\x1b]0;owned\x07=HYPERLINK(\"http://x\") \x1b[2J\u202edescription"
CLASSES = ["\x1b[31mbg", "=cat", "@dog $x^$"]
# Anything a terminal would act on: C0 (but the newline) and C1 controls, bidirectional overrides.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def toml(text: str) -> str:
    """A TOML basic string; json.dumps writes control characters as \\uXXXX, which TOML reads."""
    return json.dumps(text)


def hostile_suite(*labels, description=DESCRIPTION, add="") -> str:
    """TINY with explicit variants (nearest, bilinear) labelled ``labels`` and a hostile description."""
    variants = "".join(f'\n[[variants]]\nlabel = {toml(label)}\n"model.upsampler" = "{upsampler}"\n'
                       for label, upsampler in zip(labels, ("nearest", "bilinear")))
    return tiny(drop=('"model.upsampler"',), name=f'"tiny"\ndescription = {toml(description)}', add=variants + add)


HOSTILE = hostile_suite(LABEL, FORMULA_LABEL)


# ----------------------------------------------------------------------------- setups


def hostile_records(tmp: Path, labels=(LABEL, FORMULA_LABEL)) -> Path:
    """The finished TINY results of the case, relabelled (records and suite.json) with ``labels``."""
    suite_dir = tmp / "results" / "tiny"
    summary = json.loads((suite_dir / "suite.json").read_text())
    relabel = dict(zip(summary["variant_order"], labels))
    summary["description"] = DESCRIPTION
    if "labels" in summary:
        summary["labels"] = {variant_id: relabel[variant_id] for variant_id in summary["labels"]}
    (suite_dir / "suite.json").write_text(json.dumps(summary))
    for path in suite_dir.glob("runs/*/*/record.json"):
        record = json.loads(path.read_text())
        record["label"] = relabel[record["variant_id"]]
        path.write_text(json.dumps(record))
    return suite_dir


def hostile_pair(tmp: Path) -> None:
    hostile_records(tmp)
    shutil.copytree(tmp / "results", tmp / "other")


def hostile_regression(tmp: Path) -> None:
    """A baseline of the relabelled results, then the second variant's miou down by 0.5."""
    suite_dir = hostile_records(tmp)
    save_baseline(tmp / "results", tmp / "baseline.json")
    worse = json.loads((suite_dir / "suite.json").read_text())["variant_order"][1]
    for path in suite_dir.glob(f"runs/{worse}/*/record.json"):
        record = json.loads(path.read_text())
        record["metrics"]["miou"] -= 0.5
        path.write_text(json.dumps(record))


def hostile_folder(tmp: Path) -> None:
    """A folder dataset of 4 images whose masks use every class."""
    for folder in ("images", "masks"):
        (tmp / "data" / folder).mkdir(parents=True)
    for index in range(4):
        mask = np.zeros((8, 8), dtype=np.uint8)
        mask[:4], mask[6:, :4] = 1, 2
        Image.fromarray(np.full((8, 8, 3), 40 * index, dtype=np.uint8)).save(tmp / "data" / "images" / f"i{index}.png")
        Image.fromarray(mask, mode="L").save(tmp / "data" / "masks" / f"i{index}.png")


def hostile_plugin(tmp: Path) -> None:
    (tmp / "hostile_plugin.py").write_text(textwrap.dedent('''
        from segbench import hookimpl
        from torch import nn


        def make_loss(*, mode: str = "\\x1b[31mred\\x1b[0m"):
            return nn.CrossEntropyLoss()


        @hookimpl
        def segbench_losses(register):
            register.add_loss("hostile_loss", make_loss, description="\\x1b]0;owned\\x07a loss that \\x1b[2Jclears\\u202e")
    '''))


FOLDER = ["--set", "dataset.root='{tmp}/data'", "--set", "dataset.classes=" + json.dumps(CLASSES)]

# ----------------------------------------------------------------------------- rows

CASES = [
    Case("validate-hostile-labels", ["validate", "{suite}"], 0, LABEL_SHOWN, suite=HOSTILE),
    Case("validate-formula-label", ["validate", "{suite}"], 0, FORMULA_SHOWN, suite=HOSTILE),
    Case("validate-bidi-and-nul-label", ["validate", "{suite}"], 0, "abc",
         suite=hostile_suite("a\u202eb\x00c", "\x9b31mplain")),
    Case("validate-multiline-label", ["validate", "{suite}"], 0, "first second",
         suite=hostile_suite("first\nsecond", "other")),
    Case("validate-hostile-description", ["validate", "{suite}"], 0, "2 variant(s)",
         suite=hostile_suite("a", "b", description="\x1b]0;owned\x07\x1bc=1+2")),
    Case("error-quoting-hostile-labels", ["validate", "{suite}"], 2, "the labels are: " + LABEL_SHOWN,
         suite=HOSTILE.replace('name = "tiny"', 'name = "tiny"\nbaseline = "\\u001b[31mnone"')),
    Case("report-hostile-labels", ["report", "{results}"], 0, LABEL_SHOWN, results=True, setup=hostile_records),
    Case("report-formula-label", ["report", "{results}"], 0, FORMULA_SHOWN, results=True, setup=hostile_records),
    Case("report-label-only-dollars", ["report", "{results}"], 0, "$$",
         results=True, setup=lambda tmp: hostile_records(tmp, ("$$", "\\$x$"))),
    Case("compare-hostile-labels", ["compare", "{results}", "{tmp}/other"], 0, LABEL_SHOWN, results=True, setup=hostile_pair),
    Case("compare-markdown-hostile-labels", ["compare", "{results}", "{tmp}/other", "--markdown", "{tmp}/c.md"], 0,
         FORMULA_SHOWN, results=True, setup=hostile_pair),
    Case("gate-fails-naming-hostile-label", ["gate", "{results}", "--baseline", "{tmp}/baseline.json", "--rule", "miou:max_drop=0.01"],
         1, FORMULA_SHOWN, results=True, setup=hostile_regression),
    Case("data-stats-hostile-classes", ["data", "stats", "folder", *FOLDER], 0, "=cat", setup=hostile_folder),
    Case("data-stats-hostile-class-mathtext", ["data", "stats", "folder", *FOLDER, "--split", "val"], 0, "@dog $x^$",
         setup=hostile_folder),
    Case("data-show-hostile-classes", ["data", "show", "folder", *FOLDER, "-o", "{tmp}/sample.png"], 0, "wrote",
         setup=hostile_folder),
    Case("list-hostile-plugin-description", ["list", "loss", "-p", "{tmp}/hostile_plugin.py"], 0,
         "a loss that clears", setup=hostile_plugin),
    Case("list-hostile-plugin-default", ["list", "loss", "-p", "{tmp}/hostile_plugin.py"], 0, "mode: str = '\\x1b[31mred", setup=hostile_plugin),  # a default shows as its repr
]


def check_clean(case: Case, tmp: Path) -> str:
    """The row's exit code and message, no traceback, and nothing a terminal would act on."""
    code, text = run_case(case, tmp)
    assert "Traceback (most recent call last)" not in text, text
    assert code == case.exit, f"exit {code}, expected {case.exit}:\n{text}"
    assert case.says.lower() in text.lower(), f"expected {case.says!r} in:\n{text!r}"
    assert not CONTROL.search(text), f"a control character reached the terminal: {text!r}"
    return text


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path):
    check_clean(case, tmp_path)


def test_report_csvs_of_hostile_labels_hold_no_formula(tmp_path):
    check_clean(next(case for case in CASES if case.id == "report-hostile-labels"), tmp_path)
    report = tmp_path / "results" / "tiny" / "report"
    assert set(pd.read_csv(report / "runs.csv")["label"]) == {LABEL, "'" + FORMULA_LABEL}
    summary = pd.read_csv(report / "summary.csv")
    assert list(summary["variant"]) == [LABEL, "'" + FORMULA_LABEL]
    assert summary["miou_mean"].dtype == float
    assert (report / "plots" / "curves.png").is_file() and (report / "plots" / "metrics.png").is_file()


def test_run_of_a_hostile_suite_reports_it_safely(tmp_path):
    """Root cause 7 end to end: the suite trains and its report is drawn (before the fix,
    matplotlib failed on the label after all training); then the labels are fixed and the
    report shows the new ones though the runs are not redone."""
    case = Case("run-hostile-suite", ["run", "{suite}", "-o", "{tmp}/out", "-q"], 0, LABEL_SHOWN, suite=HOSTILE)
    check_clean(case, tmp_path)
    report = tmp_path / "out" / "tiny" / "report"
    summary = pd.read_csv(report / "summary.csv")
    assert list(summary["variant"]) == [LABEL, "'" + FORMULA_LABEL]
    assert (report / "plots" / "curves.png").is_file()
    assert (report / "per_class.csv").read_text().startswith("variant,")

    (tmp_path / "suite.toml").write_text(hostile_suite("plain nearest", "plain bilinear"))
    code, text = run_case(Case("rerun", ["run", "{tmp}/suite.toml", "-o", "{tmp}/out", "-q"], 0, ""), tmp_path)
    assert code == 0 and "plain bilinear" in text and "$\\frac{$" not in text, text
    assert list(pd.read_csv(report / "summary.csv")["variant"]) == ["plain nearest", "plain bilinear"]
