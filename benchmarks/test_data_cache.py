"""Reading a cached sample vs building it from COCO annotations and the image file.

The subset is the real COCO val2017 image 39769 (a JPEG, as COCO ships them, at its
native 640x480) with its six real annotations, listed under 16 image ids, read as
``voc20`` at ``image_size = 256``. *Decoding* parses the annotation file with
pycocotools, rasterises the polygons into a semantic mask, decodes the JPEG and resizes
both: what every run would do without the cache. *Cached* opens the cache entry and
copies every sample out of it: what a run does with it. Target: cached >= 10x faster.

Every open checks each shard of the entry against its CRC-32. *Unverified* is the same read
with the check switched off, and *open* is opening the entry alone (the check is nearly all
of it): side by side, they show what the integrity check costs next to a decode.
Target: a decode costs >= 20x an open.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import median_seconds
from PIL import Image
from segbench_plugins.datasets import coco_dataset

from segbench.data import MapSamples, cache
from segbench.data.cache import take_events
from segbench.data.decode import read_sample

DATA = Path(__file__).parent.parent / "tests" / "data"
COPIES = 16
TARGET = 10.0
CHECKSUM_TARGET = 20.0
pytestmark = pytest.mark.quick  # CI runs it: .ci/run
_timings: dict = {}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("coco")
    source = json.loads((DATA / "coco-real" / "annotations" / "instances_sample.json").read_text())
    (original,) = source["images"]
    images, annotations = [], []
    for copy in range(COPIES):
        image_id = original["id"] * 100 + copy
        images.append({**original, "id": image_id, "file_name": f"{image_id:012d}.jpg"})
        annotations += [{**a, "id": len(annotations) + 1, "image_id": image_id} for a in source["annotations"]]
    (root / "annotations").mkdir()
    jpeg = Image.open(DATA / "coco-real-image" / "000000039769.png").convert("RGB")
    for split in ("train", "val"):
        document = {**source, "images": images, "annotations": annotations}
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(document))
        (root / f"{split}2017").mkdir()
        for image in images:
            jpeg.save(root / f"{split}2017" / image["file_name"], quality=90)
    return root


def build(cache_dir, root):
    return coco_dataset.build_coco(cache_dir, root=str(root), categories="voc20", image_size=256)


def copy_out(data):
    """What a run does with samples: take each one out as tensors (map-style ones decoded)."""
    def raw(split, index):
        return read_sample(split, index) if isinstance(split, MapSamples) else split.raw(index)

    return [raw(data.train, i)[0].clone() for i in range(len(data.train))] + [raw(data.val, i)[1].clone() for i in range(len(data.val))]


def test_decoding_from_annotations_and_images(benchmark, coco_root, tmp_path_factory):
    def fresh_cache():
        return (tmp_path_factory.mktemp("miss"), coco_root), {}

    def decode(cache_dir, root):
        # The cost of a miss minus the cost of writing the entry: pure decoding.
        roles = {r: (r, *coco_dataset._split_paths(str(root), r, None, None)) for r in ("train", "val")}
        rules = {"image_size": 256, "fit": "resize", "max_images": 0, "min_pixels": 0, "crowd": "ignore",
                 "overlap": "ignore", "ignore_index": 255, "seed": 0, "on_missing": "error"}
        per_role = {"train": {"selection": "filtered", "native": False}, "val": {"selection": "filtered", "native": False}}
        copy_out(coco_dataset._decode(roles, "voc20", rules, per_role))

    benchmark.group = "data cache"
    benchmark.pedantic(decode, setup=fresh_cache, rounds=5, warmup_rounds=1)
    _timings["decode"] = median_seconds(benchmark)


def test_reading_the_cached_samples(benchmark, coco_root, tmp_path_factory, ratios):
    cache_dir = tmp_path_factory.mktemp("hit")
    build(cache_dir, coco_root)  # fill the cache once
    take_events()

    def read():
        copy_out(build(cache_dir, coco_root))

    benchmark.group = "data cache"
    benchmark.pedantic(read, rounds=20, warmup_rounds=2)
    assert all(event.hit for event in take_events()), "every timed read was a cache hit"
    _timings["cached"] = median_seconds(benchmark)
    ratio = _timings["decode"] / _timings["cached"]
    ratios.append(("cached sample read vs COCO decode", ratio, TARGET))
    assert ratio >= TARGET, f"cached reads only {ratio:.1f}x faster than decoding"


def test_reading_the_cached_samples_unverified(benchmark, coco_root, tmp_path_factory, monkeypatch, ratios):
    cache_dir = tmp_path_factory.mktemp("unverified")
    build(cache_dir, coco_root)
    take_events()
    monkeypatch.setattr(cache, "_check_shards", lambda *args: None)  # trust the entry

    def read():
        copy_out(build(cache_dir, coco_root))

    benchmark.group = "data cache"
    benchmark.pedantic(read, rounds=20, warmup_rounds=2)
    assert all(event.hit for event in take_events())
    _timings["unverified"] = median_seconds(benchmark)
    ratios.append(("verified vs unverified cached read (the check's overhead; no target)", _timings["cached"] / _timings["unverified"], None))


def test_opening_the_entry(benchmark, coco_root, tmp_path_factory, ratios):
    cache_dir = tmp_path_factory.mktemp("checksum")
    build(cache_dir, coco_root)
    (entry,) = [path for path in (cache_dir / cache.SUBDIR).iterdir() if path.is_dir()]
    key = json.loads(json.loads((entry / cache.INDEX).read_text())["key"])

    benchmark.group = "data cache"
    benchmark.pedantic(lambda: cache.read_entry(entry, key), rounds=20, warmup_rounds=2)
    assert cache.read_entry(entry, key)[0] is not None
    ratio = _timings["decode"] / median_seconds(benchmark)
    ratios.append(("COCO decode vs opening the entry (every shard's checksum)", ratio, CHECKSUM_TARGET))
    assert ratio >= CHECKSUM_TARGET, f"opening the entry costs 1/{ratio:.1f} of a decode"
