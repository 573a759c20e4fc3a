"""The two data paths (segbench/data/loading.py): samples decoded once into memory, or
streamed from their files by loader workers. Both must give a run the very same numbers,
with any number of workers; the record says which path ran; bad settings and unreadable
samples are named before training."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import entries_of

import segbench
import segbench.testing
from segbench import api
from segbench.cli import main
from segbench.data import ImageList, TensorPairs, loading
from segbench.data.streaming import StreamedSplit
from segbench_plugins.datasets.folder import build_folder

CLASSES = ["background", "red", "green"]
SIZES = ((60, 80), (70, 50), (64, 64))  # native sizes, in turn


def write_images(root: Path, count: int = 24, sizes=SIZES) -> Path:
    """A ``folder`` dataset: JPEG photos with a red and a green region, PNG index masks."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        height, width = sizes[index % len(sizes)]
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        mask = np.zeros((height, width), np.uint8)
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        mask[top:top + height // 3, left:left + width // 3] = 1
        mask[height // 2:, width // 2:] = 2
        mask[0, :] = 255
        image[mask == 1], image[mask == 2] = (210, 30, 30), (30, 200, 40)
        Image.fromarray(image).save(root / "images" / f"im{index:03d}.jpg", quality=92)
        Image.fromarray(mask).save(root / "masks" / f"im{index:03d}.png")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_images(tmp_path_factory.mktemp("photos"))


def build(cache_dir, root, mode, workers=0, **params):
    with loading.requested(mode, workers):
        return build_folder(cache_dir, root=str(root), classes=CLASSES, **params)


def samples(split) -> list:
    return [split.raw(index) for index in range(len(split))]


# --- one dataset, two paths ------------------------------------------------------------------


@pytest.mark.parametrize("image_size", [32, None], ids=["resized", "native"])
def test_both_paths_hold_the_same_samples(photos, tmp_path, image_size):
    memory = build(tmp_path, photos, "memory", workers=2, image_size=image_size)
    streamed = build(tmp_path, photos, "streaming", workers=2, image_size=image_size)
    assert isinstance(memory.train, TensorPairs if image_size else ImageList)
    assert isinstance(streamed.train, StreamedSplit) and isinstance(streamed.val, StreamedSplit)
    for role in ("train", "val"):
        ours, theirs = samples(getattr(memory, role)), samples(getattr(streamed, role))
        assert len(ours) == len(theirs) > 0
        for (image, mask), (image_again, mask_again) in zip(ours, theirs):
            assert torch.equal(image, image_again) and torch.equal(mask, mask_again)
        assert getattr(streamed, role).sample_sizes() == getattr(memory, role).sample_sizes()
        assert getattr(streamed, role).distinct_labels() == getattr(memory, role).distinct_labels() == [0, 1, 2, 255]
    assert streamed.train.nbytes == memory.train.nbytes, "what the decoded samples would take"


def test_decoding_with_workers_gives_the_entry_one_process_gives(photos, tmp_path):
    build(tmp_path / "one", photos, "memory", workers=0, image_size=None)
    build(tmp_path / "two", photos, "memory", workers=2, image_size=None)
    (one,), (two,) = entries_of(tmp_path / "one", "folder"), entries_of(tmp_path / "two", "folder")
    for part in ("train.images", "train.masks", "val.images", "val.masks", "index.json"):
        assert (one / part).read_bytes() == (two / part).read_bytes(), part


def test_streaming_stores_no_sample_only_a_small_scan_and_reads_it_back(photos, tmp_path, monkeypatch):
    data = build(tmp_path, photos, "streaming", workers=0, image_size=None)
    assert entries_of(tmp_path, "folder") == [], "no decoded sample is stored"
    (scan,) = (tmp_path / "scans").glob("folder-*.npz")
    assert scan.stat().st_size < 4096, "a few numbers per sample"
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("read a sample although the scan is cached"))
    again = build(tmp_path, photos, "streaming", workers=0, image_size=None)
    assert again.train.sample_sizes() == data.train.sample_sizes()
    assert torch.equal(again.val.index.value_counts(), data.val.index.value_counts())


def test_a_damaged_scan_is_scanned_again_with_a_warning(photos, tmp_path, capsys):
    build(tmp_path, photos, "streaming", image_size=None)
    (scan,) = (tmp_path / "scans").glob("folder-*.npz")
    raw = bytearray(scan.read_bytes())
    raw[len(raw) // 2] ^= 1
    scan.write_bytes(bytes(raw))
    capsys.readouterr()
    data = build(tmp_path, photos, "streaming", image_size=None)
    assert str(scan) in capsys.readouterr().err
    assert len(data.train.sizes()) == 3


def test_auto_keeps_small_sets_in_memory_and_streams_large_ones(photos, tmp_path, monkeypatch):
    assert isinstance(build(tmp_path / "a", photos, "auto", image_size=32).train, TensorPairs)
    monkeypatch.setattr(loading, "memory_budget", lambda: 10_000)  # bytes: smaller than the set
    data = build(tmp_path / "b", photos, "auto", image_size=32)
    assert isinstance(data.train, StreamedSplit)
    estimate = loading.estimated_bytes(build_folder(tmp_path / "c", root=str(photos), classes=CLASSES, image_size=32))
    assert estimate == 24 * 32 * 32 * 4, "one size: the estimate is exact"


def test_auto_uses_an_entry_already_in_the_cache(photos, tmp_path, monkeypatch):
    build(tmp_path, photos, "memory", image_size=32)
    monkeypatch.setattr(loading, "memory_budget", lambda: 0)
    assert isinstance(build(tmp_path, photos, "auto", image_size=32).train, TensorPairs)


def test_a_dataset_built_as_tensors_stays_in_memory_when_streaming_is_asked(tmp_path):
    from segbench_plugins.datasets.shapes import build_shapes

    with loading.requested("streaming", 2):
        data = build_shapes(tmp_path, image_size=32, num_train=8, num_val=4)
    assert isinstance(data.train, TensorPairs) and isinstance(data.val, TensorPairs)


# --- a run on either path ------------------------------------------------------------------

SUITE = """
name = "paths"
seeds = [0]

[dataset]
name = "folder"
root = "{root}"
classes = ["background", "red", "green"]
{image_size}

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [16, 8, 8, 8, 8]

[train]
epochs = 2
batch_size = 6
optimizer = {{ name = "adamw", lr = 3e-3 }}
augment = {augment}

[eval]
metrics = ["miou", "pixel_accuracy"]
"""
BATCH_AUGMENT = "{ hflip = 0.5, scale = [0.75, 1.5] }"
SAMPLE_AUGMENT = "{ resize = [96, 40], ratio = [0.5, 2.0], crop = 40, cat_max_ratio = 0.75, hflip = 0.5, photometric = true }"


def run_record(suite: Path, out: Path, mode: str, workers: int) -> dict:
    segbench.run_suite(suite, output=out, overrides={"train.data_loading": mode, "train.data_workers": workers})
    (path,) = out.glob("paths/runs/*/seed-0/record.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("augment, image_size", [(BATCH_AUGMENT, "image_size = 40"), (SAMPLE_AUGMENT, "")],
                         ids=["batch-augment", "per-sample-pipeline"])
def test_a_run_computes_the_same_numbers_on_either_path_with_any_workers(photos, tmp_path, augment, image_size):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(root=photos, augment=augment, image_size=image_size))
    records = {(mode, workers): run_record(suite, tmp_path / f"{mode}-{workers}", mode, workers)
               for mode, workers in (("memory", 0), ("streaming", 0), ("streaming", 2))}
    first = records["memory", 0]
    assert first["status"] == "ok" and 0 < first["metrics"]["miou"] < 1
    for (mode, workers), record in records.items():
        assert record["variant_id"] == first["variant_id"], "the data path is not part of the variant id"
        assert record["metrics"] == first["metrics"] and record["curves"] == first["curves"], (mode, workers)
        assert record["per_image"] == first["per_image"]
        loaded = record["data_loading"]
        assert (loaded["path"], loaded["workers"]) == (mode, workers)
        assert loaded["feed"] == ("loader" if mode == "streaming" or augment == SAMPLE_AUGMENT else "indexed")
        assert 0 <= loaded["wait_share"] < 1


# --- bad input, named before training --------------------------------------------------------


def segbench_cli(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "segbench", *argv], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("setting, says", [
    ("train.data_workers=-1", 'train.data_workers: expected an integer from 0 to 256 or "auto", got -1'),
    ("train.data_workers=many", 'train.data_workers: expected an integer from 0 to 256 or "auto"'),
    ("train.data_loading=disk", "train.data_loading: unknown data_loading 'disk'"),
    ("train.augment={crop=32, resize=[-64, 32]}", "train.augment.resize: expected [LONG, SHORT]"),
    ("train.augment={crop=32, resize=[64, 32], ratio=[0, 2]}", "train.augment.ratio: expected [LOW, HIGH] with 0 < LOW"),
    ("train.augment={crop=0}", "train.augment.crop: expected an integer or [H, W] of integers in 1..4096"),
    ("train.augment={crop=2000, resize=[2048, 512], ratio=[0.5, 2.0]}",
     "train.augment.crop: [2000, 2000] is larger than any rescaled image (short side at most 1024)"),
    ("train.augment={crop=32, cat_max_ratio=1.5}", "train.augment.cat_max_ratio: expected a number > 0 and <= 1"),
    ("train.augment={cat_max_ratio=0.75}", "train.augment.cat_max_ratio: cat_max_ratio chooses among random crops; set crop"),
    ("train.augment={resize=[64, 32]}", "train.augment.crop: rescaled images differ in size and cannot be batched"),
    ("train.augment={crop=32, resize=[64, 32], short_side=[20, 40]}", "train.augment.short_side: resize and short_side"),
    ("train.augment={crop=32, scale=[0.5, 2.0]}", "train.augment.scale: scale zooms stored images batch by batch"),
    ("train.augment={ratio=[0.5, 2.0]}", "train.augment.ratio: ratio scales resize"),
    ("train.augment={short_side=[40, 20], crop=16}", "train.augment.short_side: expected [LOW, HIGH] of integers"),
])
def test_bad_loading_and_pipeline_settings_exit_2_before_training(photos, tmp_path, capsys, setting, says):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(root=photos, augment="{}", image_size="image_size = 40"))
    assert main(["validate", str(suite), "--set", setting]) == 2
    err = capsys.readouterr().err
    assert says in err and str(suite) in err
    assert "Traceback" not in err


