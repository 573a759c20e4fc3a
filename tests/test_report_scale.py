"""The report of a large suite (200 variants): bounded images, legends and captions that say
what a plot leaves out, the top and bottom variants really the best and worst by the primary
metric, cost labels that never overlap, and the cost-by-device table in the page.
benchmarks/test_report_scale.py measures its time and memory at 30, 300 and 3,000 records."""

from __future__ import annotations

import re
import struct
from html import unescape

import pandas as pd
import pytest

from segbench.report import plots, write_report
from segbench.report.plots import MAX_SIDE_PX
from segbench.report.selection import LINES_EACH, MANY_VARIANTS, SHOWN_EACH, rank_variants
from tests.synthetic_records import PRIMARY, meta_of, synthetic_records

VARIANTS = 200


def png_size(path) -> tuple:
    """(width, height) from the PNG header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


class Drawn:
    """Every figure the report draws, kept (with its path) before it is saved and closed."""

    def __init__(self, monkeypatch):
        self.figures = {}
        save = plots._save

        def keep(figure, path):
            self.figures[path.name] = figure
            return save(figure, path)

        monkeypatch.setattr(plots, "_save", keep)


def redrawn(figure):
    """The renderer of ``figure`` drawn again at its own resolution (a saved figure is closed,
    its canvas detached), so that extents are read as laid out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def true_means(records) -> pd.Series:
    """label -> mean primary metric over seeds, straight from the records."""
    frame = pd.DataFrame([{"label": r["label"], "value": r["metrics"][PRIMARY]} for r in records])
    return frame.groupby("label")["value"].mean()


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    drawn = Drawn(monkeypatch)
    records = synthetic_records(VARIANTS, 2)  # copies of one run's predictions: degenerate comparisons, quick findings
    try:
        report = write_report(records, meta_of(records), tmp_path_factory.mktemp("large") / "report")
    finally:
        monkeypatch.undo()
    return report, drawn.figures, records


def test_no_image_of_a_large_suite_is_wider_or_taller_than_the_bound(large):
    report, _, _ = large
    sizes = {path.name: png_size(path) for path in (report["dir"] / "plots").glob("*.png")}
    assert {"metrics.png", "curves.png", "per_class.png", "cost.png", "factors.png"} <= set(sizes)
    assert all(max(size) <= MAX_SIDE_PX for size in sizes.values()), sizes


def test_a_layout_that_would_be_too_large_is_saved_at_a_lower_resolution(tmp_path):
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(80, 3))  # 8,800 px wide at the usual resolution
    width, height = png_size(plots._save(figure, tmp_path / "wide.png"))
    assert width <= MAX_SIDE_PX and height >= 100


def test_the_top_and_bottom_shown_are_the_best_and_worst_by_the_primary_metric(large):
    _, figures, records = large
    means = true_means(records).sort_values(ascending=False)
    best, worst = list(means.index[:SHOWN_EACH]), list(means.index[-SHOWN_EACH:])
    metrics_figure = figures["metrics.png"]
    panel = next(axis for axis in metrics_figure.axes if axis.get_title().startswith(f"{PRIMARY} ("))
    ticks = [label.get_text() for label in panel.get_xticklabels()]
    assert ticks == best + worst
    shown_rows = [label.get_text() for label in figures["per_class.png"].axes[0].get_yticklabels()]
    assert shown_rows == best + worst
    curve_labels = [text.get_text() for text in figures["curves.png"].axes[0].get_legend().get_texts()]
    assert curve_labels == [*means.index[:LINES_EACH], *means.index[-LINES_EACH:], f"the {VARIANTS - 2 * LINES_EACH} other variants (grey)"]


def test_a_lower_is_better_primary_ranks_the_lowest_first():
    summary = pd.DataFrame({"variant_id": list("abcd"), "variant": list("ABCD"), "error_mean": [0.3, 0.1, 0.4, 0.2]})
    ranking = rank_variants(summary, list("abcd"), "error", higher_is_better=False)
    assert ranking.ranked == ("b", "d", "a", "c")
    assert rank_variants(summary, list("abcd"), "error", higher_is_better=True).ranked == ("c", "a", "d", "b")
    chosen = ranking.pick(1, limit=2)
    assert (chosen.top, chosen.bottom) == (("b",), ("c",))
    assert chosen.caption() == ("showing 2 of 4 variants: the top 1 and bottom 1 by mean error (lower is better); every "
                                "variant is in the tables")
    assert ranking.pick(1, limit=4).caption() is None  # nothing left out: nothing to say


