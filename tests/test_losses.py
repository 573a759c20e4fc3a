"""The standard losses: the shared contract for every loss in every mode, each checked
against segmentation_models_pytorch's (or torch's) value computed here on the same
logits with the ignored pixels removed by hand; the compound loss, its presets and its
weights as ablation factors of a real suite."""

import textwrap

import pytest
import segmentation_models_pytorch.losses as smp
import torch
import torch.nn.functional as F

from segbench.errors import SuiteError
from segbench.plugins import load_catalogue
from segbench.preflight import preflight
from segbench.suite import load_suite
from segbench.testing import LossContract
from segbench_plugins.losses import STANDARD_LOSSES, WeightedSum

IGNORE = LossContract.ignore_index
EPS = 1e-7  # segmentation_models_pytorch's denominator floor
LOVASZ_HINGE_SCALES = (0.0, 0.25, 0.5, 0.75)  # the hinge is 0 once every margin reaches 1
SMOOTHED_SCALES = (0.0, 0.5, 1.0, 1.5)  # smoothed targets are best met by finite logits (~2)

# --- references: the ignored pixels removed by hand ------------------------------------


def valid_as_one_image(logits, target, mode):
    """The non-ignored pixels as a single P x 1 image: logits (1, C, P, 1), labels (1, P, 1).
    Multilabel: every non-ignored (pixel, channel) element as one binary image (1, 1, P, 1)."""
    valid = target != IGNORE
    if mode == "multilabel":
        return logits[valid].view(1, 1, -1, 1), target[valid].view(1, -1, 1)
    return logits.movedim(1, -1)[valid].T.view(1, logits.shape[1], -1, 1), target[valid].view(1, -1, 1)


def pooled(make_loss, logits, target, mode):
    """``make_loss(mode)`` (built without ignore_index) on the valid pixels only; the
    elements of a multilabel target are pooled into one binary problem."""
    smp_mode = "binary" if mode == "multilabel" else mode
    return make_loss(smp_mode)(*valid_as_one_image(logits, target, mode))


def per_channel(make_loss, logits, target, mode):
    """As ``pooled``, but a multilabel loss is the mean over channels of a binary loss on
    each channel's own valid pixels, as smp's Dice family computes it."""
    if mode != "multilabel":
        return pooled(make_loss, logits, target, mode)
    channels = [pooled(make_loss, logits[:, c : c + 1], target[:, c], "binary") for c in range(logits.shape[1])]
    return torch.stack(channels).mean()


def bce_reference(logits, target, mode, smoothing=0.0):
    pixel_logits, labels = valid_as_one_image(logits, target, mode)
    if mode == "multiclass":
        dense = F.one_hot(labels, pixel_logits.shape[1]).movedim(-1, 1).float()
    else:
        dense = labels.unsqueeze(1).float()
    return F.binary_cross_entropy_with_logits(pixel_logits, dense * (1 - smoothing) + smoothing / 2)


def ce_reference(logits, target, mode, smoothing=0.0):
    if mode != "multiclass":
        return bce_reference(logits, target, mode, smoothing)
    return F.cross_entropy(*valid_as_one_image(logits, target, mode), label_smoothing=smoothing)


def ce_over_all_pixels(logits, target, mode, smoothing=0.0):
    """mmsegmentation's ``avg_non_ignore=False``: the per-pixel loss (0 where ignored)
    summed and divided by every pixel; BCE: the mean over the valid elements times
    their share of all elements."""
    if mode != "multiclass":
        return bce_reference(logits, target, mode, smoothing) * (target != IGNORE).float().mean()
    per_pixel = F.cross_entropy(logits, target, reduction="none", ignore_index=IGNORE, label_smoothing=smoothing)
    return per_pixel.sum() / target.numel()


def dice_reference(logits, target, mode, log_loss=False):
    return per_channel(lambda m: smp.DiceLoss(m, log_loss=log_loss), logits, target, mode)


def jaccard_reference(logits, target, mode, smooth=0.0):
    return per_channel(lambda m: smp.JaccardLoss(m, smooth=smooth), logits, target, mode)


def focal_reference(logits, target, mode, alpha=None, gamma=2.0):
    return pooled(lambda m: smp.FocalLoss(m, alpha=alpha, gamma=gamma), logits, target, mode)


def lovasz_reference(logits, target, mode):
    return pooled(lambda m: smp.LovaszLoss(m), logits, target, mode)


