"""The standard architectures: the shared contract plus U-Net specifics."""

import pytest
import torch
from contracts.architecture import ArchitectureContract, single_torch_thread
from safetensors.torch import save_file

import segmentation_models_pytorch.encoders as smp_encoders
from segbench.errors import SegbenchError


LIGHT = [32, 16, 16, 8, 8]  # narrow decoder widths keep CPU tests fast


class TestUNet(ArchitectureContract):
    name = "unet"
    params = {"decoder_channels": LIGHT}


UNET = TestUNet()


@pytest.fixture(autouse=True)
def _single_torch_thread():
    with single_torch_thread():
        yield


def test_unet_default_configuration_maps_images_to_logits():
    model, _ = UNET.build(decoder_channels=(128, 64, 48, 32, 16))
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 96)).shape == (1, 3, 96, 96)


def test_unet_calls_make_upsampler_channel_preserving_at_every_resolution_increase():
    _, make_upsampler = UNET.build(decoder_channels=[40, 32, 24, 16, 8])
    # The deepest feature is first projected to 40 channels; block i upsamples block i-1's output.
    assert make_upsampler.calls == [(40, 40, 2), (40, 40, 2), (32, 32, 2), (24, 24, 2), (16, 16, 2)]


def test_unet_depth_follows_the_number_of_decoder_widths():
    model, make_upsampler = UNET.build(decoder_channels=[32, 16, 8])
    assert len(make_upsampler.calls) == 3
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)


def test_unet_output_matches_inputs_not_divisible_by_32():
    model, _ = UNET.build(upsampler="transposed")
    model.eval()
    with torch.no_grad():
        for size in [(70, 70), (33, 50)]:
            assert model(torch.randn(1, 3, *size)).shape == (1, 3, *size)


@pytest.mark.parametrize("skip_connections", [True, False])
def test_unet_without_skips_ignores_every_encoder_feature_but_the_deepest(skip_connections):
    model, _ = UNET.build(skip_connections=skip_connections)
    model.eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain = model(images)
        handle = model.encoder.register_forward_hook(lambda _m, _i, features: _zero_all_but_the_deepest(features))
        blinded = model(images)
        handle.remove()
    assert torch.equal(plain, blinded) is (not skip_connections)


def _zero_all_but_the_deepest(features):
    return [torch.zeros_like(f) for f in features[:-1]] + [features[-1]]


def test_unet_skip_pathway_costs_exactly_the_skip_input_weights():
    default_widths = [128, 64, 48, 32, 16]
    with_skips, _ = UNET.build(skip_connections=True, decoder_channels=default_widths)
    without_skips, _ = UNET.build(skip_connections=False, decoder_channels=default_widths)
    # Only conv1 of each block widens: skip channels x out channels x 3 x 3 (no conv bias).
    skip_channels = [256, 128, 64, 64, 0]  # resnet18, deepest first; the last block has none
    extra = sum(s * c * 9 for s, c in zip(skip_channels, default_widths, strict=True))
    assert parameter_count(with_skips) - parameter_count(without_skips) == extra


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_unet_loads_encoder_weights_from_a_local_state_dict(tmp_path, suffix):
    source = smp_encoders.get_encoder("resnet18", depth=5, weights=None)
    path = tmp_path / f"encoder{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save(state, path)
    model, _ = unet_with_weights(str(path))
    for name, tensor in model.encoder.state_dict().items():
        torch.testing.assert_close(tensor, state[name])


def test_unet_takes_the_encoder_part_of_a_whole_model_checkpoint(tmp_path):
    trained, _ = UNET.build()
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": trained.state_dict()}, path)
    model, _ = unet_with_weights(str(path))
    torch.testing.assert_close(model.encoder.conv1.weight, trained.encoder.conv1.weight)


def test_unet_refuses_weights_that_do_not_fit_the_encoder(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(RuntimeError, match="do not fit encoder 'resnet18'"):
        unet_with_weights(str(path))


def test_unet_weights_error_is_a_segbench_error_so_the_cli_shows_the_message():
    with pytest.raises(SegbenchError, match="does not exist"):
        unet_with_weights("/nonexistent.pth")


def test_unet_explains_how_to_provide_weights_when_the_download_fails(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(smp_encoders, "hf_hub_download", offline)
    with pytest.raises(RuntimeError) as error:
        unet_with_weights("imagenet")
    message = str(error.value)
    assert "could not fetch encoder weights 'imagenet'" in message and "no network" in message
    assert "smp-hub/resnet18.imagenet" in message and ".safetensors" in message


def test_unet_names_valid_choices_for_an_unknown_encoder():
    with pytest.raises(ValueError, match="resnet34"):
        UNET.build(encoder="resnet_18")


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def unet_with_weights(path):
    return UNET.build(encoder_weights=path)
