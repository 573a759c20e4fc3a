"""Battery rows for root cause 11: a damaged sample cache or generated ``shapes`` folder is
named on stderr and repaired from its source (exit 0), never trained on silently; what
cannot be repaired exits 2 naming the path.

Each case gets a private cache (``--data-cache {tmp}/cache``), filled and damaged in ``setup``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from segbench_plugins.datasets import shapes

from segbench.data import cache

from .harness import TINY, Case, check_case

PARAMS = {"image_size": 32, "num_train": 8, "num_val": 4}  # TINY's dataset
CACHE = ["--data-cache", "{tmp}/cache"]


def fill(tmp: Path) -> Path:
    """TINY's data in the case's cache; returns its sample-cache entry."""
    shapes.build_shapes(tmp / "cache", **PARAMS)
    (entry,) = (tmp / "cache" / cache.SUBDIR).glob("shapes-*.pt")
    return entry


def folder(tmp: Path) -> Path:
    """TINY's generated folder, with its sample-cache entry gone so that it is read."""
    fill(tmp).unlink()
    return shapes.dataset_dir(tmp / "cache", {**PARAMS, "generator_seed": 0})


def flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def flip_tensor(tmp):
    entry = fill(tmp)
    masks = torch.load(entry, weights_only=True)["val"]["masks"]
    flip(entry, entry.read_bytes().find(masks.numpy().tobytes()) + masks.numel() // 2)


def flip_class_name(tmp):
    entry = fill(tmp)
    flip(entry, entry.read_bytes().find(b"rectangle"))


def truncate(keep):
    def damage(tmp):
        entry = fill(tmp)
        entry.write_bytes(entry.read_bytes()[: int(entry.stat().st_size * keep)])
    damage.__name__ = f"truncated_to_{round(keep * 100)}_percent"
    return damage


def garbage(tmp):
    fill(tmp).write_bytes(b"\x00garbage" * 100)


def drop_storage(tmp):
    entry = fill(tmp)
    with zipfile.ZipFile(entry) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    entry.unlink()
    with zipfile.ZipFile(entry, "w") as archive:
        for name, content in members.items():
            if not name.endswith("/data/0"):
                archive.writestr(name, content)


def not_a_dict(tmp):
    torch.save([1, 2, 3], fill(tmp))


def legacy(tmp):
    """An entry as segbench wrote it before checksums: format 1, no checksum."""
    entry = fill(tmp)
    stored = torch.load(entry, weights_only=True)
    del stored["checksum"]
    torch.save({**stored, "format": 1}, entry)


def other_key(tmp):
    entry = fill(tmp)
    stored = torch.load(entry, weights_only=True)
    torch.save({**stored, "key": '{"dataset": "shapes", "num_train": 9}'}, entry)


def directory(tmp):
    entry = fill(tmp)
    entry.unlink()
    entry.mkdir()


def png_flipped(tmp):
    flip(folder(tmp) / "images" / "train" / "000002.png", 80)


def png_truncated(tmp):
    path = folder(tmp) / "images" / "val" / "000000.png"
    path.write_bytes(path.read_bytes()[:50])


def png_deleted(tmp):
    (folder(tmp) / "images" / "train" / "000007.png").unlink()


def split_deleted(tmp):
    import shutil

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
    shapes.build_shapes(tmp / "cache", **PARAMS)  # the entry again
    flip_tensor(tmp)
    flip(root / "images" / "val" / "000003.png", 70)


def stats(damage, says, exit=0, command=("data", "stats")):
    name = f"{command[-1]}-{damage.__name__.replace('_', '-')}"
    return Case(name, [*command, "{suite}", *CACHE], exit, says, suite=TINY, setup=damage)


CASES = [
    # the sample cache: every damage is named with its reason and repaired from the source
    stats(flip_tensor, "fails its checksum (its contents are damaged); rebuilding it from its source"),
    stats(flip_class_name, "fails its checksum"),
    stats(truncate(0.5), "is unreadable"),
    stats(truncate(0.97), "is unreadable"),
    stats(truncate(0.0), "is unreadable"),
    stats(garbage, "is unreadable"),
    stats(drop_storage, "rebuilding it from its source"),
    stats(not_a_dict, "is not a sample-cache entry"),
    stats(legacy, "has no checksum (written by an older segbench)"),
    stats(other_key, "holds another dataset's key"),
    stats(directory, "cannot write the sample cache entry", exit=2),
    Case("stats-cache-is-a-file", ["data", "stats", "{suite}", "--data-cache", "{tmp}/taken"], 2,
         "cannot write the sample cache entry", suite=TINY, setup=lambda tmp: (tmp / "taken").write_text("")),
    stats(flip_tensor, "fails its checksum", command=("data", "prepare")),
    stats(legacy, "no checksum", command=("data", "prepare")),
    stats(flip_tensor, "fails its checksum", command=("validate",)),
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
