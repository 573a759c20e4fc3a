"""The HTML report in a real browser: headless Chromium driven by Playwright.

The first screen must show every comparison's outcome, on a desktop (1440 px) and on a
phone (390 px), with no sideways scrolling of the page; sorting must work in every table,
by mouse and by keyboard. Skipped, with the reason, where Playwright or a Chromium
executable is missing (``pip install -e '.[test]'`` brings Playwright; Debian's
``chromium`` package, or ``$SEGBENCH_CHROMIUM``, the browser).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "docs/examples" / name / "report/index.html" for name in ("upsampling", "losses")]
SCREENS = {"desktop": (1440, 900), "phone": (390, 844)}  # 390 × 844: a current phone's CSS viewport
PHONE = {"is_mobile": True, "has_touch": True, "device_scale_factor": 3}  # honours (or lacks) the viewport tag


def chromium_executable() -> str | None:
    named = os.environ.get("SEGBENCH_CHROMIUM")
    if named:
        return named
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no Chromium executable (apt-get install chromium, or set SEGBENCH_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def open_report(browser):
    pages = []

    def open_(path: Path, screen: str):
        width, height = SCREENS[screen]
        page = browser.new_page(viewport={"width": width, "height": height}, **(PHONE if screen == "phone" else {}))
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri())
        page.script_errors = errors
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


def comparisons_in(path: Path) -> int:
    """Variants other than the baseline, from the report's own CSV (not from the page)."""
    import pandas as pd

    rows = pd.read_csv(path.parent / "summary.csv")
    return int((rows["verdict"] != "baseline").sum())


@pytest.mark.parametrize("screen", sorted(SCREENS))
@pytest.mark.parametrize("report", SHIPPED, ids=lambda path: path.parts[-3])
def test_the_first_screen_shows_every_comparisons_outcome(open_report, report, screen, tmp_path):
    page = open_report(report, screen)
    width, height = SCREENS[screen]
    findings = page.locator("ul.findings > li")
    assert findings.count() == comparisons_in(report) > 0
    for index in range(findings.count()):
        item = findings.nth(index)
        box = item.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, (
            f"finding {index + 1} ends at {box['y'] + box['height']:.0f} px, below the first screen ({height} px)")
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
        assert any(word in item.inner_text() for word in ("better", "worse", "equivalent", "inconclusive", "degenerate"))
        assert float(item.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 14
    assert page.evaluate("window.innerWidth") == width  # the viewport tag: no 980 px desktop layout shrunk to fit
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page scrolls sideways: {scroll_width} px wide in a {width} px screen"
    page.screenshot(path=str(tmp_path / f"{report.parts[-3]}-{screen}.png"))  # kept for a look with --basetemp


def sort_state(table):
    headers = table.locator("thead th")
    return [headers.nth(i).get_attribute("aria-sort") for i in range(headers.count())]


def first_column(table) -> list[str]:
    return table.locator("tbody tr td:first-child").all_inner_texts()


@pytest.mark.parametrize("report", SHIPPED[:1], ids=lambda path: path.parts[-3])
def test_every_table_sorts_by_mouse_and_keyboard_with_its_direction_shown(open_report, report):
    page = open_report(report, "desktop")
    tables = page.locator("table.sortable")
    assert tables.count() >= 3  # the summary, every column, per class, timing...
    for index in range(tables.count()):
        table = tables.nth(index)
        column = table.locator("thead th").first
        before = first_column(table)
        column.click()
        ascending = first_column(table)
        assert sort_state(table)[0] == "ascending" and ascending == sorted(before, key=str.casefold)
        column.focus()
        page.keyboard.press("Enter")
        assert sort_state(table)[0] == "descending" and first_column(table) == ascending[::-1]
        page.keyboard.press(" ")
        assert sort_state(table)[0] == "ascending"
    assert page.script_errors == []


def test_a_mixed_column_sorts_numbers_in_order_and_dashes_last(open_report, rebuilt_report):
    page = open_report(rebuilt_report, "desktop")
    table = page.locator("table.sortable").nth(1)  # every column: p has "-" for the baseline
    headers = table.locator("thead th")
    p_column = next(i for i in range(headers.count()) if headers.nth(i).inner_text().strip() == "p")
    headers.nth(p_column).click()
    cells = table.locator(f"tbody tr td:nth-child({p_column + 1})").all_inner_texts()
    numbers = [float(text) for text in cells if text.strip() != "-"]
    assert numbers == sorted(numbers) and cells[len(numbers):] == ["-"] * (len(cells) - len(numbers))
    assert page.script_errors == []


@pytest.fixture
def rebuilt_report(tmp_path):
    """The shipped upsampling results, reported again into a scratch folder."""
    from segbench import api

    results = tmp_path / "upsampling"
    shutil.copytree(ROOT / "docs/examples/upsampling", results, ignore=shutil.ignore_patterns("report", ".lock"))
    api.rebuild_report(results)
    return results / "report/index.html"
