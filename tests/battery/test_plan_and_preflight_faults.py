"""Battery rows for issue 23, item 11: faults say what happened. ``plan`` refuses a runs.csv
whose seeds are not integers or repeat a run (exit 2, naming the rows), and plans a spread
within rounding of 0 as it plans 0; the preflight's time is bounded by ``timeout_s`` and a
plugin that hangs or dies there is named (exit 2). The damaged-results rows (gate, doctor,
report) are in test_damaged_results.py."""

import json

import pytest

from .harness import Case, check_case, run_case, tiny

PLAN_SUITE = """
name = "planned"
seeds = [0, 1, 2]
baseline = { "model.upsampler" = "nearest" }
[ablate]
"model.upsampler" = ["nearest", "bicubic"]
"""
HEADER = "variant_id,label,seed,status,miou,wall_seconds\n"


def runs_csv(*rows, spread=0.01, base=0.5, ahead=0.05):
    """A runs.csv of both variants over seeds 0-2 (the baseline at ``base``, bicubic ahead
    by ``ahead`` +- ``spread``), with ``rows`` (text lines) appended."""
    lines = [f"a,upsampler=nearest,{seed},ok,{base!r},1" for seed in range(3)]
    lines += [f"b,upsampler=bicubic,{seed},ok,{base + ahead + spread * (seed - 1)!r},1" for seed in range(3)]

    def setup(tmp):
        (tmp / "runs.csv").write_text(HEADER + "\n".join(lines + list(rows)) + "\n")
    return setup


def with_seed(text):
    def setup(tmp):
        runs_csv()(tmp)
        path = tmp / "runs.csv"
        lines = path.read_text().splitlines()
        lines[2] = lines[2].replace(",1,ok,", f",{text},ok,")
        path.write_text("\n".join(lines) + "\n")
    return setup


PLAN = ["plan", "{suite}", "--from", "{tmp}/runs.csv"]

