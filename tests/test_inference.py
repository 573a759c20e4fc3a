"""`[eval] inference`: evaluation at each image's native resolution, as mmsegmentation's
`whole` and `slide` test modes (issue 14 item 6). Cross-checked against loops transcribed
from mmcv's `rescale_size` and mmseg's `slide_inference`, and against models whose output
is known analytically (a 1x1 convolution commutes with bilinear resizing and sees each
pixel alone, so its slide and whole logits are the same)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segbench.cli import main
from segbench.data import SegmentationData
from segbench.data.samples import ImageList, TensorPairs
from segbench.engine.inference import native_logits, rescaled_size, slide_logits, windows
from segbench.engine.run import evaluate, predict_labels, sample_predictions
from segbench.errors import SuiteError
from segbench.plugins import load_catalogue
from segbench.suite import config_id, load_suite

SLIDE = {"mode": "slide", "scale": None, "crop": [8, 8], "stride": [5, 5]}


# ----------------------------------------------------------------------------- references


def mmcv_rescale_size(old_size, scale):
    """mmcv.image.geometric.rescale_size for a tuple scale, (w, h) in and out."""
    w, h = old_size
    max_long_edge, max_short_edge = max(scale), min(scale)
    scale_factor = min(max_long_edge / max(h, w), max_short_edge / min(h, w))
    return int(w * float(scale_factor) + 0.5), int(h * float(scale_factor) + 0.5)


def mmseg_slide_inference(model, inputs, crop_size, stride, out_channels):
    """EncoderDecoder.slide_inference, one window per forward, as mmseg writes it."""
    h_stride, w_stride = stride
    h_crop, w_crop = crop_size
    batch_size, _, h_img, w_img = inputs.size()
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = inputs.new_zeros((batch_size, out_channels, h_img, w_img))
    count_mat = inputs.new_zeros((batch_size, 1, h_img, w_img))
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1 = h_idx * h_stride
            x1 = w_idx * w_stride
            y2 = min(y1 + h_crop, h_img)
            x2 = min(x1 + w_crop, w_img)
            y1 = max(y2 - h_crop, 0)
            x1 = max(x2 - w_crop, 0)
            crop_seg_logit = model(inputs[:, :, y1:y2, x1:x2])
            preds += F.pad(crop_seg_logit, (int(x1), int(preds.shape[3] - x2), int(y1), int(preds.shape[2] - y2)))
            count_mat[:, :, y1:y2, x1:x2] += 1
    assert (count_mat == 0).sum() == 0
    return preds / count_mat


def conv(kernel_size, channels=3, seed=0):
    torch.manual_seed(seed)
    return nn.Conv2d(3, channels, kernel_size, padding=kernel_size // 2).eval()


class ShapeRecorder(nn.Module):
    """A 1x1 convolution that remembers the input sizes it saw."""

    def __init__(self, channels=3):
        super().__init__()
        self.conv = conv(1, channels)
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        return self.conv(x)


class MaskRecorder:
    """A metric that keeps what it is given."""

    def __init__(self):
        self.updates = []

    def update(self, pred, target):
        self.updates.append((pred.clone(), target.clone()))


def images(n, height, width, seed=0):
    return torch.randn(n, 3, height, width, generator=torch.Generator().manual_seed(seed))


def image_list_data(sizes, classes=3, train=TensorPairs(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.zeros(2, 16, 16, dtype=torch.uint8))):
    generator = torch.Generator().manual_seed(1)
    pictures = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator) for h, w in sizes]
    masks = [torch.randint(0, classes, (h, w), dtype=torch.uint8, generator=generator) for h, w in sizes]
    for mask in masks:
        mask[0, 0] = 255  # one ignored pixel each
    return SegmentationData([str(i) for i in range(classes)], train, ImageList(pictures, masks))


# ----------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize("height, width", [(375, 500), (500, 375), (512, 512), (100, 3000), (1024, 2048), (7, 5)])
def test_rescaled_size_is_mmcvs_rescale_size(height, width):
    w, h = mmcv_rescale_size((width, height), (2048, 512))
    assert rescaled_size(height, width, [2048, 512]) == (h, w)
    assert rescaled_size(height, width, [512, 2048]) == (h, w)  # the order of scale does not matter


@pytest.mark.parametrize("height, width, crop, stride", [
    (20, 30, (8, 8), (5, 5)), (8, 8, (8, 8), (8, 8)), (5, 30, (8, 8), (3, 6)), (17, 4, (8, 12), (8, 2)), (3, 3, (8, 8), (1, 1)),
])
def test_windows_cover_every_pixel_and_stay_inside(height, width, crop, stride):
    counts = torch.zeros(height, width)
    for y1, y2, x1, x2 in windows(height, width, crop, stride):
        assert 0 <= y1 < y2 <= height and 0 <= x1 < x2 <= width
        assert (y2 - y1, x2 - x1) == (min(crop[0], height), min(crop[1], width))  # one size: small sides taken whole
        counts[y1:y2, x1:x2] += 1
    assert counts.min() >= 1


@pytest.mark.parametrize("batch_size", [1, 3, 64])
@pytest.mark.parametrize("height, width", [(20, 30), (6, 30), (8, 8)])
def test_slide_matches_mmsegs_loop(batch_size, height, width):
    model, x = conv(3), images(2, height, width)  # a 3x3 convolution sees window borders
    with torch.no_grad():
        expected = mmseg_slide_inference(model, x, (8, 8), (5, 5), 3)
        got = slide_logits(model, x, (8, 8), (5, 5), batch_size=batch_size)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_a_1x1_convolution_gives_the_same_slide_and_whole_logits():
    model, x = conv(1), images(2, 23, 37)
    for scale in (None, [48, 30]):
        with torch.no_grad():
            whole = native_logits(model, x, {"mode": "whole", "scale": scale})
            slide = native_logits(model, x, {**SLIDE, "scale": scale})
        assert whole.shape == slide.shape == (2, 3, 23, 37)
        torch.testing.assert_close(slide, whole, rtol=1e-5, atol=1e-5)


def test_whole_is_the_model_on_the_rescaled_image_resized_back():
    model, x = conv(1), images(1, 30, 60)
    with torch.no_grad():
        got = native_logits(model, x, {"mode": "whole", "scale": [40, 20]})
        # a 1x1 convolution commutes with bilinear resizing: predict, then down and back up
        down = F.interpolate(model(x), size=(20, 40), mode="bilinear", align_corners=False)
        expected = F.interpolate(down, size=(30, 60), mode="bilinear", align_corners=False)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_non_square_image_keeps_its_aspect_and_comes_back_at_native_size():
    model = ShapeRecorder()
    with torch.no_grad():
        logits = native_logits(model, images(1, 30, 60), {"mode": "whole", "scale": [2048, 512]})
    assert model.seen == [(512, 1024)]
    assert logits.shape[-2:] == (30, 60)
    model.seen.clear()
    with torch.no_grad():
        logits = native_logits(model, images(1, 60, 30), {"mode": "slide", "scale": [40, 20], "crop": [16, 16], "stride": [8, 8]})
    assert set(model.seen) == {(16, 16)} and logits.shape[-2:] == (60, 30)  # rescaled to 40x20, windows of 16


def test_stored_mode_is_the_model_as_it_was():
    model, x = conv(3), images(3, 16, 16)
    with torch.no_grad():
        assert torch.equal(native_logits(model, x, None), model(x).float())
        assert torch.equal(native_logits(model, x, {"mode": "stored"}), model(x).float())


# ----------------------------------------------------------------------------- evaluate


def old_evaluate(model, data, loss_fn, metrics, batch_size, device):
    """engine.run.evaluate before eval.inference existed, transcribed."""
    model.eval()
    total = torch.zeros((), device=device)
    for indices in torch.arange(len(data.val)).split(batch_size):
        batch, masks = data.val.batch(indices, device)
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            logits = model(batch)
        logits = logits.float()
        total += loss_fn(logits, masks) * len(indices)
        for metric in metrics.values():
            metric.update(predict_labels(logits, data.mode), masks)
    return float(total) / len(data.val)


def test_the_default_evaluates_exactly_as_before():
    generator = torch.Generator().manual_seed(0)
    split = TensorPairs(torch.randint(0, 256, (7, 3, 16, 16), dtype=torch.uint8, generator=generator),
                        torch.randint(0, 3, (7, 16, 16), dtype=torch.uint8, generator=generator))
    data = SegmentationData(["a", "b", "c"], split, split)
    model, loss_fn, device = conv(3), nn.CrossEntropyLoss(ignore_index=255), torch.device("cpu")
    before = {"m": MaskRecorder()}
    expected = old_evaluate(model, data, loss_fn, before, 3, device)
    for settings in (None, {"mode": "stored"}):
        now = {"m": MaskRecorder()}
        assert evaluate(model, data, loss_fn, now, 3, device, None, settings) == expected
        assert all(torch.equal(a, b) and torch.equal(c, d) for (a, c), (b, d) in zip(now["m"].updates, before["m"].updates))


@pytest.mark.parametrize("settings", [{"mode": "stored"}, {"mode": "whole", "scale": [24, 12]}, {**SLIDE, "scale": [24, 12]}])
def test_images_of_different_sizes_are_scored_against_their_masks_as_stored(settings):
    data = image_list_data([(12, 20), (12, 20), (20, 12), (12, 20), (9, 9)])
    model, loss_fn, device = conv(1), nn.CrossEntropyLoss(ignore_index=255), torch.device("cpu")
    metrics = {"m": MaskRecorder()}
    loss = evaluate(model, data, loss_fn, metrics, 4, device, None, settings)
    seen = [(pred, target) for preds, targets in metrics["m"].updates for pred, target in zip(preds, targets)]
    assert len(seen) == 5  # in the split's order, never resized
    expected_loss = 0.0
    for index, (pred, target) in enumerate(seen):
        picture, mask = data.val.raw(index)
        assert torch.equal(target, mask.long()) and pred.shape == mask.shape
        with torch.no_grad():
            logits = native_logits(model, data.val.batch(torch.tensor([index]))[0], settings)
        assert torch.equal(pred, logits.argmax(1)[0])
        expected_loss += float(loss_fn(logits, mask.long()[None]))
    assert loss == pytest.approx(expected_loss / 5, rel=1e-5)  # computed on the native-size logits


def test_binary_mode_slides_one_channel():
    generator = torch.Generator().manual_seed(0)
    split = TensorPairs(torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8, generator=generator),
                        torch.randint(0, 2, (2, 20, 20), dtype=torch.uint8, generator=generator))
    data = SegmentationData(["background", "thing"], split, split, mode="binary")
    model = conv(1, channels=1)
    metrics = {"m": MaskRecorder()}
    loss = evaluate(model, data, lambda logits, masks: F.binary_cross_entropy_with_logits(logits[:, 0], masks.float()),
                    metrics, 2, torch.device("cpu"), None, SLIDE)
    assert loss == loss and metrics["m"].updates[0][0].shape == (2, 20, 20)
    with torch.no_grad():
        logits = native_logits(model, split.batch(torch.arange(2))[0], SLIDE)
    assert torch.equal(metrics["m"].updates[0][0], (logits[:, 0] > 0).long())


def test_sample_predictions_of_an_image_list_take_the_first_size_at_native_size():
    from segbench.engine.precision import Precision

    data = image_list_data([(12, 20), (12, 20), (20, 12), (12, 20)])
    precision = Precision.for_run("off", torch.device("cpu"))
    samples = sample_predictions(conv(1), data, torch.device("cpu"), precision, inference={"mode": "whole", "scale": [40, 30]})
    assert samples["indices"] == [0, 1]


# ----------------------------------------------------------------------------- the suite key


def load(write_suite, text="", **kwargs):
    return load_suite(write_suite(text or '[dataset]\nimage_size = 32\n'), load_catalogue, **kwargs)


def test_the_default_leaves_variant_ids_unchanged(write_suite):
    for variant in load_suite("suites/smoke.toml", load_catalogue).variants:  # hashed as before the key existed
        before = {**variant.config, "eval": {k: v for k, v in variant.config["eval"].items() if k != "inference"}}
        assert variant.id == config_id(before, variant.versions)
    implicit = load(write_suite)
    explicit = load(write_suite, overrides={"eval.inference": {"mode": "stored"}})
    whole = load(write_suite, overrides={"eval.inference": {"mode": "whole", "scale": [64, 32]}})
    assert implicit.variants[0].id == explicit.variants[0].id != whole.variants[0].id
    assert implicit.variants[0].config["eval"]["inference"] == {"mode": "stored"}


def test_settings_are_resolved_to_canonical_sizes(write_suite):
    slide = load(write_suite, overrides={"eval.inference": {"mode": "slide", "scale": [512, 2048], "crop": 512, "stride": [341, 300]}})
    assert slide.variants[0].config["eval"]["inference"] == {"mode": "slide", "scale": [2048, 512], "crop": [512, 512], "stride": [341, 300]}
    whole = load(write_suite, overrides={"eval.inference.mode": "whole"})
    assert whole.variants[0].config["eval"]["inference"] == {"mode": "whole", "scale": None}


@pytest.mark.parametrize("value, where, expected", [
    ({"mode": "tile"}, "eval.inference.mode", "expected mode = 'stored', 'whole' or 'slide'"),
    ("whole", "eval.inference", "expected mode = 'stored', 'whole' or 'slide'"),
    ({"mode": ["whole"]}, "eval.inference.mode", "expected mode = 'stored', 'whole' or 'slide'"),
    ({"mode": "whole", "crop": 3}, "eval.inference.crop", "mode 'whole' has no crop (only 'slide' uses it; to compare modes, ablate whole tables"),
    ({"mode": "whole", "scael": [2, 1]}, "eval.inference.scael", "did you mean eval.inference.scale?"),
    ({"mode": "whole", "scale": [0, 512]}, "eval.inference.scale", "expected [LONG, SHORT]"),
    ({"mode": "whole", "scale": 512}, "eval.inference.scale", "expected [LONG, SHORT]"),
    ({"mode": "slide", "crop": -4, "stride": 2}, "eval.inference.crop", "expected an integer or [H, W] of integers in 1..8192"),
    ({"mode": "slide", "crop": 8, "stride": True}, "eval.inference.stride", "expected an integer or [H, W]"),
    ({"mode": "slide", "crop": 8}, "eval.inference.stride", "mode 'slide' needs stride"),
    ({"mode": "slide", "crop": 8, "stride": [4, 9]}, "eval.inference.stride", "expected at most crop = [8, 8] on each side"),
    ({"mode": "slide", "scale": [64, 32], "crop": 128, "stride": 64}, "eval.inference.crop", "expected at most the scale's long side 64"),
])
def test_bad_settings_are_named_with_what_is_valid(write_suite, value, where, expected):
    with pytest.raises(SuiteError) as caught:
        load(write_suite, overrides={"eval.inference": value})
    assert any(line.startswith(f"{where}: ") and expected in line for line in caught.value.problems), caught.value.problems


def test_a_bad_setting_in_the_file_exits_2(write_suite, capsys):
    suite = write_suite('[eval]\ninference = { mode = "slide", crop = 0, stride = 4 }\n')
    assert main(["validate", str(suite)]) == 2
    assert "eval.inference.crop: expected an integer or [H, W]" in capsys.readouterr().err


# ----------------------------------------------------------------------------- end to end

NATIVE_VAL_PLUGIN = '''
import torch

from segbench import hookimpl
from segbench.data import SegmentationData, TensorPairs
from segbench.data.samples import ImageList


def native_val(cache_dir):
    """Training images of one size; validation images at their native, different sizes."""
    generator = torch.Generator().manual_seed(0)
    train = TensorPairs(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=generator),
                        torch.randint(0, 2, (4, 32, 32), dtype=torch.uint8, generator=generator))
    sizes = [(24, 40), (40, 24), (24, 40)]
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator) for h, w in sizes]
    masks = [torch.randint(0, 2, (h, w), dtype=torch.uint8, generator=generator) for h, w in sizes]
    return SegmentationData(["background", "thing"], train, ImageList(images, masks))


@hookimpl
def segbench_datasets(register):
    register.add_dataset("native_val", native_val)
'''

NATIVE_VAL_SUITE = """
name = "native"
seeds = [0]
plugins = ["native_val.py"]

