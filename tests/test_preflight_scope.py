"""The preflight of `segbench run` checks only the variants with runs to do: adding one
variant to a finished suite builds and tries one model, not every model again (on a
cluster those checks run serially on the driver before any work goes out). `validate`
still checks every variant."""

from segbench import api, preflight
from segbench.cli import main

SUITE = """
name = "scope"
seeds = [0]
[dataset]
name = "shapes"
image_size = 32
num_train = 4
num_val = 2
[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [8, 8, 8, 8, 8]
[train]
epochs = 1
batch_size = 2
[ablate]
"model.upsampler" = {upsamplers}
"""


def checked_variants(monkeypatch):
    """The labels of the variants the preflight checks, in order."""
    labels, check = [], preflight._Checks.variant

    def variant(self, variant, data):
        labels.append(variant.label)
        return check(self, variant, data)

    monkeypatch.setattr(preflight._Checks, "variant", variant)
    return labels


def test_a_variant_added_to_a_finished_suite_is_the_only_one_checked(tmp_path, monkeypatch):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(upsamplers='["nearest", "bilinear"]'))
    checked = checked_variants(monkeypatch)
    assert not api.run(suite, tmp_path / "out", quiet=True).failures
    assert checked == ["upsampler=nearest", "upsampler=bilinear"]

    checked.clear()
    suite.write_text(SUITE.format(upsamplers='["nearest", "bilinear", "bicubic"]'))
    outcome = api.run(suite, tmp_path / "out", quiet=True)
    assert checked == ["upsampler=bicubic"], "the finished variants are not checked again"
    assert [r["label"] for r in outcome.records] == ["upsampler=nearest", "upsampler=bilinear", "upsampler=bicubic"]

    checked.clear()
    assert main(["validate", str(suite)]) == 0
    assert checked == ["upsampler=nearest", "upsampler=bilinear", "upsampler=bicubic"], "validate checks every variant"
