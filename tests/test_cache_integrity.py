"""Integrity of the sample cache and of the generated ``shapes`` folder: damage is found when
an entry is opened, named on stderr, and repaired from the source; the data that comes
back equals a fresh decode."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch
from segbench_plugins.datasets import coco, shapes

from segbench.data import ImageList, SegmentationData, TensorPairs, cache
from segbench.errors import SegbenchError

SMALL = {"image_size": 32, "num_train": 8, "num_val": 4}
KEY = {"dataset": "toy", "version": 1}


def toy_data() -> SegmentationData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 8, 9), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, 3, (4, 8, 9), dtype=torch.uint8, generator=generator)
    return SegmentationData(["background", "meadow", "forest"], TensorPairs(images, masks), TensorPairs(images[2:].clone(), masks[2:].clone()))


class CountingBuild:
    def __init__(self, make=toy_data):
        self.make, self.calls = make, 0

    def __call__(self):
        self.calls += 1
        return self.make()


def same_data(a: SegmentationData, b: SegmentationData) -> bool:
    return (a.classes == b.classes and a.mode == b.mode and a.ignore_index == b.ignore_index
            and all(torch.equal(x, y) for x, y in zip(tensors(a), tensors(b), strict=True)))


def tensors(data: SegmentationData) -> list:
    parts = []
    for split in (data.train, data.val):
        parts += [split.images, split.masks] if isinstance(split.images, torch.Tensor) else [*split.images, *split.masks]
    return parts


def filled(tmp_path, key=KEY, make=toy_data) -> Path:
    cache.cached_dataset(tmp_path, key, make)
    return cache.entry_path(tmp_path, key)


def flip_byte_at(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def offset_of(path: Path, needle: bytes) -> int:
    offset = path.read_bytes().find(needle)
    assert offset >= 0, "the bytes to damage are in the entry"
    return offset


def reopen(tmp_path, capsys, key=KEY, make=toy_data):
    """Open the entry again: (data, how often it was rebuilt, stderr)."""
    capsys.readouterr()
    build = CountingBuild(make)
    data = cache.cached_dataset(tmp_path, key, build)
    return data, build.calls, capsys.readouterr().err


# --- the sample cache ----------------------------------------------------------------------


def test_a_sound_entry_opens_silently_without_rebuilding(tmp_path, capsys):
    filled(tmp_path)
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 0 and err == ""
    assert same_data(data, toy_data())


def test_a_flipped_tensor_byte_is_found_warned_and_rebuilt(tmp_path, capsys):
    path = filled(tmp_path)
    images = toy_data().train.images
    flip_byte_at(path, offset_of(path, images.numpy().tobytes()) + 100)
    assert not torch.equal(torch.load(path, weights_only=True, mmap=True)["train"]["images"], images), \
        "torch loads the damaged tensor without complaint: the damage is real"

    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1
    assert str(path) in err and "fails its checksum" in err and "rebuilding" in err
    assert same_data(data, toy_data())
    again, rebuilt, err = reopen(tmp_path, capsys)  # the rebuilt entry is sound
    assert rebuilt == 0 and err == "" and same_data(again, toy_data())


def test_a_flipped_byte_in_the_description_is_found(tmp_path, capsys):
    path = filled(tmp_path)
    flip_byte_at(path, offset_of(path, b"meadow"))  # a class name in the pickled header
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and str(path) in err and "rebuilding" in err
    assert data.classes == ["background", "meadow", "forest"]


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.0])
def test_a_truncated_entry_is_rebuilt_with_a_warning(tmp_path, capsys, keep):
    path = filled(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and str(path) in err and "is unreadable" in err
    assert same_data(data, toy_data())


def test_an_entry_missing_a_part_is_rebuilt_with_a_warning(tmp_path, capsys):
    path = filled(tmp_path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    storage = max(members, key=lambda name: len(members[name]))  # the largest tensor's bytes
    path.unlink()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            if name != storage:
                archive.writestr(name, content)
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and str(path) in err and "rebuilding" in err
    assert same_data(data, toy_data())


def test_an_entry_written_without_a_checksum_is_rebuilt_and_stamped(tmp_path, capsys):
    """An older segbench wrote entries (format 1) with no checksum: nothing vouches for
    them, so they are rebuilt once, in place."""
    path = cache.entry_path(tmp_path, KEY)
    path.parent.mkdir(parents=True)
    data = toy_data()
    old = {"format": 1, "key": cache._canonical(KEY), "classes": data.classes, "ignore_index": 255, "mode": "multiclass",
           "train": cache._split_to(data.train), "val": cache._split_to(data.val)}
    torch.save(old, path)

    rebuilt_data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and str(path) in err and "no checksum" in err
    assert same_data(rebuilt_data, data)
    assert torch.load(path, weights_only=True)["checksum"].startswith("crc32:")
    _, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 0 and err == ""


def test_native_size_entries_are_checksummed_too(tmp_path, capsys):
    def native():
        images = [torch.full((3, 4, 5), 7, dtype=torch.uint8), torch.full((3, 2, 7), 9, dtype=torch.uint8)]
        masks = [torch.zeros((4, 5), dtype=torch.uint8), torch.ones((2, 7), dtype=torch.uint8)]
        return SegmentationData(["bg", "x"], ImageList(images, masks), ImageList(images, masks), mode="binary")

    key = {"dataset": "native"}
    path = filled(tmp_path, key, native)
    flip_byte_at(path, offset_of(path, bytes([9] * 42)) + 5)
    data, rebuilt, err = reopen(tmp_path, capsys, key, native)
    assert rebuilt == 1 and "fails its checksum" in err
    assert same_data(data, native())


def test_the_checksum_covers_every_tensor_and_the_description():
    def stored(data):
        return {"key": "k", "classes": data.classes, "ignore_index": 255, "mode": data.mode,
                "train": cache._split_to(data.train), "val": cache._split_to(data.val)}

    base = cache.checksum(stored(toy_data()))
    assert base == cache.checksum(stored(toy_data())), "deterministic"
    for change in ("train.images", "train.masks", "val.images", "val.masks", "classes"):
        data = toy_data()
        if change == "classes":
            data.classes[1] = "meadox"
        else:
            split, part = change.split(".")
            getattr(getattr(data, split), part).view(-1)[-1] ^= 1
        assert cache.checksum(stored(data)) != base, change


def test_a_directory_in_place_of_an_entry_is_refused_by_name(tmp_path, capsys):
    path = cache.entry_path(tmp_path, KEY)
    path.mkdir(parents=True)
    with pytest.raises(SegbenchError, match="cannot write the sample cache entry") as error:
        cache.cached_dataset(tmp_path, KEY, toy_data)
    assert str(path) in str(error.value)


def test_a_cache_folder_that_cannot_be_written_is_refused_by_name(tmp_path):
    (tmp_path / "taken").write_text("a file where the cache folder should be")
    with pytest.raises(SegbenchError, match="cannot write the sample cache entry .*--data-cache"):
        cache.cached_dataset(tmp_path / "taken", KEY, toy_data)


def test_a_damaged_shapes_entry_comes_back_equal_to_a_fresh_decode(tmp_path, capsys):
    fresh = shapes.build_shapes(tmp_path / "fresh", **SMALL)
    shapes.build_shapes(tmp_path / "cache", **SMALL)
    (path,) = (tmp_path / "cache" / cache.SUBDIR).glob("shapes-*.pt")
    flip_byte_at(path, offset_of(path, fresh.val.images.numpy().tobytes()[:4096]) + 2000)
    capsys.readouterr()
    again = shapes.build_shapes(tmp_path / "cache", **SMALL)
    assert str(path) in capsys.readouterr().err
    assert same_data(again, fresh)


# --- the generated shapes folder -------------------------------------------------------------


def damage_png(root: Path) -> None:
    flip_byte_at(root / "images" / "train" / "000003.png", 60)


def truncate_png(root: Path) -> None:
    path = root / "images" / "val" / "000001.png"
    path.write_bytes(path.read_bytes()[:100])


def delete_png(root: Path) -> None:
    (root / "images" / "train" / "000005.png").unlink()


def cut_annotations(root: Path) -> None:
    path = root / "annotations" / "instances_val.json"
    path.write_text(path.read_text()[:-40])


def drop_manifest(root: Path) -> None:
    (root / shapes.MANIFEST).unlink()


def generated(cache_dir: Path) -> Path:
    """Generate SMALL and drop its sample-cache entry, so the next build reads the folder."""
    shapes.build_shapes(cache_dir, **SMALL)
    for entry in (cache_dir / cache.SUBDIR).glob("shapes-*.pt"):
        entry.unlink()
    return shapes.dataset_dir(cache_dir, {**SMALL, "generator_seed": 0})


@pytest.mark.parametrize("damage, says", [
    (damage_png, "images/train/000003.png (changed)"),
    (truncate_png, "images/val/000001.png (changed)"),
    (delete_png, "images/train/000005.png (missing)"),
    (cut_annotations, "annotations/instances_val.json (changed)"),
    (drop_manifest, "has no readable SHA256SUMS"),
], ids=lambda v: getattr(v, "__name__", None))
def test_a_damaged_shapes_folder_is_generated_again(tmp_path, capsys, damage, says):
    fresh = shapes.build_shapes(tmp_path / "fresh", **SMALL)
    root = generated(tmp_path / "cache")
    damage(root)
    assert shapes.folder_damage(root) is not None
    capsys.readouterr()
    data = shapes.build_shapes(tmp_path / "cache", **SMALL)
    err = capsys.readouterr().err
    assert str(root) in err and says in err and "generating it again" in err
    assert same_data(data, fresh)
    assert shapes.folder_damage(root) is None
    assert sorted(os.listdir(root.parent)) == [root.name], "no copy of the damaged folder is left behind"


def test_a_sound_shapes_folder_is_read_not_regenerated(tmp_path, capsys, monkeypatch):
    root = generated(tmp_path / "cache")
    monkeypatch.setattr(shapes, "write_coco_dataset", lambda *a: pytest.fail("generated again"))
    capsys.readouterr()
    shapes.build_shapes(tmp_path / "cache", **SMALL)
    assert capsys.readouterr().err == ""
    assert shapes.folder_damage(root) is None


def test_the_manifest_is_what_sha256sum_checks(tmp_path):
    import hashlib

    root = generated(tmp_path / "cache")
    lines = (root / shapes.MANIFEST).read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != shapes.MANIFEST}
    assert set(listed) == files and len(files) == SMALL["num_train"] + SMALL["num_val"] + 2
    name = "annotations/instances_train.json"
    assert listed[name] == hashlib.sha256((root / name).read_bytes()).hexdigest()


def test_a_damaged_folder_that_cannot_be_removed_names_the_folder_to_delete(tmp_path, monkeypatch):
    root = generated(tmp_path / "cache")
    damage_png(root)
    real_rename = os.rename

    def refuse(source, destination):
        if Path(source) == root:
            raise PermissionError(13, "Permission denied")
        return real_rename(source, destination)

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(SegbenchError) as error:
        shapes.build_shapes(tmp_path / "cache", **SMALL)
    message = str(error.value)
    assert str(root) in message and "delete that folder" in message and "Permission denied" in message


def test_a_folder_that_passes_its_checksums_but_cannot_be_read_names_the_folder(tmp_path, monkeypatch):
    root = generated(tmp_path / "cache")

    def unreadable(annotation_file, *args, **kwargs):
        raise OSError("image file is truncated")

    monkeypatch.setattr(coco, "load_coco_split", unreadable)
    with pytest.raises(SegbenchError) as error:
        shapes.build_shapes(tmp_path / "cache", **SMALL)
    assert str(root) in str(error.value) and "delete that folder" in str(error.value)
