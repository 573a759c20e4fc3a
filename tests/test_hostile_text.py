"""Hostile text from suites, datasets and plugins: CSV cells that would be formulas, escape
sequences that would reach the terminal, and labels matplotlib would parse as mathtext."""

import io
from types import SimpleNamespace

import matplotlib
import matplotlib.mathtext
import pandas as pd
import pytest

from segbench.format import format_components, format_stats
from segbench.planning import Pilot
from segbench.report import plots, write_report
from segbench.text import csv_cell, csv_text, one_line, plot_label, terminal

ESC, BEL = "\x1b", "\x07"
# A label that is mathtext, a spreadsheet formula and terminal escapes (colour, window title) at once.
LABEL = "$\\alpha$ =cmd|' /C calc'!A0 \x1b[31mred\x1b]0;title\x07"
LABEL_SHOWN = "$\\alpha$ =cmd|' /C calc'!A0 red"
# Starts a formula, and its "$...$" is mathtext matplotlib cannot parse.
FORMULA_LABEL = "=cmd|' /C calc'!A0 $\\frac{$"
HOSTILE_CLASS = "@SUM(1+1)\x1b[2J"


# ----------------------------------------------------------------------------- terminal


@pytest.mark.parametrize("text, shown", [
    ("\x1b[31mred\x1b[0m", "red"),  # colour (CSI)
    ("a\x1b[2J\x1b[Hb", "ab"),  # erase the screen, move the cursor
    ("\x1b]0;owned\x07title", "title"),  # window title (OSC ... BEL)
    ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # hyperlink (OSC ... ST)
    ("x\x1bcy", "xy"),  # full reset (ESC c)
    ("\x9b31mc1\x9dt\x9c", "c1"),  # 8-bit CSI and OSC
    ("nul\x00 bell\x07 cr\r del\x7f", "nul bell cr del"),
    ("\u202eevil\u202c", "evil"),  # a bidirectional override reorders the line
    ("Δ ± ✓ 日本 $x$ \\n", "Δ ± ✓ 日本 $x$ \\n"),  # ordinary text stays as written
    ("\x1b]0;unterminated", ""),  # an unterminated title string
])
def test_terminal_text_loses_escape_sequences_and_control_characters(text, shown):
    assert terminal(text) == shown


def test_terminal_keeps_newlines_and_one_line_joins_them():
    assert terminal("a\x1b[1m\nb") == "a\nb"
    assert one_line("a\x1b[1m\nb\r\nc") == "a b c"
    assert plot_label("x\n\x1b[31my") == "x y"


def test_an_unterminated_title_does_not_swallow_the_next_line():
    assert terminal("\x1b]0;title\nnext") == "\nnext"


# ----------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("cell", ["=1+2", "+cmd", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\")"])
def test_a_text_cell_that_starts_a_formula_opens_as_text(cell):
    assert csv_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-0.5", "+3", "1e-3", "-2.5E+04", "a=b", "nearest", "", "'=already text"])
def test_text_that_cannot_start_a_formula_is_kept(cell):
    assert csv_cell(cell) == cell


@pytest.mark.parametrize("value", [-0.5, -3, 0.0, None, True])
def test_numbers_and_other_values_are_kept(value):
    assert csv_cell(value) is value


def test_a_csv_read_back_has_the_cells_neutralised_and_the_numbers_untouched():
    frame = pd.DataFrame({"variant": ["=1+2", "plain", "-0.25", "@x"], "delta": [-0.5, 0.25, -1e-3, float("nan")],
                          "seed": [-1, 0, 1, 2], "=HYPERLINK(1)": ["a", "-b", "c", "d"]},
                         index=["+i", "j", "k", "l"])
    back = pd.read_csv(io.StringIO(csv_text(frame, index_label="=label")), index_col=0)
    assert back.index.name == "'=label" and list(back.index) == ["'+i", "j", "k", "l"]
    assert list(back.columns) == ["variant", "delta", "seed", "'=HYPERLINK(1)"]
    assert list(back["variant"]) == ["'=1+2", "plain", "-0.25", "'@x"]
    assert list(back["'=HYPERLINK(1)"]) == ["a", "'-b", "c", "d"]
    assert back["delta"].tolist()[:3] == [-0.5, 0.25, -1e-3] and pd.isna(back["delta"].iloc[3])
    assert back["seed"].tolist() == [-1, 0, 1, 2]
    assert frame.loc["+i", "variant"] == "=1+2", "the frame itself is not changed"


# ----------------------------------------------------------------------------- the report


def _record(variant_id, label, seed, miou):
    return {
        "variant_id": variant_id, "label": label, "seed": seed, "status": "ok", "factors": {},
        "wall_seconds": 1.0, "curves": {"epoch": [1, 2], "miou": [miou - 0.1, miou]}, "metrics": {"miou": miou},
        "cost": {"params": 10, "latency_ms": 1.0},
        "per_class": {"miou": {"background": 0.9, HOSTILE_CLASS: miou}},
    }


def _meta(**extra):
    return {"name": "s", "description": "\x1b]0;owned\x07=1+2", "path": "s.toml", "text": "", "baseline_id": "a",
            "variant_order": ["a", "b", "c"], "primary": "miou", "metrics": ["miou"], **extra}