CASES = [
    *[Case(f"plan-seed-{name}", PLAN, 2, f"runs.csv: column 'seed' must hold an integer seed in every row: row 2 holds {shown}",
           suite=PLAN_SUITE, setup=with_seed(text))
      for name, text, shown in (("text", "one", "'one'"), ("fractional", "1.5", "'1.5'"), ("empty", "", "''"), ("inf", "inf", "'inf'"))],
    Case("plan-duplicate-row", PLAN, 2, "the same variant and seed appear in rows 4 and 7 (variant 'upsampler=bicubic' seed 0)",
         suite=PLAN_SUITE, setup=runs_csv("b,upsampler=bicubic,0,ok,0.56,1")),
    Case("plan-seed-written-as-float", PLAN, 0, "seeds to detect", suite=PLAN_SUITE, setup=with_seed("1.0")),
    Case("plan-spread-of-rounding", PLAN, 0, "do not vary (SD 0, or within 1e-12 of the values' scale: taken as 0)",
         suite=PLAN_SUITE, setup=runs_csv(spread=1e-18, base=0.0, ahead=0.0)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


@pytest.mark.parametrize("spread", [1e-18, 1e-15, 3e-13])
def test_a_spread_within_rounding_of_0_plans_as_0_does(spread, tmp_path):
    """The seeds a plan asks for do not jump from the sign flips' floor to "> 10000" when
    the paired SD is 1e-18 rather than 0 (with --effect 1e-20, 1e-18 would be a real spread
    100 times the effect)."""
    plans = {}
    for name, value in (("zero", 0.0), ("rounding", spread)):
        folder = tmp_path / name
        folder.mkdir()
        case = Case(name, [*PLAN, "--json", "--effect", "1e-20"], 0, "", suite=PLAN_SUITE, setup=runs_csv(spread=value, base=0.0, ahead=0.0))
        code, text = run_case(case, folder)
        assert code == 0, text
        plans[name] = json.loads(text)["variants"][0]
    rounding, zero = plans["rounding"], plans["zero"]
    assert rounding["observed_paired_sd"] > 0 and rounding["paired_sd"] == 0 == zero["paired_sd"] and rounding["no_spread"]
    assert (rounding["seeds_to_detect"], rounding["seeds_to_show_equivalence"]) == (zero["seeds_to_detect"], zero["seeds_to_show_equivalence"])
    assert rounding["seeds_to_detect"] == 6  # 2 / 2^6 <= 0.05: the sign flips' floor at alpha 0.05, one comparison


def test_a_real_spread_is_kept(tmp_path):
    case = Case("real", [*PLAN, "--json"], 0, "", suite=PLAN_SUITE, setup=runs_csv(spread=0.01))
    code, text = run_case(case, tmp_path)
    row = json.loads(text)["variants"][0]
    assert code == 0 and row["paired_sd"] == row["observed_paired_sd"] == pytest.approx(0.01) and not row["no_spread"]


# The preflight: each step within timeout_s; a plugin that hangs or dies there is named.

FAULTY = '''
import os
import signal
import time

from segbench import hookimpl


def slow(in_channels, out_channels, scale_factor):
    """Hangs in its factory."""
    time.sleep(1000)


def stubborn(in_channels, out_channels, scale_factor):
    """Swallows what interrupts it, and hangs again."""
    try:
        time.sleep(1000)
    except BaseException:
        time.sleep(1000)


def dies(in_channels, out_channels, scale_factor):
    """Ends its process."""
    os._exit(9)


def killed(in_channels, out_channels, scale_factor):
    """Kills its process."""
    os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def segbench_upsamplers(register):
    for factory in (slow, stubborn, dies, killed):
        register.add_upsampler(factory.__name__, factory, requires=["module"])
'''


def faulty_plugin(tmp):
    (tmp / "faulty.py").write_text(FAULTY)


def preflight_case(name, command, upsampler, says, *extra):
    argv = [command, "{suite}", "-p", "{tmp}/faulty.py", "--set", f'ablate."model.upsampler"=["nearest", "{upsampler}"]',
            "--set", "train.timeout_s=2", *extra]
    if command == "run":
        argv += ["-o", "{tmp}/out", "-q"]
    return Case(name, argv, 2, says, suite=tiny(), setup=faulty_plugin)


HUNG = "the preflight did not finish a step within train.timeout_s = 2 s: it was still checking variant 'upsampler={}': "
BUILDING = "with upsampler {}()"
PROCESS = ("--executor", "process", "--workers", "1")

PREFLIGHT_CASES = [
    # in this process (the local executor, validate): the alarm interrupts the hang
    preflight_case("validate-hangs", "validate", "slow", HUNG.format("slow")),
    preflight_case("validate-hangs-names-the-upsampler", "validate", "slow", BUILDING.format("slow")),
    preflight_case("validate-hangs-and-swallows-the-alarm", "validate", "stubborn", HUNG.format("stubborn")),
    preflight_case("run-local-hangs", "run", "slow", HUNG.format("slow")),
    # in a process of its own (any other executor): a hang is killed, a death is named
    preflight_case("run-process-hangs", "run", "slow", HUNG.format("slow"), *PROCESS),
    preflight_case("run-process-os-exit", "run", "dies", "the preflight died (exit code 9) while checking variant 'upsampler=dies'",
                   *PROCESS),
    preflight_case("run-process-sigkill", "run", "killed",
                   "the preflight died (signal 9 (SIGKILL)) while checking variant 'upsampler=killed'", *PROCESS),
    preflight_case("validate-isolated-os-exit", "validate", "dies", "the preflight died (exit code 9) while checking variant "
                   "'upsampler=dies': one training step and one evaluation forward, building architecture unet(", "--isolated"),
]


@pytest.mark.parametrize("case", PREFLIGHT_CASES, ids=str)
def test_preflight_case(case, tmp_path):
    check_case(case, tmp_path)
    assert not (tmp_path / "out").exists(), "a preflight that stops leaves no results folder behind"


def test_plan_never_opens_a_named_pipe_as_runs_csv(tmp_path):
    import os

    os.mkfifo(tmp_path / "runs.csv")
    check_case(Case("plan-fifo", PLAN, 2, "runs.csv: not a regular file", suite=PLAN_SUITE), tmp_path)
