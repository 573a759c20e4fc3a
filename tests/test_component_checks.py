"""One set of component checks serves the preflight and the contracts (segbench.component_checks):
each planted mistake is refused by both, with a message naming the component, and a
stateful metric or a wrong direction is caught before anything trains."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from segbench.cli import main
from segbench.component_checks import ContractViolation, check_metric_value
from segbench.components import Registrar
from segbench.engine.run import MetricMiscounted, per_image_values
from segbench.testing import ArchitectureContract, LossContract, MetricContract

PLUGIN = '''
import numpy as np
import torch
from torch import nn

from segbench import hookimpl
from segbench.metrics import ConfusionMatrixMetric, Metric


class Accuracy(ConfusionMatrixMetric):
    """Pixel accuracy, written out."""

    def score(self, confusion):
        return confusion.diagonal() / confusion.sum(1)

    def reduce(self, per_class, confusion):
        total = confusion.sum()
        return float(confusion.trace() / total) if total else float("nan")


class ErrorRate(Accuracy):
    """The share of wrong pixels, its direction left at the default (the mistake)."""

    def reduce(self, per_class, confusion):
        return 1.0 - super().reduce(per_class, confusion)


class LowerErrorRate(ErrorRate):
    """The share of wrong pixels, declared as it should be."""

    higher_is_better = False


CACHE = {}


def cached_accuracy(num_classes, ignore_index):
    """Pixel accuracy from a cached instance (the mistake: it keeps every evaluation's images)."""
    if "metric" not in CACHE:
        CACHE["metric"] = Accuracy(num_classes, ignore_index)
    return CACHE["metric"]


class SharedCounts(Accuracy):
    """A new instance each call, but the counts live on the class."""

    seen = []

    def update(self, pred, target):
        SharedCounts.seen.append(len(pred))
        super().update(pred, target)

    def compute(self):
        return super().compute() + 0.01 * len(SharedCounts.seen)


class LastBatchOnly(Accuracy):
    """per_image() of the last batch only (the mistake: update() overwrites)."""

    def update(self, pred, target):
        self.images = []
        super().update(pred, target)


class Returns(Accuracy):
    def __init__(self, num_classes, ignore_index, kind):
        super().__init__(num_classes, ignore_index)
        self.kind = kind

    def compute(self):
        value = super().compute()
        return {"float32": np.float32(value), "tensor": torch.tensor(value), "dict": {"accuracy": value}}.get(self.kind, value)

    def per_image(self):
        values = super().per_image()
        return np.array(values) if self.kind == "array" else values


class NanWhenAllIgnored(nn.Module):
    """Cross-entropy averaged over the scored pixels: 0/0 when there are none."""

    def forward(self, logits, target):
        return nn.functional.cross_entropy(logits, target, ignore_index=255)


class Net(nn.Module):
    def __init__(self, out_channels, provides):
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels, 1)
        if provides is not None:
            self.provides = provides

    def forward(self, images):
        return self.conv(images)


@hookimpl
def segbench_metrics(register):
    register.add_metric("cached_accuracy", cached_accuracy, higher_is_better=True)
    register.add_metric("shared_counts", SharedCounts)
    register.add_metric("last_batch_only", LastBatchOnly)
    register.add_metric("error_rate_declared_higher", ErrorRate, description="Share of wrong pixels (lower is better)",
                        higher_is_better=True)
    register.add_metric("error_rate", LowerErrorRate)
    for kind in ("float32", "tensor", "dict", "array"):
        register.add_metric(f"{kind}_accuracy", lambda num_classes, ignore_index, kind=kind: Returns(num_classes, ignore_index, kind),
                            higher_is_better=True)


@hookimpl
def segbench_losses(register):
    register.add_loss("nan_when_all_ignored", lambda mode, num_classes, ignore_index: NanWhenAllIgnored())


@hookimpl
def segbench_architectures(register):
    provides = ["interpolate:nearest"]
    register.add_architecture("bare_net", lambda out_channels, make_upsampler: Net(out_channels, None), provides=provides)
    register.add_architecture("misdeclared_net", lambda out_channels, make_upsampler: Net(out_channels, ["module"]),
                              provides=provides)