def tversky_reference(logits, target, mode, alpha=0.5, beta=0.5, gamma=1.0):
    if mode == "multilabel":  # smp raises the mean over channels to gamma, not each channel
        make = lambda m: smp.TverskyLoss(m, alpha=alpha, beta=beta)  # noqa: E731
        return per_channel(make, logits, target, mode) ** gamma
    return pooled(lambda m: smp.TverskyLoss(m, alpha=alpha, beta=beta, gamma=gamma), logits, target, mode)


def soft_overlap_loss(logits, target, mode, jaccard=False):
    """1 - soft Dice (or IoU) per class over the batch, averaged over classes, written
    out (binary and multiclass); a class with no true pixels contributes 0."""
    valid = target != IGNORE
    pixels, labels = logits.movedim(1, -1)[valid], target[valid]  # (P, C), (P,)
    if mode == "binary":
        probs, onehot = torch.sigmoid(pixels), labels.float().unsqueeze(1)
    else:
        probs, onehot = pixels.softmax(-1), F.one_hot(labels, logits.shape[1]).float()
    intersection = (probs * onehot).sum(0)
    cardinality = (probs + onehot).sum(0)
    denominator = cardinality - intersection if jaccard else cardinality / 2
    score = intersection / denominator.clamp_min(EPS)
    return ((1 - score) * (onehot.sum(0) > 0)).mean()


# --- the contract, loss by loss ---------------------------------------------------------


class TestCE(LossContract):
    name = "ce"

    def reference(self, logits, target, mode):
        return ce_reference(logits, target, mode)


class TestCELabelSmoothing(LossContract):
    name = "ce"
    params = {"label_smoothing": 0.1}
    perfect_scales = SMOOTHED_SCALES

    def reference(self, logits, target, mode):
        return ce_reference(logits, target, mode, smoothing=0.1)


class TestCEAverageAll(LossContract):
    name = "ce"
    params = {"average": "all", "label_smoothing": 0.1}
    perfect_scales = SMOOTHED_SCALES

    def reference(self, logits, target, mode):
        return ce_over_all_pixels(logits, target, mode, smoothing=0.1)


class TestBCE(LossContract):
    name = "bce"

    def reference(self, logits, target, mode):
        return bce_reference(logits, target, mode)


class TestBCELabelSmoothing(LossContract):
    name = "bce"
    params = {"label_smoothing": 0.2}
    perfect_scales = SMOOTHED_SCALES

    def reference(self, logits, target, mode):
        return bce_reference(logits, target, mode, smoothing=0.2)


class TestBCEAverageAll(LossContract):
    name = "bce"
    params = {"average": "all"}

    def reference(self, logits, target, mode):
        return bce_reference(logits, target, mode) * (target != IGNORE).float().mean()


class TestFocal(LossContract):
    name = "focal"

    def reference(self, logits, target, mode):
        return focal_reference(logits, target, mode)


class TestFocalAlpha(LossContract):
    name = "focal"
    params = {"alpha": 0.25, "gamma": 1.0}

    def reference(self, logits, target, mode):
        return focal_reference(logits, target, mode, alpha=0.25, gamma=1.0)


class TestDice(LossContract):
    name = "dice"

    def reference(self, logits, target, mode):
        return dice_reference(logits, target, mode)


class TestDiceLogLoss(LossContract):
    name = "dice"
    params = {"log_loss": True}

    def reference(self, logits, target, mode):
        return dice_reference(logits, target, mode, log_loss=True)


class TestJaccard(LossContract):
    name = "jaccard"

    def reference(self, logits, target, mode):
        return jaccard_reference(logits, target, mode)


class TestJaccardSmooth(LossContract):
    name = "jaccard"
    params = {"smooth": 1.0}

    def reference(self, logits, target, mode):
        return jaccard_reference(logits, target, mode, smooth=1.0)


class TestLovasz(LossContract):
    name = "lovasz"
    perfect_scales = LOVASZ_HINGE_SCALES

    def reference(self, logits, target, mode):
        return lovasz_reference(logits, target, mode)


class TestLovaszPerImage(LossContract):
    name = "lovasz"
    params = {"per_image": True}
    perfect_scales = LOVASZ_HINGE_SCALES

    def reference(self, logits, target, mode):
        images = [lovasz_reference(logits[i : i + 1], target[i : i + 1], mode) for i in range(len(target))]
        return torch.stack(images).mean()


