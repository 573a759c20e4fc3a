"""Adaptive seeds in the runner: rounds add seeds only where a comparison is open, every
round's runs go to the executor together, a finished suite resumes without new runs, and
the report says how many seeds each variant got and why it stopped. The runs themselves
are stand-ins (no training): the executor returns records with chosen values."""

import numpy as np
import pytest

from segbench.plugins import load_catalogue
from segbench.runner import run_prepared
from segbench.suite import load_suite

SUITE = """
name = "adaptive"
seeds = { min = 9, max = 12, spending = "pocock" }  # 9: the exact sign flips can decide at the first look
baseline = { "model.upsampler" = "nearest" }
[ablate]
"model.upsampler" = ["nearest", "bilinear", "bicubic", "nearest_exact"]
"""
# Per upsampler: mean miou and the seed-to-seed noise of the runs.
TRUTH = {"nearest": (0.60, 0.0), "bilinear": (0.70, 0.0001), "bicubic": (0.60, 0.05), "nearest_exact": (0.6, 0.0005)}


class StandInExecutor:
    """Returns a finished record per run at once; remembers each round it was given."""

    name, shows_epochs = "stand-in", False

    def __init__(self, failing=()):
        self.rounds, self.failing = [], set(failing)

    def records(self, suite, pending, cache_dir, on_epoch=None):
        self.rounds.append([(variant.label, seed) for variant, seed in pending])
        for variant, seed in pending:
            yield self.record(suite, variant, seed)

    def record(self, suite, variant, seed):
        upsampler = variant.config["model"]["upsampler"]["name"]
        mean, noise = TRUTH[upsampler]
        value = mean + noise * np.random.default_rng(seed).standard_normal()
        failed = (upsampler, seed) in self.failing
        return {"schema": 1, "suite": suite.name, "variant_id": variant.id, "label": variant.label, "factors": variant.factors,
                "seed": seed, "config": variant.config, "is_baseline": variant.id == suite.baseline_id,
                "status": "failed" if failed else "ok", "wall_seconds": 0.1, "curves": {"epoch": [1], "miou": [value]},
                "metrics": {} if failed else {"miou": value, "dice": value, "pixel_accuracy": value},
                "cost": {"params": 10, "latency_ms": 1.0},
                **({"error": {"type": "RuntimeError", "message": "stand-in failure", "traceback": ""}} if failed else {})}

    def close(self):
        pass


def run(tmp_path, write_suite, executor, text=SUITE):
    suite = load_suite(write_suite(text), load_catalogue)
    return run_prepared(suite, tmp_path / "results", quiet=True, cache_dir=tmp_path / "cache", executor=executor)


def test_rounds_add_seeds_only_to_open_comparisons(tmp_path, write_suite):
    executor = StandInExecutor()
    outcome = run(tmp_path, write_suite, executor)
    first = executor.rounds[0]
    assert sorted(first) == sorted((f"upsampler={u}", s) for u in TRUTH for s in range(9)), "round 1: every variant, min seeds"
    later = {label for round_ in executor.rounds[1:] for label, _ in round_}
    assert "upsampler=bilinear" not in later, "decided at the first look: no more seeds"
    assert "upsampler=bicubic" in later and "upsampler=nearest" in later, "open: seeds added, and the baseline's to pair them"
    assert all(len(round_) <= 3 for round_ in executor.rounds[1:])
    seeds = {label: sorted(s for l, s in (r for round_ in executor.rounds for r in round_) if l == label) for label in later | {"upsampler=bilinear"}}
    assert seeds["upsampler=bilinear"] == list(range(9)) and seeds["upsampler=bicubic"] == list(range(12))
    summary = outcome.report["summary"].set_index("variant")
    assert summary.loc["upsampler=bilinear", "verdict"] == "better"
    assert summary.loc["upsampler=bilinear", "seeds_state"] == "stopped better at 9 seeds (look 1 of 4)"
    assert summary.loc["upsampler=bicubic", "verdict"] == "inconclusive"
    assert summary.loc["upsampler=bicubic", "seeds_state"] == "reached the maximum of 12 seeds"
    assert summary.loc["upsampler=nearest_exact", "verdict"] == "equivalent"
    assert "seeds" in outcome.report["text"] and "stopped better at 9 seeds" in outcome.report["text"]


def test_a_finished_adaptive_suite_resumes_without_new_runs(tmp_path, write_suite):
    first = StandInExecutor()
    run(tmp_path, write_suite, first)
    again = StandInExecutor()
    outcome = run(tmp_path, write_suite, again)
    assert again.rounds == [], "every wanted run has a finished record"
    assert len(outcome.records) == sum(len(round_) for round_ in first.rounds)


def test_an_interrupted_adaptive_suite_resumes_where_it_stopped(tmp_path, write_suite):
    class Interrupted(StandInExecutor):
        def records(self, suite, pending, cache_dir, on_epoch=None):
            if self.rounds:
                raise KeyboardInterrupt
            yield from super().records(suite, pending, cache_dir, on_epoch)

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, write_suite, Interrupted())
    resumed = StandInExecutor()
    run(tmp_path, write_suite, resumed)
    uninterrupted = StandInExecutor()
    run(tmp_path / "fresh", write_suite, uninterrupted)
    assert resumed.rounds == uninterrupted.rounds[1:], "the first round is kept; the rest runs as it would have"


def test_a_failed_run_is_not_retried_in_the_same_invocation(tmp_path, write_suite):
    executor = StandInExecutor(failing={("bicubic", 4)})
    outcome = run(tmp_path, write_suite, executor)
    attempts = [run_ for round_ in executor.rounds for run_ in round_ if run_ == ("upsampler=bicubic", 4)]
    assert len(attempts) == 1 and len(outcome.failures) == 1
    summary = outcome.report["summary"].set_index("variant")
    # The failure counts against bicubic: unstable at the first look (seeds 0-8), so its seeds stop there
    assert summary.loc["upsampler=bicubic", "verdict"] == "unstable"
    bicubic_seeds = [seed for round_ in executor.rounds for label, seed in round_ if label == "upsampler=bicubic"]
    assert summary.loc["upsampler=bicubic", "paired_seeds"] == 8 and max(bicubic_seeds) == 8
