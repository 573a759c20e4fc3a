"""``segbench data prepare | stats | show``: the commands, their output and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_dataset_folder import CLASSES, write_folder

from segbench.cli import main
from segbench_plugins.datasets.shapes import build_shapes

SMALL = ["--set", "image_size=48", "--set", "num_train=5", "--set", "num_val=3"]


def test_prepare_decodes_once_then_reports_a_hit(tmp_path, capsys):
    assert main(["data", "prepare", "shapes", *SMALL, "--data-cache", str(tmp_path), "-q"]) == 0
    first = capsys.readouterr().out
    assert main(["data", "prepare", "shapes", *SMALL, "--data-cache", str(tmp_path), "-q"]) == 0
    second = capsys.readouterr().out
    assert "decoded and cached" in first and "already cached" in second
    entry = first.split("-> ")[1].strip()
    assert entry.startswith(str(tmp_path / "samples")) and entry == second.split("-> ")[1].strip()


def test_prepare_reads_a_suite_and_honours_its_overrides(tmp_path, write_suite, capsys):
    suite = write_suite('[dataset]\nname = "shapes"\nimage_size = 40\nnum_train = 2\nnum_val = 1\n')
    assert main(["data", "prepare", str(suite), "--data-cache", str(tmp_path), "-q", "--set", "dataset.num_train=3"]) == 0
    assert main(["data", "stats", str(suite), "--data-cache", str(tmp_path), "--json", "--set", "dataset.num_train=3"]) == 0
    stats = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert stats["splits"]["train"]["images"] == 3 and stats["splits"]["train"]["sizes"] == [[40, 40]]


def test_stats_json_counts_match_the_masks(tmp_path, capsys):
    assert main(["data", "stats", "shapes", *SMALL, "--data-cache", str(tmp_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    data = build_shapes(tmp_path, image_size=48, num_train=5, num_val=3)
    assert stats["schema"] == 1 and stats["classes"] == list(data.classes) and stats["mode"] == "multiclass"
    for role in ("train", "val"):
        masks = getattr(data, role).masks.numpy()
        split = stats["splits"][role]
        assert split["images"] == masks.shape[0] and split["pixels"] == masks.size
        for entry in split["classes"]:
            assert entry["pixels"] == int((masks == entry["index"]).sum()), entry
            assert entry["images"] == int((masks == entry["index"]).any(axis=(1, 2)).sum()), entry
        assert sum(e["fraction"] for e in split["classes"]) == pytest.approx(1.0)


def test_stats_count_ignored_pixels_and_one_split(tmp_path, capsys):
    masks = write_folder(tmp_path / "data", count=4)  # the last row of every mask is 255
    args = ["data", "stats", "folder", "--set", f"root='{tmp_path / 'data'}'", "--set", f"classes={json.dumps(CLASSES)}",
            "--set", "val_fraction=0.5", "--data-cache", str(tmp_path / "cache")]
    assert main([*args, "--split", "val", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert list(stats["splits"]) == ["val"]
    one = next(iter(masks.values()))
    assert stats["splits"]["val"]["ignored_pixels"] == 2 * int((one == 255).sum())
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "train: 2 images (20x24)" in text and "ignored" in text and "road" in text


def test_show_draws_the_overlay_and_legend(tmp_path, capsys):
    output = tmp_path / "sample.png"
    assert main(["data", "show", "shapes", *SMALL, "--split", "val", "--index", "2", "-o", str(output), "--data-cache", str(tmp_path)]) == 0
    with Image.open(output) as picture:
        assert picture.size[0] > 400 and picture.size[1] > 200
        pixels = np.asarray(picture.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "an actual picture, not a blank canvas"


@pytest.mark.parametrize("args, expected", [
    (["stats", "shapez"], "did you mean 'shapes'"),
    (["stats", "shapes", "--set", "image_sise=32"], "did you mean 'image_size'"),
    (["show", "shapes", *SMALL, "--index", "9", "-o", "x.png"], "valid indices are 0..4"),
    (["stats", "folder", "--set", "root='/nowhere'", "--set", "classes=['a','b']"], "/nowhere"),
])
def test_bad_input_exits_2_naming_the_problem(tmp_path, capsys, args, expected):
    assert main(["data", *args, "--data-cache", str(tmp_path)]) == 2
    assert expected in capsys.readouterr().err


def test_a_run_on_native_sizes_stops_before_training(tmp_path, write_suite, capsys):
    write_folder(tmp_path / "data", count=4)
    Image.new("RGB", (10, 12)).save(tmp_path / "data" / "images" / "img00.png")
    Image.new("L", (10, 12)).save(tmp_path / "data" / "masks" / "img00.png")
    suite = write_suite(f'[dataset]\nname = "folder"\nroot = "{tmp_path / "data"}"\nclasses = {json.dumps(CLASSES)}\nval_fraction = 0.25\n')
    assert main(["run", str(suite), "-o", str(tmp_path / "out"), "-q"]) == 2
    error = capsys.readouterr().err
    assert "native sizes" in error and "image_size" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("layout", ["coco", "voc"])
def test_export_then_the_printed_dataset_table_reads_identical_masks(tmp_path, write_suite, capsys, layout):
    out = tmp_path / layout
    assert main(["data", "export", "shapes", *SMALL, "--format", layout, str(out), "--data-cache", str(tmp_path)]) == 0
    table = capsys.readouterr().out.split("\n\n", 1)[1]
    assert table.startswith("[dataset]\n") and f'name = "{layout}"' in table
    suite = write_suite(table)
    assert main(["data", "stats", str(suite), "--json", "--data-cache", str(tmp_path)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert main(["data", "stats", "shapes", *SMALL, "--json", "--data-cache", str(tmp_path)]) == 0
    original = json.loads(capsys.readouterr().out)
    assert exported["classes"] == original["classes"]
    assert exported["splits"] == original["splits"], "same images, same per-class pixel counts"
    assert main(["data", "export", "shapes", *SMALL, "--format", layout, str(out), "--data-cache", str(tmp_path)]) == 2
    assert "must be empty" in capsys.readouterr().err