class TestTversky(LossContract):
    name = "tversky"

    def reference(self, logits, target, mode):
        return tversky_reference(logits, target, mode)


class TestFocalTversky(LossContract):
    name = "tversky"
    params = {"alpha": 0.3, "beta": 0.7, "gamma": 1.5}

    def reference(self, logits, target, mode):
        return tversky_reference(logits, target, mode, alpha=0.3, beta=0.7, gamma=1.5)


class TestFocalTverskyBelowOne(LossContract):
    name = "tversky"
    params = {"alpha": 0.7, "beta": 0.3, "gamma": 0.75}

    def reference(self, logits, target, mode):
        return tversky_reference(logits, target, mode, alpha=0.7, beta=0.3, gamma=0.75)


class TestCompound(LossContract):
    name = "compound"
    params = {"terms": ["dice", "ce"], "weights": [0.7, 0.3]}

    def reference(self, logits, target, mode):
        return 0.7 * dice_reference(logits, target, mode) + 0.3 * ce_reference(logits, target, mode)


class TestCompoundDefaultWeights(LossContract):
    name = "compound"
    params = {"terms": ["tversky", "bce", {"name": "jaccard", "smooth": 1.0}]}

    def reference(self, logits, target, mode):
        terms = [tversky_reference, bce_reference, lambda *a: jaccard_reference(*a, smooth=1.0)]
        return sum(term(logits, target, mode) for term in terms) / 3


class TestCompoundBeta(LossContract):
    name = "compound"
    params = {"terms": ["lovasz", {"name": "focal", "gamma": 1.0}], "beta": 0.8}

    def reference(self, logits, target, mode):
        return 0.8 * lovasz_reference(logits, target, mode) + 0.2 * focal_reference(logits, target, mode, gamma=1.0)


class TestBceDice(LossContract):
    name = "bce_dice"

    def reference(self, logits, target, mode):
        return 0.5 * dice_reference(logits, target, mode) + 0.5 * bce_reference(logits, target, mode)


class TestBceDiceMostlyDice(LossContract):
    name = "bce_dice"
    params = {"beta": 0.8}

    def reference(self, logits, target, mode):
        return 0.8 * dice_reference(logits, target, mode) + 0.2 * bce_reference(logits, target, mode)


class TestCeDice(LossContract):
    name = "ce_dice"
    params = {"beta": 0.3}

    def reference(self, logits, target, mode):
        return 0.3 * dice_reference(logits, target, mode) + 0.7 * ce_reference(logits, target, mode)


# --- catalogue, formulas and parameters ------------------------------------------------


def batch(mode, contract=TestCE()):
    target = contract.target(mode)
    return contract.logits(mode, target).detach(), target


def build(name, mode="multiclass", **params):
    contract = LossContract()
    contract.name, contract.params = name, params
    return contract.build(mode)


def test_the_catalogue_is_complete():
    expected = {"ce", "bce", "focal", "dice", "jaccard", "lovasz", "tversky", "compound", "bce_dice", "ce_dice"}
    assert set(STANDARD_LOSSES) == expected
    assert expected <= set(load_catalogue().names("loss"))


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
@pytest.mark.parametrize("name", ["dice", "jaccard"])
def test_dice_and_jaccard_match_the_written_out_formula(name, mode):
    logits, target = batch(mode)
    expected = soft_overlap_loss(logits, target, mode, jaccard=name == "jaccard")
    torch.testing.assert_close(build(name, mode)(logits, target), expected)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_ce_is_bce_without_a_softmax(mode):
    logits, target = batch(mode)
    torch.testing.assert_close(build("ce", mode)(logits, target), build("bce", mode)(logits, target))


def test_tversky_with_equal_alpha_beta_is_dice():
    logits, target = batch("multiclass")
    torch.testing.assert_close(build("tversky")(logits, target), build("dice")(logits, target))


ALL_PIXEL_REFERENCES = {
    "ce": lambda logits, target: ce_over_all_pixels(logits, target, "multiclass", smoothing=0.1),
    "bce": lambda logits, target: bce_reference(logits, target, "multiclass", 0.1) * (target != IGNORE).float().mean(),
}