def test_every_plot_that_leaves_variants_out_says_so_in_its_title_and_in_the_page(large):
    report, figures, _ = large
    said = f"showing {2 * SHOWN_EACH} of {VARIANTS} variants: the top {SHOWN_EACH} and bottom {SHOWN_EACH} by mean {PRIMARY}"
    titles = {name: " ".join(t.get_text() for t in [f._suptitle, *[a.title for a in f.axes]] if t is not None).replace("\n", " ")
              for name, f in figures.items()}
    assert said in titles["metrics.png"] and said in titles["per_class.png"]
    assert f"showing {2 * LINES_EACH} of {VARIANTS} variants" in titles["curves.png"]
    page = unescape(report["html"].read_text())
    captions = re.findall(r"<figcaption class='note'>(.*?)</figcaption>", page)
    assert sum(said in caption for caption in captions) == 2  # metrics and per class
    assert any(caption.startswith(f"showing {2 * LINES_EACH} of {VARIANTS}") for caption in captions)  # curves
    assert all("every variant is in the tables" in caption for caption in captions)
    summary = pd.read_csv(report["dir"] / "summary.csv")
    assert len(summary) == VARIANTS  # the tables keep every variant


def test_every_legend_entry_is_inside_the_image(large):
    _, figures, _ = large
    for name, figure in figures.items():
        renderer = redrawn(figure)
        box = figure.bbox
        for axis in figure.axes:
            legend = axis.get_legend()
            if legend is None:
                continue
            extent = legend.get_window_extent(renderer)  # holds every entry
            assert box.x0 <= extent.x0 and extent.x1 <= box.x1 + 1 and box.y0 <= extent.y0 and extent.y1 <= box.y1 + 1, \
                f"{name}: the legend ({len(legend.get_texts())} entries) is cut off"


def test_a_suite_at_the_threshold_names_every_variant_in_the_curves_legend(tmp_path, monkeypatch):
    drawn = Drawn(monkeypatch)
    records = synthetic_records(MANY_VARIANTS, 1, light=True)
    report = write_report(records, meta_of(records), tmp_path / "report")
    legend = drawn.figures["curves.png"].axes[0].get_legend()
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted({r["label"] for r in records})
    assert "<figcaption" not in report["html"].read_text() or "showing" not in report["html"].read_text()
    test_every_legend_entry_is_inside_the_image((report, drawn.figures, records))


def test_the_cost_plot_names_do_not_overlap_and_the_caption_counts_them(large):
    report, figures, _ = large
    figure = figures["cost.png"]
    renderer = redrawn(figure)
    for axis in figure.axes:
        boxes = [text.get_window_extent(renderer) for text in axis.texts if text.get_visible()]
        assert boxes, "no variant is named"
        for index, box in enumerate(boxes):
            assert not any(box.overlaps(other) for other in boxes[index + 1:]), "two names overlap"
    counts = [sum(t.get_visible() for t in axis.texts) for axis in figure.axes]
    caption = figure._suptitle.get_text().replace("\n", " ")
    assert f"names on {counts[0]} of {VARIANTS} variants (latency) and {counts[1]} of {VARIANTS} variants (parameters)" in caption
    assert caption in unescape(report["html"].read_text()).replace("\n", " ")


def test_the_cost_plot_names_only_the_pareto_front_and_the_top_and_bottom(large):
    _, figures, records = large
    means = true_means(records).sort_values(ascending=False)
    chosen = set(means.index[:SHOWN_EACH]) | set(means.index[-SHOWN_EACH:])
    frame = pd.DataFrame([{"label": r["label"], "params": r["cost"]["params"], "q": r["metrics"][PRIMARY]} for r in records])
    per_variant = frame.groupby("label").mean()
    front = set(per_variant.index[plots.pareto_front(per_variant["params"].to_numpy(float), per_variant["q"].to_numpy(float))])
    axis = figures["cost.png"].axes[1]  # quality against parameters
    named = {t.get_text() for t in axis.texts if t.get_visible()}
    assert named and named <= front | chosen
    assert named & front  # the front is named first


def _device_records(devices):
    records = synthetic_records(2, 2, light=True)
    for record, device in zip(records, devices):
        record["ran_on"] = {"hostname": "h", "executor": "ray", "device_name": device}
    return records


def test_the_page_shows_the_cost_by_device_table_escaped_when_runs_ran_on_two_kinds(tmp_path):
    records = _device_records(["NVIDIA H100", "<b>cpu</b>", "NVIDIA H100", "NVIDIA H100"])
    page = write_report(records, meta_of(records), tmp_path / "report")["html"].read_text()
    assert "<h2 id='cost-by-device'>Cost by device</h2>" in page
    assert "ran on more than one kind of device" in page
    assert "<td>&lt;b&gt;cpu&lt;/b&gt;</td>" in page and "<b>cpu</b>" not in page
    table = page.split("id='cost-by-device'")[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 3  # the head, then variant 0 on two devices and variant 1 on one


def test_the_page_has_no_cost_by_device_table_for_one_kind_of_device(tmp_path):
    records = _device_records(["NVIDIA H100"] * 4)
    page = write_report(records, meta_of(records), tmp_path / "report")["html"].read_text()
    assert "cost-by-device" not in page
