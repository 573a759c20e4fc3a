"""Battery rows for root cause 11: a damaged sample cache or generated ``shapes`` folder is
named on stderr and repaired from its source (exit 0), never trained on silently; what
cannot be repaired exits 2 naming the path.

Each case gets a private cache (``--data-cache {tmp}/cache``), filled and damaged in ``setup``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from segbench_plugins.datasets import shapes

from conftest import entries_of

from segbench.data import cache
from segbench.engine.build import dataset_origin
from segbench.plugins import load_catalogue

from .harness import TINY, Case, check_case

PARAMS = {"image_size": 32, "num_train": 8, "num_val": 4}  # TINY's dataset
CACHE = ["--data-cache", "{tmp}/cache"]


def build_as_the_engine(cache_dir: Path) -> None:
    """TINY's data, keyed as segbench keys it (with its plugin's origin, see cache.plugin_origin)."""
    with cache.plugin_origin(dataset_origin(load_catalogue().get("dataset", "shapes"))):
        shapes.build_shapes(cache_dir, **PARAMS)


def fill(tmp: Path) -> Path:
    """TINY's data in the case's cache; returns its sample-cache entry (a folder)."""
    build_as_the_engine(tmp / "cache")
    (entry,) = entries_of(tmp / "cache", "shapes")
    return entry


def folder(tmp: Path) -> Path:
    """TINY's generated folder, with its sample-cache entry gone so that it is read."""
    shutil.rmtree(fill(tmp))
    return shapes.dataset_dir(tmp / "cache", {**PARAMS, "generator_seed": 0})


def flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def flip_sample(tmp):
    flip(fill(tmp) / "val.masks", 500)


def flip_class_name(tmp):
    index = fill(tmp) / "index.json"
    flip(index, index.read_bytes().find(b"rectangle"))


def truncate(keep):
    def damage(tmp):
        part = fill(tmp) / "train.images"
        part.write_bytes(part.read_bytes()[: int(part.stat().st_size * keep)])
    damage.__name__ = f"truncated_to_{round(keep * 100)}_percent"
    return damage


def garbage(tmp):
    (fill(tmp) / "index.json").write_bytes(b"\x00garbage" * 100)


def drop_part(tmp):
    (fill(tmp) / "val.images").unlink()


def not_a_dict(tmp):
    (fill(tmp) / "index.json").write_text("[1, 2, 3]")


def older_format(tmp):
    """An entry index of an older layout."""
    index_path = fill(tmp) / "index.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "format": 2}))


def other_key(tmp):
    index_path = fill(tmp) / "index.json"
    index = json.loads(index_path.read_text())
    index["key"] = '{"dataset": "shapes", "num_train": 9}'
    index["checksum"] = cache._index_checksum(index)
    index_path.write_text(json.dumps(index))


def a_file(tmp):
    entry = fill(tmp)
    shutil.rmtree(entry)
    entry.write_text("a file where the entry belongs")


def png_flipped(tmp):
    flip(folder(tmp) / "images" / "train" / "000002.png", 80)


def png_truncated(tmp):
    path = folder(tmp) / "images" / "val" / "000000.png"
    path.write_bytes(path.read_bytes()[:50])


def png_deleted(tmp):
    (folder(tmp) / "images" / "train" / "000007.png").unlink()


def split_deleted(tmp):
    shutil.rmtree(folder(tmp) / "images" / "val")


def annotations_cut(tmp):
    path = folder(tmp) / "annotations" / "instances_train.json"
    path.write_text(path.read_text()[:-30])


def manifest_deleted(tmp):
    (folder(tmp) / shapes.MANIFEST).unlink()


def manifest_garbled(tmp):
    (folder(tmp) / shapes.MANIFEST).write_text("no two spaces here\n")


def entry_and_folder(tmp):
    root = folder(tmp)
    build_as_the_engine(tmp / "cache")  # the entry again
    flip_sample(tmp)
    flip(root / "images" / "val" / "000003.png", 70)


def stats(damage, says, exit=0, command=("data", "stats")):
    name = f"{command[-1]}-{damage.__name__.replace('_', '-')}"
    return Case(name, [*command, "{suite}", *CACHE], exit, says, suite=TINY, setup=damage)


CASES = [
    # the sample cache: every damage is named with its reason and repaired from the source
    stats(flip_sample, "fails its checksum (val masks of samples 0..3 are damaged); rebuilding it from its source"),
    stats(flip_class_name, "fails its checksum (index.json is damaged)"),
    stats(truncate(0.5), "is truncated or damaged"),
    stats(truncate(0.97), "is truncated or damaged"),
    stats(truncate(0.0), "is truncated or damaged"),
    stats(garbage, "has no readable index.json"),
    stats(drop_part, "rebuilding it from its source"),
    stats(not_a_dict, "is not a sample-cache entry"),
    stats(older_format, "has entry format 2"),
    stats(other_key, "holds another dataset's key"),
    stats(a_file, "is not a sample-cache folder; rebuilding it"),
    Case("stats-cache-is-a-file", ["data", "stats", "{suite}", "--data-cache", "{tmp}/taken"], 2,
         "cannot write the sample cache entry", suite=TINY, setup=lambda tmp: (tmp / "taken").write_text("")),
    stats(flip_sample, "fails its checksum", command=("data", "prepare")),
    stats(older_format, "has entry format 2", command=("data", "prepare")),
    stats(flip_sample, "fails its checksum", command=("validate",)),
    # the generated shapes folder: checked against its SHA256SUMS and generated again
    stats(png_flipped, "images/train/000002.png (changed); generating it again"),
    stats(png_truncated, "images/val/000000.png (changed)"),
    stats(png_deleted, "images/train/000007.png (missing)"),
    stats(split_deleted, "(missing) and 3 more"),
    stats(annotations_cut, "annotations/instances_train.json (changed)"),
    stats(manifest_deleted, "has no readable SHA256SUMS"),
    stats(manifest_garbled, "has a damaged SHA256SUMS"),
    stats(entry_and_folder, "images/val/000003.png (changed)"),
    stats(png_deleted, "(missing); generating it again", command=("validate",)),
]  # `run` prepares its data through the same path as `validate` (runner.prepare)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path):
    check_case(case, tmp_path)
