"""The standard architectures: the shared contract for each, plus U-Net, FCN, FPN,
DeepLabV3+ and SegNet specifics."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import segmentation_models_pytorch.encoders as smp_encoders
from segbench.errors import SegbenchError
from segbench.testing import ArchitectureContract, RecordingUpsamplerFactory, single_torch_thread
from segbench_plugins.architectures.fcn import build_fcn
from segbench_plugins.architectures.segnet import build_segnet


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


# --- FCN, FPN, DeepLabV3+, SegNet: the contract with light params, plus specifics --------

K = 3  # the contract's out_channels


class TestFCN(ArchitectureContract):
    name = "fcn"
    params = {"variant": "8s"}

    def test_forward_and_backward_at_two_sizes(self, fitting_upsampler):
        try:
            super().test_forward_and_backward_at_two_sizes(fitting_upsampler)
        except ValueError as error:
            # FCN upsamples x8 to x32 in one step; "transposed" with its default kernel_size 4
            # refuses scales above 4 (FCN itself used kernel 2 * scale).
            if "kernel_size" not in str(error):
                raise
            pytest.xfail(str(error))


class TestFPN(ArchitectureContract):
    name = "fpn"
    params = {"pyramid_channels": 16, "segmentation_channels": 8}


class TestDeepLabV3Plus(ArchitectureContract):
    name = "deeplabv3plus"
    params = {"aspp_channels": 16}


class TestSegNet(ArchitectureContract):
    name = "segnet"


FCN, FPN, DEEPLAB, SEGNET = TestFCN(), TestFPN(), TestDeepLabV3Plus(), TestSegNet()


def logits_with_feature_replaced(model, level, images):
    """The model's logits when encoder feature ``level`` is replaced by noise."""
    generator = torch.Generator().manual_seed(1)

    def replace(_module, _inputs, features):
        features = list(features)
        features[level] = torch.randn(features[level].shape, generator=generator)
        return features

    handle = model.encoder.register_forward_hook(replace)
    try:
        return model(images)
    finally:
        handle.remove()


def encoder_features(model, images):
    """The encoder's feature maps for ``images`` (through a forward hook on a model call)."""
    captured = []
    handle = model.encoder.register_forward_hook(lambda _m, _i, features: captured.append(list(features)))
    try:
        model(images)
    finally:
        handle.remove()
    return captured[0]


@pytest.mark.parametrize(
    ("variant", "calls"),
    [
        ("32s", [(K, K, 32)]),
        ("16s", [(K, K, 2), (K, K, 16)]),
        ("8s", [(K, K, 2), (K, K, 2), (K, K, 8)]),
    ],
)
def test_fcn_variants_upsample_the_class_scores_in_the_documented_steps(variant, calls):
    _, make_upsampler = FCN.build(variant=variant)
    assert make_upsampler.calls == calls


@pytest.mark.parametrize(("variant", "fused_levels"), [("32s", set()), ("16s", {4}), ("8s", {3, 4})])
def test_fcn_reads_the_stride_16_and_8_features_only_where_the_variant_fuses_them(variant, fused_levels):
    model, _ = FCN.build(variant=variant)
    model.eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain = model(images)
        for level in (3, 4):  # encoder features at stride 8 and 16
            changed = not torch.equal(plain, logits_with_feature_replaced(model, level, images))
            assert changed is (level in fused_levels), f"{variant}: feature {level}"


def test_fcn_head_channels_adds_a_conv_block_before_the_deepest_score():
    plain, _ = FCN.build(head_channels=0)
    with_block, _ = FCN.build(head_channels=8)
    assert isinstance(plain.decoder.block, torch.nn.Identity)
    assert with_block.decoder.score.in_channels == 8
    assert with_block(torch.randn(2, 3, 70, 70)).shape == (2, K, 70, 70)


