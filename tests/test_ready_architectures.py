"""The ready architectures from segmentation_models_pytorch and torchvision: the shared
contract (every upsampler they claim, two input sizes), and that the claimed upsampler is
what they really use."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segbench.cli import main
from segbench.testing import ArchitectureContract, RecordingUpsamplerFactory, single_torch_thread


class ReadyContract(ArchitectureContract):
    input_sizes = (64, 70)  # 70: not a multiple of 32, padded and cropped back


class TestSmpUnet(ReadyContract):
    name = "smp_unet"


class TestSmpUnetPlusPlus(ReadyContract):
    name = "smp_unetplusplus"
    input_sizes = (64,)


class TestSmpManet(ReadyContract):
    name = "smp_manet"
    input_sizes = (64,)


class TestSmpFpn(ReadyContract):
    name = "smp_fpn"


class TestSmpPan(ReadyContract):
    name = "smp_pan"
    input_sizes = (128,)


class TestSmpLinknet(ReadyContract):
    name = "smp_linknet"


class TestSmpPspnet(ReadyContract):
    name = "smp_pspnet"


class TestSmpDeepLabV3(ReadyContract):
    name = "smp_deeplabv3"
    input_sizes = (64,)


class TestSmpDeepLabV3Plus(ReadyContract):
    name = "smp_deeplabv3plus"


class TestSmpUpernet(ReadyContract):
    name = "smp_upernet"
    input_sizes = (64,)


class TestSmpSegformer(ReadyContract):
    name = "smp_segformer"
    input_sizes = (64,)


class TestTorchvisionLraspp(ReadyContract):
    name = "tv_lraspp_mobilenet_v3_large"


class TestTorchvisionFcn(ReadyContract):
    name = "tv_fcn_resnet50"
    input_sizes = (64,)
    batch_size = 2


class TestTorchvisionDeepLabV3(ReadyContract):
    name = "tv_deeplabv3_resnet50"
    input_sizes = (64,)


@pytest.fixture(autouse=True)
def _single_thread():
    with single_torch_thread():
        yield


def _decoder_interpolations(model, images):
    """Every F.interpolate mode the model's forward uses."""
    modes = []
    original = F.interpolate

    def recording(*args, **kwargs):
        modes.append(kwargs.get("mode", "nearest"))
        return original(*args, **kwargs)

    F.interpolate = recording
    try:
        model(images)
    finally:
        F.interpolate = original
    return modes


@pytest.mark.parametrize("upsampler", ["nearest", "bicubic", "bilinear"])
def test_smp_unet_decodes_with_the_suites_interpolation_mode(upsampler):
    contract = TestSmpUnet()
    if upsampler not in contract.fitting_upsamplers():
        pytest.skip(f"{upsampler} is not installed")
    model, _ = contract.build(upsampler)
    modes = _decoder_interpolations(model.eval(), torch.randn(1, 3, 64, 64))
    assert modes and set(modes) == {upsampler}


def test_smp_fpn_top_down_and_final_upsampling_follow_the_mode():
    model, _ = TestSmpFpn().build("nearest")
    assert model.model.segmentation_head[1].mode == "nearest"
    assert "nearest" in _decoder_interpolations(model.eval(), torch.randn(1, 3, 64, 64))


def test_smp_linknet_uses_the_suites_upsampler_in_every_decoder_block():
    contract = TestSmpLinknet()
    model, make_upsampler = contract.build("transposed")
    assert len(make_upsampler.calls) == len(model.model.decoder.blocks) == 5
    built = {id(m) for m in make_upsampler.built}
    assert all(id(block.block[1][0]) in built for block in model.model.decoder.blocks)


def test_an_interpolation_only_architecture_refuses_a_learned_upsampler():
    contract = TestSmpUnet()
    catalogue = contract.catalogue()
    learned = RecordingUpsamplerFactory(catalogue.get("upsampler", "transposed"))
    with pytest.raises(ValueError, match="interpolation only"):
        catalogue.get("architecture", "smp_unet").build(3, learned)


def test_offline_pretrained_backbone_fails_with_how_to_provide_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    from segbench_plugins.architectures.base import EncoderWeightsError

    with pytest.raises(EncoderWeightsError, match=r"mobilenet_v3_large-8738ca79\.pth.*checkpoints"):
        TestTorchvisionLraspp().build(backbone_weights="IMAGENET1K_V1")


def test_unknown_backbone_weights_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        TestTorchvisionLraspp().build(backbone_weights="imagenet")


def test_validate_rejects_an_incompatible_pair_naming_both_and_what_fits(write_suite, capsys):
    suite = write_suite('[model]\narchitecture = "smp_pspnet"\nupsampler = "transposed"\n')
    assert main(["validate", str(suite)]) == 2
    error = capsys.readouterr().err
    assert "'transposed'" in error and "'smp_pspnet'" in error and "upsamplers that fit it: bilinear" in error


def test_list_matrix_marks_exactly_the_declared_pairs(capsys):
    assert main(["list", "--matrix"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:] if line and not line.startswith("✓")}
    fits = dict(zip(header[1:], rows["smp_pspnet"]))
    assert fits["bilinear"] == "✓" and fits["transposed"] == "·" and fits["nearest"] == "·"
    unet = dict(zip(header[1:], rows["unet"]))
    assert unet.pop("max_unpool") == "·", "unet records no pool indices"
    assert all(mark == "✓" for mark in unet.values())
    assert all(mark == "✓" for mark in rows["segnet"])