@pytest.mark.parametrize("name", ["ce", "bce"])
def test_averaging_over_all_pixels_with_three_quarters_ignored_is_a_quarter_of_the_value_and_gradient(name):
    target = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(3))
    target[:, :, 2:] = IGNORE  # 75% of the pixels ignored
    logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    values, grads = {}, {}
    for average in ("valid", "all", "reference"):
        leaf = logits.clone().requires_grad_()
        loss = ALL_PIXEL_REFERENCES[name] if average == "reference" else build(name, average=average, label_smoothing=0.1)
        values[average] = loss(leaf, target)
        values[average].backward()
        grads[average] = leaf.grad
    torch.testing.assert_close(values["all"], values["valid"] / 4)
    torch.testing.assert_close(grads["all"], grads["valid"] / 4)
    torch.testing.assert_close(values["all"], values["reference"])
    torch.testing.assert_close(grads["all"], grads["reference"])


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("ce", {"average": "none"}, r"ce: average must be one of 'valid', 'all', got 'none'"),
        ("bce", {"average": "mean"}, r"bce: average must be one of 'valid', 'all', got 'mean'"),
        ("ce", {"label_smoothing": 1.5}, "label_smoothing"),
        ("bce", {"label_smoothing": -0.1}, "label_smoothing"),
        ("focal", {"alpha": 1.5}, "alpha"),
        ("focal", {"gamma": -1.0}, "gamma"),
        ("tversky", {"alpha": -0.1}, "alpha"),
        ("tversky", {"alpha": 0.0, "beta": 0.0}, "not both 0"),
        ("tversky", {"gamma": 0.0}, "gamma"),
        ("bce_dice", {"beta": -0.1}, "bce_dice: beta"),
        ("ce_dice", {"beta": 1.5}, "ce_dice: beta"),
    ],
)
def test_factories_refuse_bad_parameters(name, params, message):
    with pytest.raises(ValueError, match=message):
        build(name, **params)


# --- compound ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_compound_is_the_weighted_sum_of_its_terms_built_separately(mode):
    logits, target = batch(mode, TestCompound())
    declared = ["jaccard", {"name": "focal", "alpha": 0.25}, "ce"]
    compound = build("compound", mode, terms=declared, weights=[0.5, 2, 0.25])
    separate = [build("jaccard", mode), build("focal", mode, alpha=0.25), build("ce", mode)]
    expected = sum(w * term(logits, target) for w, term in zip([0.5, 2.0, 0.25], separate))
    torch.testing.assert_close(compound(logits, target), expected)


def test_a_compound_term_takes_the_averaging_as_a_parameter():
    """The presets keep today's averaging; ``compound`` with an inline ce term is ce_dice
    averaged over all pixels."""
    logits, target = batch("multiclass")
    compound = build("compound", terms=["dice", {"name": "ce", "average": "all"}], beta=0.5)
    expected = 0.5 * build("dice")(logits, target) + 0.5 * ce_over_all_pixels(logits, target, "multiclass")
    torch.testing.assert_close(compound(logits, target), expected)


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_compound_beta_is_region_against_distribution(beta):
    logits, target = batch("multiclass")
    compound = build("compound", terms=["dice", "ce"], beta=beta)
    assert isinstance(compound, WeightedSum) and compound.weights == [beta, 1 - beta]
    expected = beta * build("dice")(logits, target) + (1 - beta) * build("ce")(logits, target)
    torch.testing.assert_close(compound(logits, target), expected)