def test_fcn_8s_takes_a_transposed_upsampler_with_a_kernel_as_large_as_its_x8_step():
    transposed = FCN.catalogue().get("upsampler", "transposed")
    make_upsampler = RecordingUpsamplerFactory(transposed, {"kernel_size": 16})  # FCN used 2 * scale
    model = build_fcn(K, make_upsampler, variant="8s")
    logits = model(torch.randn(2, 3, 70, 70))
    assert logits.shape == (2, K, 70, 70)
    logits.mean().backward()
    assert all(up.weight.grad is not None for up in make_upsampler.built)


FCN_SCALES = {"32s": 32, "16s": 16, "8s": 8}
FCN_FUSIONS = {"32s": 0, "16s": 1, "8s": 2}


def paper_fcn(variant, **params):
    """FCN as the paper trains it: learned x2 deconvolutions without bias, initialised bilinear."""
    transposed = FCN.catalogue().get("upsampler", "transposed")
    make_upsampler = RecordingUpsamplerFactory(transposed, {"bilinear_init": True, "bias": False})
    torch.manual_seed(0)
    return build_fcn(K, make_upsampler, variant=variant, final_upsampling="fixed_bilinear", **params), make_upsampler


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_fcn_fixed_bilinear_final_upsampling_is_a_frozen_bilinear_kernel_without_bias(variant):
    model, make_upsampler = FCN.build(variant=variant, final_upsampling="fixed_bilinear")
    scale = FCN_SCALES[variant]
    assert make_upsampler.calls == [(K, K, 2)] * FCN_FUSIONS[variant]  # the suite's upsampler: the fusions only
    final = model.upsample
    assert final.bias is None and not any(p.requires_grad for p in final.parameters())
    # Caffe's bilinear filler (FCN's surgery.interp): f = ceil(k / 2), c = (2f - 1 - f % 2) / (2f), w(x) = 1 - |x / f - c|
    f = final.kernel_size[0] // 2
    taps = torch.arange(2 * f, dtype=torch.float64)
    row = 1 - (taps / f - (2 * f - 1 - f % 2) / (2 * f)).abs()
    kernel = torch.outer(row, row).float()
    for i in range(K):
        for o in range(K):
            torch.testing.assert_close(final.weight[i, o], kernel if i == o else torch.zeros_like(kernel))
    # Output pixel o samples input coordinate (o + 0.5) / s - 0.5 (half-pixel centres); where
    # that lies in [0, H - 1], s/2 <= o <= s*H - s/2 - 1, both neighbours exist and it is
    # exactly bilinear interpolation (outside, the transposed conv sees zeros, F.interpolate clamps).
    x = torch.randn(2, K, 4, 5)
    inner = (..., slice(scale // 2, 4 * scale - scale // 2), slice(scale // 2, 5 * scale - scale // 2))
    expected = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(final(x)[inner], expected[inner])


def test_fcn_fixed_final_upsampling_is_left_alone_by_a_training_step():
    from segbench.engine.build import build_optimizer

    model, make_upsampler = paper_fcn("16s")
    optimizer = build_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-2}, model)
    frozen, learned = model.upsample.weight.detach().clone(), make_upsampler.built[0].weight.detach().clone()
    images, masks = torch.randn(2, 3, 64, 64), torch.randint(0, K, (2, 64, 64))
    F.cross_entropy(model(images), masks).backward()
    optimizer.step()
    assert model.upsample.weight.grad is None and torch.equal(model.upsample.weight, frozen)
    assert not torch.equal(make_upsampler.built[0].weight, learned)  # the fusion's deconvolution is learned


@pytest.mark.parametrize("variant", ["32s", "8s"])
def test_fcn_zero_score_init_gives_all_zero_logits_that_still_train(variant):
    model, _ = paper_fcn(variant, score_init="zeros", head_channels=8)
    scores = [model.decoder.score, *model.decoder.skip_scores]
    assert len(scores) == 1 + FCN_FUSIONS[variant]
    assert all(torch.count_nonzero(layer.weight) == 0 and torch.count_nonzero(layer.bias) == 0 for layer in scores)
    logits = model(torch.randn(2, 3, 64, 64))
    assert torch.equal(logits, torch.zeros_like(logits))
    F.cross_entropy(logits, torch.randint(0, K, (2, 64, 64))).backward()
    assert all(layer.weight.grad.abs().sum() > 0 for layer in scores)
    default, _ = paper_fcn(variant, head_channels=8)
    assert all(layer.weight.abs().sum() > 0 for layer in [default.decoder.score, *default.decoder.skip_scores])