[dataset]
name = "native_val"

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [16, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 2

[eval]
metrics = ["miou"]
inference = { mode = "slide", scale = [48, 32], crop = 32, stride = 20 }
"""


def test_a_native_size_validation_set_is_accepted_and_scored_at_native_size(write_suite, tmp_path, capsys):
    from segbench.engine import run_one
    from segbench.runner import resolve_cache_dir
    from segbench.store import decode_arrays

    (tmp_path / "native_val.py").write_text(NATIVE_VAL_PLUGIN)
    path = write_suite(NATIVE_VAL_SUITE)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    suite = load_suite(path, load_catalogue)
    record = run_one(suite.variants[0], 0, suite.catalogue, resolve_cache_dir())
    assert record["curves"]["val_loss"][0] == record["curves"]["val_loss"][0]  # finite, on native logits
    assert len(record["per_image"]["miou"]) == 3
    assert record["samples"]["indices"] == [0]
    assert decode_arrays(record["samples"]["predictions"])["predictions"].shape == (1, 24, 40)


def test_training_images_of_several_sizes_are_still_refused(write_suite, tmp_path, capsys):
    # another dataset name: built datasets are kept per process by name and parameters
    plugin = NATIVE_VAL_PLUGIN.replace("native_val", "native_train").replace(
        "], train, ImageList(images, masks))", "], ImageList(images, masks), ImageList(images, masks))")
    (tmp_path / "native_val.py").write_text(plugin)
    assert main(["validate", str(write_suite(NATIVE_VAL_SUITE.replace("native_val\"\n", "native_train\"\n")))]) == 2
    error = capsys.readouterr().err
    assert "its train images keep 2 native sizes" in error and "image_size" in error
