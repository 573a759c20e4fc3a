"""Datasets checked before training (issue 23, item 6): masks of an integer dtype (one check
for the preflight, the dataset contract and map-style reads), the preflight's training step
on as few images as a variant's steps get (batch norm cannot train on one), and a local or
editable dataset plugin's source in its cache key (an edit rebuilds the samples)."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from segbench.cli import main
from segbench.data.samples import mask_dtype_problem
from segbench.preflight import step_images
from segbench.testing import DatasetContract
from tests.battery.harness import tiny

PLUGIN = "sbdataset_checks"
SOURCE = '''
import numpy as np
import torch
from torch import nn

from segbench import MapSamples, cached_dataset, hookimpl
from segbench.data import SegmentationData, TensorPairs

CLASSES = ["background", "a", "b"]


def split(count, dtype):
    generator = torch.Generator().manual_seed(count)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return TensorPairs(images, torch.randint(0, 3, (count, 32, 32), generator=generator).to(dtype))


def masks_of(cache_dir, *, dtype: str = "uint8", val_dtype: str = "uint8"):
    """Tensors whose train masks are of ``dtype``."""
    return SegmentationData(CLASSES, split(8, getattr(torch, dtype)), split(4, getattr(torch, val_dtype)))


class Files(MapSamples):
    """Sample ``bad`` reads a float32 mask."""

    def __init__(self, count, bad):
        self.count, self.bad = count, bad

    def __len__(self):
        return self.count

    def read(self, index):
        rng = np.random.default_rng(index)
        mask = rng.integers(0, 3, (32, 32)).astype(np.float32 if index == self.bad else np.uint8)
        return rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), mask

    def describe(self, index):
        return f"file-{index}.png"


def map_style(cache_dir, *, bad: int = 5):
    return cached_dataset(cache_dir, {"dataset": "map_style", "bad": bad},
                          lambda: SegmentationData(CLASSES, Files(8, bad), Files(4, -1)))


def plain(out_channels, make_upsampler):
    """One convolution, no batch norm: trains on a single image."""
    return nn.Conv2d(3, out_channels, 3, padding=1)


@hookimpl
def segbench_datasets(register):
    register.add_dataset("masks_of", masks_of)
    register.add_dataset("map_style", map_style)


@hookimpl
def segbench_architectures(register):
    register.add_architecture("plain", plain, provides=["interpolate:nearest", "interpolate:bilinear"])
'''

BY = f"({PLUGIN} local)"
VALID = "uint8, int8, int16, uint16, int32, int64"


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / f"{PLUGIN}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop(PLUGIN, None)


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny())
    return path


def validate(capsys, suite, *settings, plugins=(PLUGIN,)):
    argv = ["validate", str(suite), *[arg for spec in plugins for arg in ("-p", spec)]]
    code = main(argv + [arg for setting in settings for arg in ("--set", setting)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# ------------------------------------------------------------------ masks of an integer dtype


@pytest.mark.parametrize("dtype", ["float32", "float16", "bool"])
def test_masks_of_a_non_integer_dtype_are_refused_naming_the_dataset_split_and_dtype(capsys, plugin, suite, dtype):
    code, text = validate(capsys, suite, f'dataset={{ name = "masks_of", dtype = "{dtype}" }}')
    assert code == 2, text
    assert f"dataset 'masks_of' {BY}: train sample 0: the mask is {dtype}; masks hold integer class indices" in text
    assert f"their dtype must be one of {VALID}" in text
    assert "val sample" not in text  # the val masks are uint8


def test_float_validation_masks_are_named_as_validation_masks(capsys, plugin, suite):
    code, text = validate(capsys, suite, 'dataset={ name = "masks_of", val_dtype = "float64" }')
    assert code == 2 and f"dataset 'masks_of' {BY}: val sample 0: the mask is float64" in text, text


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "int64"])
def test_masks_of_an_integer_dtype_pass(capsys, plugin, suite, dtype):
    code, text = validate(capsys, suite, f'dataset={{ name = "masks_of", dtype = "{dtype}" }}')
    assert code == 0, text


@pytest.mark.parametrize("loading", ["memory", "streaming"])
def test_a_float_mask_read_from_map_style_samples_is_refused_on_both_data_paths(capsys, plugin, suite, loading):
    code, text = validate(capsys, suite, 'dataset={ name = "map_style" }', f"train.data_loading={loading}", "train.data_workers=0")
    assert code == 2, text
    assert "dataset 'map_style'" in text
    assert "map_style train: sample 5 (file-5.png): the mask is float32; masks hold integer class indices" in text
    assert VALID in text


def test_the_dataset_contract_refuses_float_masks_with_the_preflights_words(plugin):
    from sbdataset_checks import masks_of

    class FloatMasks(DatasetContract):
        def build(self, cache_dir):
            return masks_of(cache_dir, dtype="float32")

    contract = FloatMasks()
    data = contract.build(None)
    with pytest.raises(pytest.fail.Exception) as refused:
        contract.test_masks_are_integer_label_maps_matching_images(data)
    assert str(refused.value).startswith(f"dataset of FloatMasks: train sample 0: {mask_dtype_problem(torch.float32)}")


def test_the_dataset_contract_accepts_integer_masks(plugin):
    from sbdataset_checks import masks_of

    class IntegerMasks(DatasetContract):
        def build(self, cache_dir):
            return masks_of(cache_dir, dtype="int32")

    contract = IntegerMasks()
    contract.test_masks_are_integer_label_maps_matching_images(contract.build(None))


# ------------------------------------------------------------------ the training step's batch


@pytest.mark.parametrize("batch_size, images, iterations, expected", [
    (4, 8, None, 2),  # every batch holds 4: two images stand for them
    (1, 8, None, 1),
    (3, 8, None, 2),  # the last batch holds 2
    (7, 8, None, 1),  # the last batch holds 1
    (4, 9, None, 1),
    (4, 9, 2, 2),  # two steps never reach the epoch's last batch
    (4, 9, 3, 1),
    (16, 8, None, 2),  # larger than the set: refused elsewhere
])
def test_the_preflight_trains_on_as_few_images_as_a_step_of_the_variant_gets(batch_size, images, iterations, expected):
    assert step_images({"batch_size": batch_size, "iterations": iterations}, images) == expected


def test_batch_size_one_with_batch_norm_is_refused_naming_the_variant_key_and_fix(capsys, suite):
    code, text = validate(capsys, suite, "train.batch_size=1", plugins=())
    assert code == 2, text
    assert "variant 'upsampler=nearest': architecture 'unet'" in text
    assert "cannot train on a batch of one image (ValueError: Expected more than 1 value per channel when training" in text
    assert "train.batch_size = 1: batch norm needs 2 or more values per channel; set train.batch_size = 2 or more, " \
           "or use a norm layer that trains on one image (e.g. GroupNorm)" in text


def test_a_last_batch_of_one_image_with_batch_norm_is_refused_with_a_batch_size_that_fits(capsys, suite):
    code, text = validate(capsys, suite, "train.batch_size=7", plugins=())  # 8 training images: 7 + 1
    assert code == 2, text
    assert "train.batch_size = 7 ends each epoch of its 8 training images with a batch of one" in text
    assert "e.g. 6" in text and 8 % 6 != 1


def test_a_model_without_batch_norm_may_train_on_one_image(capsys, plugin, tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(tiny(drop=("encoder", "decoder_channels")))
    code, text = validate(capsys, path, "model.architecture=plain", "train.batch_size=1")
    assert code == 0, text


def test_batch_size_one_with_batch_norm_stops_run_before_training(capsys, suite, tmp_path):
    code = main(["run", str(suite), "--set", "train.batch_size=1", "-o", str(tmp_path / "out"), "-q"])
    assert code == 2, capsys.readouterr().err
    assert not (tmp_path / "out" / "tiny" / "runs").exists()


# ------------------------------------------------------------------ a plugin's source in the cache key


DATASET = '''
import torch

from segbench import cached_dataset, hookimpl
from segbench.data import SegmentationData, TensorPairs

from .labels import LABEL


def split(count):
    generator = torch.Generator().manual_seed(count)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, 3, (count, 32, 32), generator=generator).to(torch.uint8)
    masks[:, 5, 5] = LABEL
    return TensorPairs(images, masks)


def lab_data(cache_dir):
    """The same cache key whatever LABEL is: only the code says it."""
    return cached_dataset(cache_dir, {"dataset": "lab_data", "reader_version": 1},
                          lambda: SegmentationData(["background", "a", "b"], split(8), split(4)))


@hookimpl
def segbench_datasets(register):
    register.add_dataset("lab_data", lab_data)
'''


def write_package(folder, label: int):
    """The package ``labdata``: its hooks in ``__init__``, the label it plants in ``labels``."""
    package = folder / "labdata"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(DATASET)
    (package / "labels.py").write_text(f"LABEL = {label}\n")


def install(site, version: str, editable: bool):
    """``labdata`` as pip leaves it (``pip install -e`` when ``editable``)."""
    info = site / "segbench_lab-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: segbench-lab\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[segbench]\nlab = labdata\n")
    if editable:
        (info / "direct_url.json").write_text(json.dumps({"url": site.as_uri(), "dir_info": {"editable": True}}))


def validate_afresh(capsys, suite, *args):
    """``segbench validate`` as a new process would: the plugin's modules imported again."""
    for name in [name for name in sys.modules if name == "labdata" or name.startswith("labdata.")]:
        del sys.modules[name]
    return validate(capsys, suite, 'dataset={ name = "lab_data" }', plugins=args)


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [name for name in sys.modules if name == "labdata" or name.startswith("labdata.")]:
        del sys.modules[name]