def test_native_sizes_without_a_crop_are_refused_with_the_fix(photos, tmp_path, capsys):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(root=photos, augment="{ hflip = 0.5 }", image_size=""))
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "keep 3 native sizes" in err and "train.augment.crop = 512" in err


BROKEN_PLUGIN = '''
import os
from pathlib import Path

import numpy as np
import torch

from segbench import MapSamples, SegmentationData, cached_dataset, hookimpl


class Squares(MapSamples):
    """32 px squares; sample {broken} cannot be read, or kills its loader worker once armed."""

    def __init__(self, count, root):
        self.count, self.root = count, root

    def __len__(self):
        return self.count

    def read(self, index):
        if index == {broken}:
            armed = Path(self.root) / "armed"
            if "{how}" == "raise":
                raise OSError("disk on fire")
            if armed.exists() and torch.utils.data.get_worker_info() is not None:
                armed.unlink()
                os.kill(os.getpid(), 9)
        image = np.full((32, 32, 3), index * 7 % 256, np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 8:24] = 1
        return image, mask

    def describe(self, index):
        return f"square-{{index}}.png"


def build_squares(cache_dir, *, root: str = "."):
    return cached_dataset(cache_dir, {{"dataset": "squares", "root": root}},
                          lambda: SegmentationData(["background", "square"], Squares(24, root), Squares(8, root)))


@hookimpl
def segbench_datasets(register):
    register.add_dataset("squares", build_squares)
'''

