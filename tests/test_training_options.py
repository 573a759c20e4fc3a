"""Training options: warm-up, gradient clipping, mixed precision, torch.compile,
validation every N epochs. Mixed precision runs on the CPU here (bf16 and fp16 autocast
with a GradScaler), so the GPU code path is exercised without a GPU."""

from __future__ import annotations

import pytest
import torch

from segbench.engine.build import build_schedule
from segbench.engine.precision import Precision, resolve_amp
from segbench.engine.run import Step

from test_engine import AUGMENTED, _one_run


def _tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))


def _step(model, amp="off", clip=0.0, lr=0.1):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    schedule = build_schedule("constant", optimizer, 10)
    return Step(model, torch.nn.CrossEntropyLoss(), optimizer, schedule, Precision.for_run(amp, torch.device("cpu")), grad_clip_norm=clip)


def _batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 8, 8, generator=generator) * 50, torch.randint(0, 3, (2, 8, 8), generator=generator)


def test_warmup_rises_linearly_then_follows_the_schedule():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = build_schedule("constant", optimizer, 10, warmup_steps=4)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("name", ["poly", "cosine"])
def test_min_lr_is_the_floor_each_group_decays_to_as_mmengine_computes_it(name):
    """mmengine's PolyLR / CosineAnnealingLR with eta_min, per parameter group (its closed
    form): lr_t = (lr - eta_min) * decay(t) + eta_min."""
    import math

    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.01},
              {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1}]
    optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    steps, eta_min = 20, 1e-4
    schedule = build_schedule(name, optimizer, steps, min_lr=eta_min)
    decay = {"poly": lambda t: (1 - t / steps) ** 0.9, "cosine": lambda t: 0.5 * (1 + math.cos(math.pi * t / steps))}[name]
    for t in range(steps + 1):
        for group, base in zip(optimizer.param_groups, (0.01, 0.1)):
            assert group["lr"] == pytest.approx((base - eta_min) * decay(t) + eta_min, rel=1e-9)
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] != 0.0


def test_min_lr_at_or_above_the_rate_is_refused(write_suite, capsys):
    from segbench.cli import main

    suite = write_suite('[train]\noptimizer = { name = "sgd", lr = 0.01 }\nmin_lr = 0.01\n')
    assert main(["validate", str(suite)]) == 2
    assert "train.min_lr: expected a rate below train.optimizer.lr = 0.01" in capsys.readouterr().err


def test_gradient_clipping_bounds_the_update():
    images, masks = _batch()  # large inputs: large gradients
    free, clipped = _tiny_model(), _tiny_model()
    before = torch.cat([p.detach().flatten() for p in clipped.parameters()])
    _step(free)(images, masks)
    _step(clipped, clip=0.01)(images, masks)
    moved = torch.cat([p.detach().flatten() for p in clipped.parameters()]) - before
    moved_free = torch.cat([p.detach().flatten() for p in free.parameters()]) - before
    assert moved.norm() == pytest.approx(0.1 * 0.01, rel=1e-3)  # lr x clip norm
    assert moved_free.norm() > 10 * moved.norm()


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps_keep_float32_weights(amp):
    model = _tiny_model()
    step = _step(model, amp=amp)
    assert step.precision.scaler.is_enabled() == (amp == "fp16")
    loss = step(*_batch())
    assert torch.isfinite(loss) and all(p.dtype == torch.float32 for p in model.parameters())
    with step.precision.autocast():
        assert model(_batch()[0]).dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def test_auto_precision_is_full_on_the_cpu():
    assert resolve_amp("auto", torch.device("cpu")) == "off"
    assert resolve_amp("bf16", torch.device("cpu")) == "bf16"
    assert Precision.for_run("auto", torch.device("cpu")).name == "fp32"


def test_compiled_model_trains_like_the_eager_one():
    eager, compiled = _tiny_model(), _tiny_model()
    batch = _batch()
    expected = _step(eager)(*batch)
    loss = _step(torch.compile(compiled))(*batch)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    for a, b in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bf16_run_validates_every_second_epoch(write_suite):
    text = AUGMENTED.replace("epochs = 1", "epochs = 3\namp = \"bf16\"\nval_every = 2\nwarmup_epochs = 0.5\ngrad_clip_norm = 1.0")
    record = _one_run(write_suite, text, "amp.toml")
    assert record["precision"] == "bf16"
    curves = record["curves"]
    assert curves["epoch"] == [1, 2, 3] and len(curves["train_loss"]) == 3
    assert curves["val_loss"][0] is None and None not in curves["val_loss"][1:]
    assert curves["miou"][0] is None and curves["miou"][2] == record["metrics"]["miou"]
    assert 0 <= record["metrics"]["miou"] <= 1


class _Overflowing(torch.nn.Module):
    """Cross-entropy whose gradient overflows fp16 on chosen calls."""

    def __init__(self, overflow_on):
        super().__init__()
        self.calls, self.overflow_on = 0, set(overflow_on)

    def forward(self, logits, target):
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
        return loss * 1e30 if self.calls in self.overflow_on else loss


def test_fp16_steps_the_scaler_skips_are_counted_and_leave_the_weights_alone():
    model = _tiny_model()
    step = _step(model, amp="fp16")
    step.loss_fn = _Overflowing(overflow_on={2, 3})
    generator = torch.Generator().manual_seed(1)  # small inputs: no overflow at the first scale
    images, masks = torch.randn(2, 3, 8, 8, generator=generator), torch.randint(0, 3, (2, 8, 8), generator=generator)
    step(images, masks)
    assert step.skipped_steps == 0
    before = [p.detach().clone() for p in model.parameters()]
    step(images, masks)
    step(images, masks)
    assert step.skipped_steps == 2
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # skipped: no update
    step(images, masks)
    assert step.skipped_steps == 2
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_steps_without_a_scaler_are_never_counted_as_skipped():
    step = _step(_tiny_model(), amp="bf16")
    step.loss_fn = _Overflowing(overflow_on={1})
    step(*_batch())
    assert step.skipped_steps == 0