'''

SUITE = """
name = "checks"
seeds = [0]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = {num_val}

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [16, 8, 8, 8, 8]
upsampler = "nearest"

[train]
epochs = 1
batch_size = 4

[eval]
metrics = {metrics}
{more}
"""


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "bad_components.py"
    path.write_text(PLUGIN)
    return path


@pytest.fixture
def module(plugin):
    spec = importlib.util.spec_from_file_location("bad_components_for_contracts", plugin)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def by(plugin) -> str:
    return f"({plugin} local)"


def segbench(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def write_suite(tmp_path, metrics, num_val=4, more=""):
    path = tmp_path / "suite.toml"
    path.write_text(SUITE.format(metrics=json.dumps(metrics), num_val=num_val, more=more))
    return path


def contract(base, name, hook, **settings):
    """The contract class for the planted component, as a plugin author would subclass it."""
    return type(f"Test_{name}", (base,), {"name": name, "hook": hook, **settings})()


def contract_failure(test) -> str:
    """What a contract test says when it fails; no bare AssertionError."""
    try:
        test()
    except (pytest.fail.Exception, ContractViolation) as failure:
        return str(failure)
    except AssertionError as bare:  # pragma: no cover - what this module guards against
        pytest.fail(f"a bare AssertionError: {bare!r}")
    pytest.fail("the contract test passed on a planted mistake")


# ----------------------------------------------------------------------------- stateful metrics


def test_a_cached_metric_instance_is_refused_by_validate_and_run(capsys, tmp_path, plugin):
    suite = write_suite(tmp_path, ["miou", "cached_accuracy"])
    for command in (["validate", suite], ["run", suite, "-o", tmp_path / "out", "-q"]):
        code, text = segbench(capsys, *command, "-p", plugin)
        assert code == 2, text
        assert f"metric 'cached_accuracy' {by(plugin)}: its factory returned the same object twice" in text
        assert "must return a new instance each call" in text
    assert not (tmp_path / "out" / "checks" / "runs").exists()  # refused before training


def test_a_metric_keeping_state_on_its_class_is_refused(capsys, tmp_path, plugin):
    code, text = segbench(capsys, "validate", write_suite(tmp_path, ["shared_counts"]), "-p", plugin)
    assert code == 2, text
    assert f"metric 'shared_counts' {by(plugin)}: two new instances from its factory, each updated once with the same 2 label maps" in text
    assert "gave compute() = " in text and "must keep no state outside its instance" in text


def test_the_contract_refuses_the_same_stateful_metrics(module):
    for name, says in [("cached_accuracy", "its factory returned the same object twice"), ("shared_counts", "gave compute() = ")]:
        message = contract_failure(contract(MetricContract, name, module.segbench_metrics).test_a_new_instance_each_call_keeping_no_state)
        assert f"metric {name!r} (contract-test ?): " in message and says in message


def test_a_run_whose_per_image_misses_images_fails_naming_the_metric(capsys, tmp_path, plugin):
    """The preflight's single batch cannot see it; the run's count of per_image does."""
    suite = write_suite(tmp_path, ["miou", "last_batch_only"], num_val=8)
    code, text = segbench(capsys, "run", suite, "-p", plugin, "-o", tmp_path / "out", "-q")
    assert code == 1, text
    [record] = (tmp_path / "out").rglob("record.json")
    error = json.loads(record.read_text())["error"]
    assert "MetricMiscounted" in json.dumps(error)
    assert f"metric 'last_batch_only' {by(plugin)}: per_image() returned 4 values for 8 validation images" in json.dumps(error)


def test_per_image_values_are_counted_against_the_validation_images(module):
    register = Registrar("counted", "1.0")
    module.segbench_metrics(register)
    from segbench.components import Catalogue

    catalogue = Catalogue(register.components)
    metric = module.Accuracy(3, 255)
    metric.update(torch.zeros(3, 4, 4, dtype=torch.long), torch.zeros(3, 4, 4, dtype=torch.long))
    assert per_image_values({"error_rate": metric}, 3, catalogue) == {"error_rate": [1.0, 1.0, 1.0]}
    with pytest.raises(MetricMiscounted, match=r"metric 'error_rate' \(counted 1.0\): per_image\(\) returned 3 values for 5 validation"):
        per_image_values({"error_rate": metric}, 5, catalogue)


# ----------------------------------------------------------------------------- direction


def test_a_wrong_direction_is_refused_before_training_naming_the_fix(capsys, tmp_path, plugin):
    suite = write_suite(tmp_path, ["miou", "error_rate_declared_higher"])
    for command in (["validate", suite], ["run", suite, "-o", tmp_path / "out", "-q"]):
        code, text = segbench(capsys, *command, "-p", plugin)
        assert code == 2, text
        assert (f"metric 'error_rate_declared_higher' {by(plugin)}: declared higher is better (higher_is_better=True), "
                "but a perfect prediction on 2 label maps scores 0 and a wrong one 1; register it with higher_is_better=False") in text


def test_a_correctly_declared_lower_is_better_metric_passes(capsys, tmp_path, plugin):
    code, text = segbench(capsys, "validate", write_suite(tmp_path, ["miou", "error_rate"]), "-p", plugin)
    assert code == 0, text


def test_the_contract_refuses_a_wrong_direction_with_the_scores(module):
    test = contract(MetricContract, "error_rate_declared_higher", module.segbench_metrics).test_direction_agrees_with_the_scores
    message = contract_failure(test)
    assert "metric 'error_rate_declared_higher' (contract-test ?): declared higher is better" in message
    assert "register it with higher_is_better=False" in message


def test_a_gate_rule_follows_the_checked_direction(capsys, tmp_path, plugin):
    """The suite's correct rule (max_increase) is not refused; the wrong one is, with the right fix."""
    metrics = ["miou", "error_rate_declared_higher"]
    right = write_suite(tmp_path, metrics, more='[gate]\nrules = ["error_rate_declared_higher:max_increase=0.01"]')
    code, text = segbench(capsys, "validate", right, "-p", plugin)
    assert code == 2 and "gate.rules" not in text and "register it with higher_is_better=False" in text
    wrong = write_suite(tmp_path, metrics, more='[gate]\nrules = ["error_rate_declared_higher:max_drop=0.01"]')
    code, text = segbench(capsys, "validate", wrong, "-p", plugin)
    assert code == 2
    assert "use 'error_rate_declared_higher:max_increase=0.01'" in text
    assert "is registered with higher_is_better=True, but a perfect prediction scores 0" in text


def test_list_remarks_on_a_direction_its_scores_contradict(capsys, plugin):
    code, text = segbench(capsys, "list", "metrics", "-p", plugin)
    assert code == 0, text
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("error_rate_declared_higher"))
    direction = next(line for line in lines[at:] if "direction:" in line)
    assert "direction: higher is better (but a perfect prediction scores 0 and a wrong one 1: register it with higher_is_better=False)" in direction
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("error_rate "))
    assert next(line for line in lines[at:] if "direction:" in line).strip() == "direction: lower is better"


# ----------------------------------------------------------------------------- metric values


@pytest.mark.parametrize(("name", "call", "in_contract", "in_validate"), [
    ("float32_accuracy", "compute()", "(float32)", "(float32)"),
    ("tensor_accuracy", "compute()", "(Tensor)", "(Tensor)"),
    ("dict_accuracy", "compute()", "{'accuracy': ", "{'accuracy': "),
    ("array_accuracy", "per_image()", "a ndarray for 4", "a ndarray for 2"),
])
def test_values_a_record_cannot_hold_are_refused_by_contract_and_validate_alike(capsys, tmp_path, plugin, module, name, call,
                                                                                in_contract, in_validate):
    message = contract_failure(contract(MetricContract, name, module.segbench_metrics).test_values_are_floats_a_record_can_hold)
    assert f"metric {name!r} (contract-test ?): {call} returned" in message and in_contract in message
    code, text = segbench(capsys, "validate", write_suite(tmp_path, [name]), "-p", plugin)
    assert code == 2, text
    assert f"metric {name!r} {by(plugin)}: {call} returned" in text and in_validate in text


def test_a_value_check_names_the_value_and_its_type():
    with pytest.raises(ContractViolation, match=r"metric 'x': compute\(\) returned tensor\(0\.5000\) \(Tensor\); a metric value must"):
        check_metric_value("metric 'x'", "compute()", torch.tensor(0.5))


# ----------------------------------------------------------------------------- losses


def test_a_nan_loss_on_an_all_ignored_batch_is_refused_by_contract_and_validate(capsys, tmp_path, plugin, module):
    test = contract(LossContract, "nan_when_all_ignored", module.segbench_losses, modes=("multiclass",))
    message = contract_failure(lambda: test.test_an_all_ignored_batch_gives_a_finite_value("multiclass"))
    assert "loss 'nan_when_all_ignored' (contract-test ?): returned nan on a batch whose every pixel is ignored" in message
    assert "given targets (2, 4, 4) all 255" in message
    # training crops pad with ignore_index, so the suite's loss can meet such a batch
    suite = write_suite(tmp_path, ["miou"], more='[train.augment]\ncrop = 24')
    suite.write_text(suite.read_text().replace("[train]\n", '[train]\nloss = "nan_when_all_ignored"\n'))
    code, text = segbench(capsys, "validate", suite, "-p", plugin)
    assert code == 2, text
    assert f"loss 'nan_when_all_ignored' {by(plugin)}: returned nan on a batch whose every pixel is ignored" in text


def test_a_loss_failure_in_the_contract_names_the_values(module):
    class Increasing(LossContract):
        name = "nan_when_all_ignored"
        hook = module.segbench_losses
        modes = ("multiclass",)
        perfect_scales = (10.0, 0.0)  # confidence falling: the loss rises, which the contract reports with the values

    message = contract_failure(lambda: Increasing().test_decreases_toward_a_perfect_prediction("multiclass"))
    assert "loss 'nan_when_all_ignored' (contract-test ?): multiclass: on correct predictions of growing confidence" in message
    assert "expected strictly decreasing values" in message


# ----------------------------------------------------------------------------- architectures: provides


def architecture_contract(module, name):
    from segbench_plugins import upsamplers  # the standard upsamplers, for the contract to build the model with

    return contract(ArchitectureContract, name, (module.segbench_architectures, upsamplers.segbench_upsamplers))


def test_a_model_need_not_carry_provides(module):
    test = architecture_contract(module, "bare_net")
    with pytest.raises(pytest.skip.Exception, match="without a provides attribute"):
        test.test_a_model_carrying_provides_agrees_with_its_registration()


def test_a_model_carrying_other_provides_than_its_registration_is_named(module):
    test = architecture_contract(module, "misdeclared_net")
    message = contract_failure(test.test_a_model_carrying_provides_agrees_with_its_registration)
    assert "architecture 'misdeclared_net' (contract-test ?): the built model's provides ['module'] differ from the registration's" in message


def test_list_remarks_on_a_description_contradicting_the_direction_when_scores_cannot_tell():
    """A metric with a required parameter cannot be scored at its defaults: its words are checked instead."""
    from segbench.component_checks import direction_remark

    def needs_a_weight(num_classes, ignore_index, *, weight):
        raise NotImplementedError  # never reached: the weight is required

    register = Registrar("words", "1.0")
    register.add_metric("weighted_error", needs_a_weight, description="Weighted error (lower is better)", higher_is_better=True)
    register.add_metric("weighted_score", needs_a_weight, description="Weighted score (higher is better)", higher_is_better=True)
    wrong, right = register.components
    assert direction_remark(wrong, True) == "but its description says 'lower is better': fix one of them"
    assert direction_remark(right, True) == ""


def test_no_contract_checks_with_assert_statements():
    """A contract's checks are calls, not ``assert`` statements: those vanish under
    ``python -O`` and, outside test modules, fail without the values that explain them."""
    import ast

    import segbench.testing

    folder = Path(segbench.testing.__file__).parent
    asserts = [f"{path.name}:{node.lineno}" for path in sorted(folder.glob("*.py"))
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]
    assert asserts == []