SQUARES_SUITE = """
name = "paths"
seeds = [0]
plugins = ["squares.py"]

[dataset]
name = "squares"
root = "{root}"

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [8, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 4
data_loading = "streaming"
data_workers = 2

[eval]
metrics = ["miou"]

[ablate]
"model.upsampler" = ["nearest", "bilinear"]
"""


def squares_suite(tmp_path, broken, how) -> Path:
    (tmp_path / "squares.py").write_text(BROKEN_PLUGIN.format(broken=broken, how=how))
    suite = tmp_path / "suite.toml"
    suite.write_text(SQUARES_SUITE.format(root=tmp_path))
    return suite


def test_a_map_style_dataset_whose_first_read_fails_exits_2_naming_the_sample(tmp_path):
    suite = squares_suite(tmp_path, broken=0, how="raise")
    done = segbench_cli("run", str(suite), "-o", str(tmp_path / "out"), "-q")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "square-0.png" in done.stderr and "disk on fire" in done.stderr
    assert not list((tmp_path / "out").glob("paths/runs/*/*/record.json")), "nothing trained"


def test_a_loader_worker_that_dies_fails_its_run_alone_naming_the_sample(tmp_path):
    suite = squares_suite(tmp_path, broken=5, how="kill")
    cache_dir = tmp_path / "cache"
    prepared = segbench_cli("data", "prepare", str(suite), "--data-cache", str(cache_dir), "-q")
    assert prepared.returncode == 0, prepared.stderr
    (tmp_path / "armed").touch()  # the next read of sample 5 in a loader worker kills that worker
    done = segbench_cli("run", str(suite), "-o", str(tmp_path / "out"), "-q", "--data-cache", str(cache_dir))
    assert done.returncode == 1, done.stdout + done.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("paths/runs/*/seed-0/record.json")]
    assert sorted(r["status"] for r in records) == ["failed", "ok"]
    (failed,) = [r for r in records if r["status"] == "failed"]
    assert "a data worker died while reading sample 5 (square-5.png)" in failed["error"]["message"]


