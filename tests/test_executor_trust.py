"""The runner trusts no executor (segbench/runner.py, RoundCheck): each round, what came back
is checked against what was sent. A misbehaving executor plugin, loaded with -p, plants
one fault at a time through `segbench run`: a run dropped once (sent again, noted), a run
dropped always (a failed record naming the executor, exit 1, the other records kept), an
executor that raises midway (its runs not returned fail; its traceback is logged), a
malformed record (its run fails, naming the field), a
record returned twice (the first kept), a record of a run never sent, and a record of the
wrong variant. Each must end quickly: a watchdog fails the test instead of hanging."""

import ast
import contextlib
import json
import signal
import textwrap

import pytest

from segbench import runner
from segbench.crash import Halt
from segbench.cli import main

PLUGIN = """
    from segbench import ExecutorOption, hookimpl


    def record(suite, variant, seed, miou=0.5):
        return {"schema": 1, "suite": suite.name, "variant_id": variant.id, "label": variant.label,
                "factors": variant.factors, "seed": seed, "config": variant.config,
                "is_baseline": variant.id == suite.baseline_id, "status": "ok", "wall_seconds": 0.1,
                "curves": {"epoch": [1], "miou": [miou]}, "metrics": {"miou": miou + seed / 100},
                "cost": {"params": 10, "latency_ms": 1.0}}


    class Misbehaving:
        '''Hand-made records at once (no training), with one planted fault.'''

        shows_epochs = False

        def __init__(self, fault):
            self.fault = fault
            self.sent = []  # every round's pending runs, as (label, seed)

        def records(self, suite, pending, cache_dir, on_epoch=None):
            self.sent.append([(variant.label, seed) for variant, seed in pending])
            for index, (variant, seed) in enumerate(pending):
                first = index == 0
                if first and self.fault == "drop_always":
                    continue
                if first and self.fault == "drop_once" and len(self.sent) == 1:
                    continue
                if first and self.fault == "wrong_variant":
                    other = next(v for v in suite.variants if v.id != variant.id)
                    yield record(suite, other, seed)
                    continue
                if index == 2 and self.fault == "raise_midway":
                    raise ConnectionError("the cluster went away")
                if first and self.fault == "malformed":
                    yield {**record(suite, variant, seed), "metrics": "lost"}
                    continue
                yield record(suite, variant, seed)
                if first and self.fault == "duplicate":
                    yield record(suite, variant, seed, miou=0.9)
                if first and self.fault == "stranger":
                    yield record(suite, variant, 99)
                    yield "not a record"

        def close(self):
            print(f"rounds sent: {self.sent}")


    @hookimpl
    def segbench_executors(register):
        register.add_executor("misbehaving", lambda *, fault="": Misbehaving(fault),
                              options=[ExecutorOption("fault", str, "", "the fault to plant")])
"""

SUITE = """
name = "trust"
seeds = [0, 1]
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
"model.upsampler" = ["nearest", "bilinear"]
"""

N, B = "upsampler=nearest", "upsampler=bilinear"  # the variants' labels
WATCHDOG_S = 120  # the preflight builds a tiny model; an endless loop runs far past this


class Hung(Halt):
    """The command ran past the watchdog (a Halt: segbench takes it for no plugin's failure)."""