def test_editing_an_editable_dataset_plugin_rebuilds_its_samples(capsys, suite, site):
    write_package(site, label=1)
    install(site, "1.0", editable=True)
    code, text = validate_afresh(capsys, suite)
    assert code == 0, text
    write_package(site, label=7)  # an edit in another module of the package, the version unchanged
    code, text = validate_afresh(capsys, suite)
    assert code == 2, text
    assert "dataset 'lab_data' (segbench-lab 1.0): its train and val masks hold label 7" in text


def test_an_installed_release_is_rebuilt_for_a_new_version_not_for_an_edit(capsys, suite, site):
    """The documented rule for installed distributions: bump the version when the samples change."""
    write_package(site, label=1)
    install(site, "1.0", editable=False)
    assert validate_afresh(capsys, suite)[0] == 0
    write_package(site, label=7)
    code, text = validate_afresh(capsys, suite)
    assert code == 0, text  # the cache of release 1.0 still serves its samples
    install(site, "1.1", editable=False)
    code, text = validate_afresh(capsys, suite)
    assert code == 2 and "(segbench-lab 1.1): its train and val masks hold label 7" in text, text


def test_editing_a_local_dataset_plugin_file_rebuilds_its_samples(capsys, suite, tmp_path):
    plugin = tmp_path / "lab_plugin.py"
    source = DATASET.replace("from .labels import LABEL", "LABEL = 1")
    plugin.write_text(source)
    code, text = validate(capsys, suite, 'dataset={ name = "lab_data" }', plugins=(str(plugin),))
    assert code == 0, text
    plugin.write_text(source.replace("LABEL = 1", "LABEL = 7"))
    code, text = validate(capsys, suite, 'dataset={ name = "lab_data" }', plugins=(str(plugin),))
    assert code == 2, text
    assert f"dataset 'lab_data' ({plugin} local): its train and val masks hold label 7" in text


def test_data_stats_see_an_edited_plugin(capsys, suite, site):
    """``segbench data stats`` reads the samples through the same key."""
    write_package(site, label=1)
    install(site, "1.0", editable=True)
    counts = []
    for label in (1, 2):
        write_package(site, label=label)
        for name in [name for name in sys.modules if name.startswith("labdata")]:
            del sys.modules[name]
        assert main(["data", "stats", str(suite), "--set", 'dataset={ name = "lab_data" }', "--json"]) == 0
        counts.append(capsys.readouterr().out)
    assert counts[0] != counts[1]


def test_a_dataset_factory_called_directly_keeps_its_own_key(tmp_path, site):
    """Outside segbench (a plugin's own tests) the key is the factory's, as before."""
    from segbench.data import cache

    write_package(site, label=1)
    install(site, "1.0", editable=True)
    import labdata

    labdata.lab_data(tmp_path)
    assert [path.name for path in (tmp_path / "samples").iterdir() if path.is_dir()] == [
        cache.entry_path(tmp_path, {"dataset": "lab_data", "reader_version": 1}).name]