def test_a_bad_fcn_setting_in_a_suite_is_refused_at_load_naming_the_valid_values(write_suite):
    from segbench.errors import SuiteError
    from segbench.plugins import load_catalogue
    from segbench.suite import load_suite

    path = write_suite('[model]\narchitecture = "fcn"\nfinal_upsampling = "bilinear"\nscore_init = "zero"\n')
    with pytest.raises(SuiteError) as raised:
        load_suite(path, load_catalogue)
    problems = str(raised.value)
    assert ("model.final_upsampling: architecture 'fcn' parameter 'final_upsampling' expects one of 'suite', 'fixed_bilinear', "
            "got 'bilinear'") in problems
    assert "model.score_init: architecture 'fcn' parameter 'score_init' expects one of 'default', 'zeros', got 'zero'" in problems


@pytest.mark.parametrize(
    ("contract", "params", "message"),
    [
        (FCN, {"variant": "4s"}, r"fcn: variant must be one of '32s', '16s', '8s', got '4s'"),
        (FCN, {"final_upsampling": "bilinear"}, r"fcn: final_upsampling must be one of 'suite', 'fixed_bilinear', got 'bilinear'"),
        (FCN, {"score_init": "zero"}, r"fcn: score_init must be one of 'default', 'zeros', got 'zero'"),
        (FCN, {"head_channels": -1}, r"fcn: head_channels must be an integer >= 0"),
        (FPN, {"pyramid_channels": 0}, r"fpn: pyramid_channels must be a positive integer"),
        (FPN, {"segmentation_channels": 2.5}, r"fpn: segmentation_channels must be a positive integer"),
        (DEEPLAB, {"output_stride": 32}, r"deeplabv3plus: output_stride must be one of 8, 16, got 32"),
        (DEEPLAB, {"atrous_rates": [6, 0, 18]}, r"deeplabv3plus: atrous_rates must be a non-empty list of positive"),
        (DEEPLAB, {"atrous_rates": []}, r"deeplabv3plus: atrous_rates"),
        (DEEPLAB, {"aspp_channels": 0}, r"deeplabv3plus: aspp_channels must be a positive integer"),
        (SEGNET, {"encoder": "mit_b0"}, r"segnet: encoder 'mit_b0' has no feature at stride 2"),
    ],
)
def test_invalid_parameters_name_the_architecture_the_parameter_and_the_valid_values(contract, params, message):
    with pytest.raises(ValueError, match=message):
        contract.build(**params)


def test_fpn_upsamples_top_down_then_each_level_to_stride_4_then_the_scores():
    _, make_upsampler = FPN.build(pyramid_channels=16, segmentation_channels=8)
    top_down = [(16, 16, 2)] * 3
    to_stride_4 = [(8, 8, 2)] * (3 + 2 + 1)  # from strides 32, 16 and 8
    assert make_upsampler.calls == top_down + to_stride_4 + [(K, K, 4)]


def test_fpn_output_matches_inputs_not_divisible_by_32():
    model, _ = FPN.build(upsampler="transposed")
    model.eval()
    with torch.no_grad():
        for size in [(70, 70), (33, 50)]:
            assert model(torch.randn(1, 3, *size)).shape == (1, K, *size)