@pytest.mark.parametrize("preset, distribution", [("bce_dice", "bce"), ("ce_dice", "ce")])
def test_presets_are_compounds_with_beta(preset, distribution):
    logits, target = batch("multiclass")
    expected = build("compound", terms=["dice", distribution], beta=0.7)(logits, target)
    torch.testing.assert_close(build(preset, beta=0.7)(logits, target), expected)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"terms": ["dice", "dcie"]}, r"terms\[1\] = 'dcie' is not a standard loss; did you mean 'dice'"),
        ({"terms": ["dice", "compound"]}, r"terms\[1\] = 'compound' is itself a compound loss"),
        ({"terms": ["bce_dice"]}, r"terms\[0\] = 'bce_dice' is itself a compound loss"),
        ({"terms": [3]}, r"terms\[0\] = 3 is neither a loss name"),
        ({"terms": []}, "terms must be a non-empty list"),
        ({"terms": ["dice", "ce"], "weights": [1.0]}, r"weights \[1.0\] do not match the 2 terms"),
        ({"terms": ["dice", "ce"], "weights": [0.5, -0.5]}, r"weights\[1\] = -0.5 is negative"),
        ({"terms": ["dice", "ce"], "weights": [0.5, "x"]}, r"weights\[1\] = 'x' is not a finite number"),
        ({"terms": ["dice", "ce"], "weights": [0, 0]}, "weights are all 0"),
        ({"terms": [{"name": "focal", "gama": 1.0}]}, r"terms\[0\]: loss 'focal' has no parameter 'gama'"),
        ({"terms": [{"name": "focal", "alpha": 2.0}]}, r"terms\[0\]: focal: alpha must be in \[0, 1\]"),
        ({"terms": ["dice", "ce"], "weights": [0.5, 0.5], "beta": 0.5}, "weights or beta, not both"),
        ({"terms": ["ce", "dice"], "beta": 0.5}, r"beta weighs terms \[region, distribution\]: a region"),
        ({"terms": ["dice", "jaccard"], "beta": 0.5}, r"got terms \['dice', 'jaccard'\]"),
        ({"terms": ["dice", "ce"], "beta": 1.5}, r"beta must be in \[0, 1\]"),
    ],
)
def test_compound_refuses_bad_configurations(params, message):
    with pytest.raises(ValueError, match=message) as raised:
        build("compound", **params)
    assert str(raised.value).startswith("compound: ")


@pytest.mark.parametrize("terms", [["dcie"], ["compound"], ["ce_dice"], [3], []])
def test_compound_errors_about_a_term_list_the_valid_terms(terms):
    with pytest.raises(ValueError, match="Valid terms: bce, ce, dice, focal, jaccard, lovasz, tversky$"):
        build("compound", terms=terms)


# --- compound in a suite -------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def write_compound_suite(tmp_path, ablate):
    path = tmp_path / "suite.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            name = "compound"
            seeds = [0]

            [train]
            loss = {{ name = "compound", terms = ["dice", "ce"] }}

            [ablate]
            {ablate}
            """
        )
    )
    return path


def test_compound_weights_are_an_ablation_factor(tmp_path, catalogue):
    path = write_compound_suite(tmp_path, '"train.loss.weights" = [[0.5, 0.5], [0.9, 0.1]]')
    suite = load_suite(path, lambda plugins, base_dir: catalogue)
    refs = [variant.config["train"]["loss"] for variant in suite.variants]
    assert [ref["params"]["weights"] for ref in refs] == [[0.5, 0.5], [0.9, 0.1]]
    assert len({variant.id for variant in suite.variants}) == 2
    built = [catalogue.get("loss", ref["name"]).build("multiclass", 3, IGNORE, **ref["params"]) for ref in refs]
    assert [loss.weights for loss in built] == [[0.5, 0.5], [0.9, 0.1]]


def test_a_bad_compound_in_a_suite_is_reported_before_training(tmp_path, catalogue):
    path = write_compound_suite(tmp_path, '"train.loss.terms" = [["dice", "ce"], ["dice", "compound"]]')
    suite = load_suite(path, lambda plugins, base_dir: catalogue)
    with pytest.raises(SuiteError, match=r"ValueError: compound: terms\[1\] = 'compound' is itself a compound loss"):
        preflight(suite)


def test_compound_weights_that_are_not_a_list_are_refused_by_the_suite(tmp_path, catalogue):
    path = write_compound_suite(tmp_path, '"train.loss.weights" = [[0.5, 0.5], "heavy"]')
    with pytest.raises(SuiteError, match="weights"):
        load_suite(path, lambda plugins, base_dir: catalogue)


# --- averaging in a suite --------------------------------------------------------------------


def test_averaging_at_its_default_leaves_the_variant_ids_alone(tiny_suite, catalogue):
    load = lambda overrides: load_suite(tiny_suite, lambda plugins, base_dir: catalogue, overrides=overrides)  # noqa: E731
    ids = [v.id for v in load({}).variants]
    assert [v.id for v in load({"train.loss": {"name": "ce", "average": "valid"}}).variants] == ids
    assert [v.id for v in load({"train.loss": {"name": "ce", "average": "all"}}).variants] != ids


def test_a_bad_averaging_exits_2_before_training(capsys, tiny_suite, tmp_path):
    from segbench.cli import main

    out = tmp_path / "out"
    assert main(["run", str(tiny_suite), "--set", 'train.loss={ name = "ce", average = "none" }', "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "train.loss.average: loss 'ce' parameter 'average' expects one of 'valid', 'all', got 'none' (str)" in err
    assert not out.exists()