def test_data_prepare_says_which_path_and_how_many_workers(photos, tmp_path, capsys):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(root=photos, augment="{}", image_size=""))

    def prepare(mode, cache_dir):
        assert main(["data", "prepare", str(suite), "--set", f"train.data_loading={mode}", "--set", "train.data_workers=2",
                     "--data-cache", str(cache_dir), "-q"]) == 0
        return capsys.readouterr().out

    assert "folder: streaming from its files (24 samples" in prepare("streaming", tmp_path / "s")
    assert "scan already cached" in prepare("streaming", tmp_path / "s")
    memory = prepare("memory", tmp_path / "m")
    assert "folder: in memory; decoded with 2 workers and cached" in memory
    assert "scanned with 2 workers" in prepare("streaming", tmp_path / "fresh")


def test_data_stats_agree_on_both_paths(photos, tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(root=photos, augment="{}", image_size=""))
    stats = {mode: api.data_stats(suite, overrides={"train.data_loading": mode}, cache_dir=tmp_path / mode)
             for mode in ("memory", "streaming")}
    assert stats["memory"][0]["splits"] == stats["streaming"][0]["splits"]
    assert stats["memory"][0]["splits"]["train"]["sizes"] == [[60, 80], [64, 64], [70, 50]]


# --- the plugin guide's map-style example -------------------------------------------------------

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"


def guide_example():
    """The guide's map-style dataset as a module of its own, as a plugin author's would be."""
    if "guide_photos" not in sys.modules:
        text = GUIDE.read_text()
        section = text[text.index("### Datasets that do not fit in memory"):]
        code = section[section.index("```python") + len("```python"):section.index("```\n")]
        module = types.ModuleType("guide_photos")
        exec(compile(code, str(GUIDE), "exec"), module.__dict__)  # noqa: S102 - our own docs
        sys.modules["guide_photos"] = module  # so that its samples pickle, as an installed plugin's do
    return sys.modules["guide_photos"]


def write_guide_layout(root: Path) -> Path:
    rng = np.random.default_rng(3)
    for role, count in (("train", 6), ("val", 3)):
        (root / role).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            mask = np.zeros((20, 30), np.uint8)
            mask[5:15, 5 + index:20] = 1
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(root / role / f"p{index}.jpg")
            Image.fromarray(mask).save(root / role / f"p{index}.mask.png")
    return root


class TestTheGuidesMapStyleExample(segbench.testing.DatasetContract):
    def build(self, cache_dir):
        root = write_guide_layout(Path(cache_dir) / "photos")
        return guide_example().build_photos(cache_dir, root=str(root))