@pytest.mark.parametrize(("output_stride", "deepest_size"), [(16, 4), (8, 8)])
def test_deeplabv3plus_output_stride_sets_the_deepest_resolution_and_the_upsampling(output_stride, deepest_size):
    model, make_upsampler = DEEPLAB.build(output_stride=output_stride)
    model.eval()
    with torch.no_grad():
        features = encoder_features(model, torch.randn(1, 3, 64, 64))
    assert features[-1].shape[-2:] == (deepest_size, deepest_size)
    assert make_upsampler.calls == [(16, 16, output_stride // 4), (K, K, 4)]


def test_deeplabv3plus_atrous_rates_are_the_aspp_dilations():
    model, _ = DEEPLAB.build(atrous_rates=[2, 3, 5, 7])
    convs_3x3 = [m for m in model.decoder.aspp.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [(conv.dilation, conv.padding) for conv in convs_3x3] == [((r, r), (r, r)) for r in (2, 3, 5, 7)]


def test_deeplabv3plus_trains_on_a_single_image_despite_the_1x1_pooling_branch():
    model, _ = DEEPLAB.build()
    model.train()
    logits = model(torch.randn(1, 3, 70, 70))
    assert logits.shape == (1, K, 70, 70)
    logits.mean().backward()


def test_deeplabv3plus_refuses_an_encoder_that_cannot_dilate():
    with pytest.raises(ValueError, match="dilated"):
        DEEPLAB.build(encoder="vgg11_bn")


class RecordingUnpool(torch.nn.Module):
    """A max-unpooling upsampler that records the indices it is given."""

    takes_pool_indices = True

    def __init__(self, log):
        super().__init__()
        self.log = log

    def forward(self, x, indices=None):
        self.log.append(indices)
        return F.max_unpool2d(x, indices, kernel_size=2, stride=2)


def segnet_with_recording_unpool(**params):
    received, calls = [], []

    def make_upsampler(in_channels, out_channels, scale_factor):
        calls.append((in_channels, out_channels, scale_factor))
        return RecordingUnpool(received)

    torch.manual_seed(0)
    model = build_segnet(K, make_upsampler, **params)
    return model, calls, received


def test_segnet_hands_an_unpooling_upsampler_the_pool_indices_of_each_target_level():
    model, calls, received = segnet_with_recording_unpool()
    assert calls == [(256, 256, 2), (128, 128, 2), (64, 64, 2), (64, 64, 2), (64, 64, 2)]  # resnet18, deepest first
    model.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = encoder_features(model, images)
    # Targets, deepest first: strides 16, 8, 4, 2, then the image (its channel mean).
    sources = [features[4], features[3], features[2], features[1], images.mean(dim=1, keepdim=True)]
    assert len(received) == len(sources)
    for indices, source, (channels, _, _) in zip(received, sources, calls, strict=True):
        expected = F.max_pool2d(source, 2, 2, return_indices=True)[1]
        assert indices is not None and indices.shape == (2, channels, *expected.shape[-2:])
        assert torch.equal(indices, expected.expand_as(indices))


@pytest.mark.parametrize("size", [64, 70])
def test_segnet_unpooling_output_matches_the_input_size(size):
    model, _, _ = segnet_with_recording_unpool()
    logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, K, size, size)
    logits.mean().backward()


def test_segnet_on_vgg_unpools_at_the_encoders_own_max_pooling_positions():
    model, calls, received = segnet_with_recording_unpool(encoder="vgg11_bn")
    assert calls == [(512, 512, 2), (512, 512, 2), (256, 256, 2), (128, 128, 2), (64, 64, 2)]
    model.eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = encoder_features(model, images)
        # VGG rounds odd sizes down (70, 35, 17, 8, 4, 2); the decoder still reaches 70.
        assert model(torch.randn(1, 3, 70, 70)).shape == (1, K, 70, 70)
    # Feature 0 is VGG's first block (stride 1): the input of its first 2x2 max-pool.
    pooled = [F.max_pool2d(f, 2, 2, return_indices=True)[1] for f in features[:-1]][::-1]
    for indices, expected in zip(received[:5], pooled, strict=True):
        assert torch.equal(indices, expected)


def test_segnet_without_an_unpooling_upsampler_calls_it_without_indices():
    model, make_upsampler = SEGNET.build(upsampler="bilinear")
    assert make_upsampler.calls == [(256, 256, 2), (128, 128, 2), (64, 64, 2), (64, 64, 2), (64, 64, 2)]
    assert model(torch.randn(1, 3, 70, 70)).shape == (1, K, 70, 70)


# --- the light encoder -------------------------------------------------------------------


def test_lite_encoder_features_halve_at_each_stage_with_its_declared_widths():
    from segbench_plugins.architectures.base import make_encoder

    encoder = make_encoder("lite", depth=5, weights=None)
    features = encoder(torch.randn(2, 3, 64, 64))
    assert [f.shape[1] for f in features] == list(encoder.out_channels) == [16, 24, 32, 64, 96, 128]
    assert [f.shape[-1] for f in features] == [64, 32, 16, 8, 4, 2]
    assert sum(p.numel() for p in encoder.parameters()) < 500_000


@pytest.mark.parametrize("output_stride, sizes", [(16, [64, 32, 16, 8, 4, 4]), (8, [64, 32, 16, 8, 8, 8])])
def test_lite_encoder_dilates_instead_of_pooling_below_the_output_stride(output_stride, sizes):
    from segbench_plugins.architectures.base import make_encoder

    encoder = make_encoder("lite", depth=5, weights=None, output_stride=output_stride)
    assert [f.shape[-1] for f in encoder(torch.randn(1, 3, 64, 64))] == sizes
    dilations = [stage[0].dilation[0] for stage in encoder.stages]
    assert dilations == ([1, 1, 1, 1, 1, 2] if output_stride == 16 else [1, 1, 1, 1, 2, 4])


def test_segnet_on_lite_unpools_at_the_encoders_own_max_pooling_positions():
    model, calls, received = segnet_with_recording_unpool(encoder="lite")
    assert calls == [(96, 96, 2), (64, 64, 2), (32, 32, 2), (24, 24, 2), (16, 16, 2)]
    model.eval()
    pool_inputs = []
    hooks = [stage.register_forward_pre_hook(lambda _m, args: pool_inputs.append(args[0])) for stage in model.encoder.stages[1:]]
    with torch.no_grad():
        features = encoder_features(model, torch.randn(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    # What each stage received is the encoder's own 2x2 max-pool of the previous feature,
    # and the decoder unpools at exactly those argmax positions.
    for feature, pooled in zip(features[:-1], pool_inputs[: len(features) - 1], strict=True):
        assert torch.equal(F.max_pool2d(feature, 2, 2), pooled)
    own = [F.max_pool2d(f, 2, 2, return_indices=True)[1] for f in features[:-1]][::-1]
    for indices, expected in zip(received[:5], own, strict=True):
        assert torch.equal(indices, expected)


def test_lite_encoder_has_no_pretrained_weights_but_loads_a_local_state_dict(tmp_path):
    from segbench_plugins.architectures.base import make_encoder

    with pytest.raises(ValueError, match="has no pretrained weights 'imagenet'"):
        make_encoder("lite", depth=5, weights="imagenet")
    source = make_encoder("lite", depth=5, weights=None)
    torch.save(source.state_dict(), tmp_path / "lite.pth")
    loaded = make_encoder("lite", depth=5, weights=str(tmp_path / "lite.pth"))
    torch.testing.assert_close(loaded.stages[0][0].weight, source.stages[0][0].weight)


def test_segnet_depth_sets_the_decoder_stages_and_the_bottleneck_size():
    model, calls, _ = segnet_with_recording_unpool(encoder="lite", depth=3)
    assert calls == [(32, 32, 2), (24, 24, 2), (16, 16, 2)]
    model.eval()
    with torch.no_grad():
        features = encoder_features(model, torch.randn(1, 3, 64, 64))
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, K, 64, 64)
    assert features[-1].shape[-2:] == (8, 8)
    with pytest.raises(ValueError, match="segnet: depth must be a positive integer"):
        build_segnet(K, lambda *a: torch.nn.Identity(), depth=0)
