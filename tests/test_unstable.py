"""A diverged seed counts against its variant: with a real plugin loss whose training loss
becomes NaN on one seed, the comparison is "unstable", never better or equivalent on the
seeds that finished, and P(better) counts the diverged seed as a loss. The same loss
without the divergence is equivalent (it is cross-entropy), so the divergence alone
changes the outcome."""

from __future__ import annotations

import csv

import pytest

from segbench.cli import main

PLUGIN = '''
import os

import torch
from segbench import hookimpl


class DivergesOnOneSeed(torch.nn.Module):
    """Cross-entropy, except that in the run of seed $DIVERGE_SEED it becomes NaN."""

    def forward(self, logits, target):
        loss = torch.nn.functional.cross_entropy(logits, target)
        if torch.initial_seed() == int(os.environ.get("DIVERGE_SEED", "-1")):
            return loss * float("nan")
        return loss


@hookimpl
def segbench_losses(register):
    register.add_loss("diverging", lambda mode, num_classes, ignore_index: DivergesOnOneSeed())
'''

SUITE = """
name = "unstable"
seeds = [0, 1, 2, 3, 4]  # 5: the fewest with which the exact sign flips can show equivalence (1/32 < 0.05)

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [16, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 4

[eval]
metrics = ["miou"]

[stats]
margin = 0.02

[ablate]
"train.loss" = ["ce", "diverging"]
"""


def run_suite(tmp_path, write_suite, monkeypatch, diverge_seed):
    monkeypatch.setenv("DIVERGE_SEED", str(diverge_seed))
    plugin = tmp_path / "diverging.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / f"out-{diverge_seed}"
    code = main(["run", str(write_suite(SUITE, "unstable.toml")), "-p", str(plugin), "-o", str(out), "-q"])
    with (out / "unstable" / "report" / "summary.csv").open() as f:
        rows = {row["variant"]: row for row in csv.DictReader(f)}
    return code, rows["loss=diverging"], (out / "unstable" / "report" / "summary.txt").read_text()


def test_without_the_divergence_the_same_loss_is_equivalent(tmp_path, write_suite, monkeypatch):
    code, row, _ = run_suite(tmp_path, write_suite, monkeypatch, diverge_seed=-1)
    assert code == 0
    assert row["verdict"] == "equivalent" and float(row["delta"]) == 0.0


def test_a_diverged_seed_makes_it_unstable_and_counts_as_a_loss(tmp_path, write_suite, monkeypatch):
    code, row, summary = run_suite(tmp_path, write_suite, monkeypatch, diverge_seed=1)
    assert code == 1  # a run failed
    assert row["verdict"] == "unstable"
    assert row["outcome"] == "unstable: seed 1 of 5 diverged (training loss became nan in epoch 1)"
    assert float(row["delta"]) == 0.0 and int(float(row["paired_seeds"])) == 4  # the four finished seeds agree exactly...
    assert float(row["p_improve"]) == pytest.approx((4 * 0.5 + 0) / 5)  # ...four ties and the diverged seed's loss
    assert ("- loss=diverging vs loss=ce: unstable: seed 1 of 5 diverged (training loss became nan in epoch 1); never "
            "better or equivalent on the seeds that finished (Δ +0.0000, 4 seeds)") in " ".join(summary.split())