def _records(labels=("nearest", LABEL, FORMULA_LABEL)):
    base = {"a": 0.50, "b": 0.60, "c": 0.40}
    return [_record(variant_id, label, seed, base[variant_id] + seed / 100)
            for variant_id, label in zip("abc", labels) for seed in range(7)]  # 7 seeds: enough to decide under Holm over 2


@pytest.fixture
def drawn_texts(monkeypatch):
    """Every Text of every figure the report saves, as drawn (tick labels exist only then)."""
    texts = []
    save = plots._save

    def saving(figure, path):
        figure.canvas.draw()
        texts.extend(figure.findobj(matplotlib.text.Text))
        return save(figure, path)

    monkeypatch.setattr(plots, "_save", saving)
    return texts


def test_the_labels_would_fail_as_mathtext():
    """What the next test guards against: this label fails matplotlib's math parser."""
    with pytest.raises(ValueError):
        matplotlib.mathtext.MathTextParser("agg").parse("$\\frac{$")


def test_a_report_of_hostile_labels_renders_them_literally(tmp_path, drawn_texts):
    report = write_report(_records(), _meta(), tmp_path)
    assert (tmp_path / "plots" / "curves.png").is_file() and (tmp_path / "plots" / "per_class.png").is_file()
    shown = [text.get_text() for text in drawn_texts]
    assert LABEL_SHOWN in shown and one_line(FORMULA_LABEL) in shown  # the legend of the curves, as written
    assert any(HOSTILE_CLASS.split("\x1b")[0] == text for text in shown)  # a class name on the per-class axis
    for text in drawn_texts:
        assert not text.get_parse_math() and not text.get_usetex(), text.get_text()
        assert ESC not in text.get_text() and BEL not in text.get_text()
    assert matplotlib.rcParams["text.parse_math"], "the setting is the plots' own, not changed for the process"
    assert ESC not in report["text"] and BEL not in report["text"] and LABEL_SHOWN in report["text"]


def test_the_report_csvs_hold_no_formula_and_keep_the_numbers(tmp_path):
    write_report(_records(), _meta(), tmp_path)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert set(runs["label"]) == {"nearest", LABEL, "'" + FORMULA_LABEL}
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["variant"]) == ["nearest", LABEL, "'" + FORMULA_LABEL]
    worse = summary.set_index("variant_id").loc["c"]
    assert worse["delta"] == pytest.approx(-0.1) and worse["verdict"] == "worse", "negative numbers stay numbers"
    per_class = pd.read_csv(tmp_path / "per_class.csv", index_col=0)
    assert list(per_class.columns) == ["background", "'" + HOSTILE_CLASS]
    assert list(per_class.index) == ["nearest", LABEL, "'" + FORMULA_LABEL]


def test_the_report_shows_the_suites_labels_not_the_ones_records_were_trained_under(tmp_path):
    """A label is not part of a variant's id: after the suite fixes a label the records
    keep the old one, and the report must show the new."""
    old = _records(labels=("nearest", "$\\frac{$ old", "=old"))
    report = write_report(old, _meta(labels={"a": "nearest", "b": "fixed b", "c": "fixed c"}), tmp_path)
    assert list(report["summary"]["variant"]) == ["nearest", "fixed b", "fixed c"]
    assert set(pd.read_csv(tmp_path / "runs.csv")["label"]) == {"nearest", "fixed b", "fixed c"}
    assert "old" not in report["text"] and "old" not in (tmp_path / "summary.md").read_text()


def test_plan_matches_a_neutralised_label_in_runs_csv_to_the_suites_label(tmp_path):
    """``segbench plan --from runs.csv`` falls back to labels when ids changed: the cell
    "'=..." is the label "=..." as runs.csv wrote it."""
    write_report(_records(), _meta(), tmp_path)
    pilot = Pilot.load(tmp_path / "runs.csv")
    changed = SimpleNamespace(id="changed-id", label=FORMULA_LABEL)
    assert pilot.values(changed, "miou") == pytest.approx({seed: 0.40 + seed / 100 for seed in range(7)})


# ----------------------------------------------------------------------------- other terminal listings


def test_data_stats_text_shows_class_names_without_escapes():
    split = {"images": 1, "sizes": [[4, 4]], "pixels": 16, "ignored_pixels": 0, "ignored_fraction": 0.0,
             "classes": [{"index": 0, "name": "\x1b]0;owned\x07bg", "pixels": 8, "fraction": 0.5, "images": 1},
                         {"index": 1, "name": "\x1b[31mcat\x1b[0m", "pixels": 8, "fraction": 0.5, "images": 1}]}
    stats = {"dataset": {"name": "folder"}, "classes": ["bg", "cat"], "mode": "multiclass", "ignore_index": 255,
             "splits": {"train": split}}
    text = format_stats(stats)
    assert ESC not in text and BEL not in text
    rows = text.splitlines()[-2:]
    assert rows[0].split()[:2] == ["0", "bg"] and rows[1].split()[:2] == ["1", "cat"]
    assert rows[0].index("8") == rows[1].index("8"), "the columns stay aligned"


def test_list_shows_plugin_text_without_escapes():
    component = SimpleNamespace(kind="loss", name="evil", description="\x1b]0;owned\x07a loss\x1b[2J", provider="evil\x1b[31m",
                                version="1.0\x07", params={}, requires=frozenset(), provides=frozenset({"\x1b[1mfeatures"}))
    text = format_components([component])
    assert ESC not in text and BEL not in text
    assert "evil  a loss  [evil 1.0]" in text and "provides: features" in text
