"""Benchmarks run on demand (``python -m pytest benchmarks``), not in the test command; the
``quick`` ones (``-m quick``, under a minute) also run in CI, so a broken benchmark shows.

Each benchmark times a reference and segbench side by side in one session; the session
ends with a table of ratios (this machine is noisy, so ratios, not absolute times, are
what docs/guide/benchmarks.md reports)."""

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


# --- real-size image folders, made in the benchmark (never committed) ------------------------

PHOTO_SIZE = (375, 500)  # (H, W): PASCAL VOC's typical size
PHOTO_CLASSES = ["background", *(f"class{index}" for index in range(1, 21))]


def write_photo_folder(root, count: int, size=PHOTO_SIZE, processes: int = 2) -> str:
    """A ``folder`` dataset of ``count`` JPEG photos (smooth backgrounds with coloured shapes
    and noise, about 40 kB each, like a camera's) and PNG index masks of 21 classes with a
    255 band around each shape, as VOC has. Written once per root; returns the root."""
    import multiprocessing
    from pathlib import Path

    root = Path(root)
    done = root / "DONE"
    if done.is_file() and int(done.read_text()) == count:
        return str(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    jobs = [(str(root), index, tuple(size)) for index in range(count)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.starmap(_write_photo, jobs, chunksize=64)
    done.write_text(str(count))
    return str(root)


def _write_photo(root: str, index: int, size: tuple) -> None:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    height, width = size
    rng = np.random.default_rng(index)
    gradient = np.linspace(0, 1, width)[None, :, None] * rng.uniform(-80, 80, 3) + rng.uniform(60, 190, 3)
    background = np.clip(gradient + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(background)
    mask = Image.new("L", (width, height), 0)
    draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(rng.integers(2, 6)):
        x0, y0 = rng.integers(0, width - 60), rng.integers(0, height - 60)
        box = [int(x0), int(y0), int(x0 + rng.integers(40, width // 2)), int(y0 + rng.integers(40, height // 2))]
        label = int(rng.integers(1, len(PHOTO_CLASSES)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw_image.ellipse if rng.random() < 0.5 else draw_image.rectangle
        shape(box, fill=colour)
        (draw_mask.ellipse if shape == draw_image.ellipse else draw_mask.rectangle)(box, fill=label, outline=255, width=3)
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    noisy = np.clip(np.asarray(image, np.int16) + rng.integers(-4, 5, (height, width, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(f"{root}/images/p{index:06d}.jpg", quality=90)
    mask.save(f"{root}/masks/p{index:06d}.png")


# --- peak memory of a command and the processes it starts ------------------------------------


def peak_memory(argv, env=None, interval: float = 0.1) -> dict:
    """Run ``argv`` and sample its process tree every ``interval`` s: the peak of the summed
    proportional set size (PSS: shared pages split among the processes sharing them, so
    the loader workers' copy of torch counts once), and the main process's own peak resident
    set (VmHWM, what ``/usr/bin/time -v`` reports). Linux only."""
    import subprocess
    import time

    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_pss = peak_main = 0
    while process.poll() is None:
        tree = _process_tree(process.pid)
        peak_pss = max(peak_pss, sum(_status_kb(pid, "Pss", "smaps_rollup") for pid in tree))
        peak_main = max(peak_main, _status_kb(process.pid, "VmHWM", "status"))
        time.sleep(interval)
    out, err = process.communicate()
    return {"returncode": process.returncode, "seconds": time.perf_counter() - started, "stdout": out, "stderr": err,
            "peak_tree_pss_mb": peak_pss / 1024, "peak_main_rss_mb": peak_main / 1024}


def _process_tree(root: int) -> list:
    pids, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        try:
            for task in __import__("os").listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    children = [int(child) for child in handle.read().split()]
                pids += children
                frontier += children
        except OSError:  # it ended meanwhile
            continue
    return pids


def _status_kb(pid: int, field: str, source: str) -> int:
    try:
        with open(f"/proc/{pid}/{source}") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