@contextlib.contextmanager
def watchdog(seconds):
    def expire(signum, frame):
        raise Hung(f"segbench run did not end within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def run_with(tmp_path, write_suite, capsys):
    plugin = tmp_path / "misbehaving_executor.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    suite = write_suite(SUITE)

    def run(fault, *extra):
        argv = ["run", str(suite), "-p", str(plugin), "-p", "no:reporters", "-o", str(tmp_path / "out"), "-q",
                "--executor", "misbehaving", "--fault", fault, *extra]
        with watchdog(WATCHDOG_S):
            code = main(argv)
        out, err = capsys.readouterr()
        paths = (tmp_path / "out").glob("trust/runs/*/seed-*/record.json")
        records = {(r["label"], r["seed"]): r for r in (json.loads(path.read_text()) for path in paths)}
        return code, out, err, records

    return run


def rounds_sent(out):
    return ast.literal_eval(out.split("rounds sent: ")[1].splitlines()[0])  # the plugin printed its rounds at close()


def test_a_run_dropped_once_is_sent_again_and_the_drop_is_named(run_with):
    code, out, err, records = run_with("drop_once")
    assert code == 0, err
    assert rounds_sent(out) == [[(N, 0), (N, 1), (B, 0), (B, 1)], [(N, 0)]]
    assert f'warning: executor "misbehaving" did not return run {N} seed=0; it is sent again' in err
    assert sorted(records) == [(B, 0), (B, 1), (N, 0), (N, 1)]
    assert all(r["status"] == "ok" for r in records.values())


def test_a_run_dropped_always_fails_naming_the_executor_and_the_other_records_stay(run_with):
    code, out, err, records = run_with("drop_always")
    assert code == 1
    assert rounds_sent(out) == [[(N, 0), (N, 1), (B, 0), (B, 1)], [(N, 0)]], \
        "sent twice, then failed: no endless rounds"
    lost = records[(N, 0)]
    assert (lost["status"], lost["error"]["type"]) == ("failed", "RunNotReturned")
    assert lost["error"]["message"] == 'executor "misbehaving" did not return this run (sent 2 times)'
    assert f'run(s) failed: {N} seed 0: RunNotReturned: executor "misbehaving" did not return this run' in err
    assert [r["status"] for key, r in sorted(records.items()) if key != (N, 0)] == ["ok", "ok", "ok"]


def test_a_record_returned_twice_keeps_the_first_and_names_the_run(run_with):
    code, _, err, records = run_with("duplicate")
    assert code == 0, err
    assert f'warning: executor "misbehaving" returned run {N} seed=0 twice; the first record is kept' in err
    assert records[(N, 0)]["metrics"]["miou"] == 0.5, "the first record, not the duplicate (0.9)"


def test_records_of_runs_never_sent_are_ignored_and_named(run_with, tmp_path):
    code, _, err, records = run_with("stranger")
    assert code == 0, err
    assert (f"warning: executor \"misbehaving\" returned a record of a run it was not sent (variant '{N}', id "
            in err and "seed 99); ignored, not written" in err)
    assert "returned str 'not a record' where a run's record (a dict) was expected; ignored" in err
    assert sorted(seed for _, seed in records) == [0, 0, 1, 1], "seed 99 was not written"


def test_a_record_of_the_wrong_variant_is_a_duplicate_then_a_stranger_and_the_run_fails(run_with):
    code, out, err, records = run_with("wrong_variant")
    assert code == 1
    assert f'executor "misbehaving" returned run {B} seed=0 twice' in err, "the wrong variant's record came first"
    assert f"returned a record of a run it was not sent (variant '{B}'" in err, "round 2 sent nearest seed 0 only"
    assert rounds_sent(out)[1] == [(N, 0)]
    assert records[(N, 0)]["error"]["type"] == "RunNotReturned"


def test_fail_fast_stops_at_a_run_the_executor_did_not_return(run_with):
    code, out, _, records = run_with("drop_always", "--fail-fast")
    assert code == 1 and records[(N, 0)]["status"] == "failed"


def test_rounds_are_bounded_even_if_runs_were_sent_again_without_end(run_with, monkeypatch):
    """A guard beside the missing-twice rule: past round_limit, exit 1 naming the runs."""
    monkeypatch.setattr(runner, "MISSING_LIMIT", 10**9)
    monkeypatch.setattr(runner, "round_limit", lambda suite: 3)
    code, out, err, records = run_with("drop_always")
    assert code == 1
    assert len(rounds_sent(out)) == 3
    assert f'executor "misbehaving": 1 run(s) still not returned after 3 rounds: {N} seed=0; the finished runs are kept' in err
    assert len(records) == 3


def test_an_executor_that_raises_fails_the_runs_it_kept_and_its_traceback_is_logged(run_with, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_CRASH_DIR", str(tmp_path / "logs"))
    code, out, err, records = run_with("raise_midway")
    assert code == 1, "runs failed: exit 1, not an internal error (3)"
    assert rounds_sent(out) == [[(N, 0), (N, 1), (B, 0), (B, 1)]], "its runs failed at once, not sent again"
    assert [records[key]["status"] for key in [(N, 0), (N, 1)]] == ["ok", "ok"], "what it returned is kept"
    for key in [(B, 0), (B, 1)]:
        assert records[key]["error"]["message"] == ('executor "misbehaving" raised before returning this run: '
                                                    "ConnectionError: the cluster went away")
    (log,) = (tmp_path / "logs").glob("executor-misbehaving-*.log")
    assert "ConnectionError: the cluster went away" in log.read_text() and "Traceback" in log.read_text()
    assert f'executor "misbehaving" raised ConnectionError: the cluster went away; the runs it had not returned fail' in err
    assert str(log) in err


def test_a_malformed_record_fails_its_run_naming_the_executor_and_the_field(run_with):
    code, _, err, records = run_with("malformed")
    assert code == 1
    failed = records[(N, 0)]
    assert failed["status"] == "failed" and failed["error"]["type"] == "MalformedRecord"
    assert failed["error"]["message"].startswith('executor "misbehaving" returned a record that is no run record: ')
    assert "metrics" in failed["error"]["message"]
    assert [r["status"] for key, r in sorted(records.items()) if key != (N, 0)] == ["ok", "ok", "ok"]
