"""Command line: parses arguments, calls the library, maps errors to exit codes.

Exit codes: 0 success, 1 some runs failed (or, for ``segbench gate``, a regression),
2 bad input or usage, 3 internal error (one line here, the traceback in a crash log).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
import traceback

# Light modules only (no torch, pandas or matplotlib at import): every command imports this
# module, and those that read results must start at once (tests/test_layering.py).
from . import __version__, api, crash, gate
from . import schema as suite_schema
from .doctor import format_diagnosis
from .errors import SegbenchError
from .extensions import ReporterError, format_extensions
from .format import format_components, format_matrix, format_plan, format_stats
from .outputs import image_suffixes, output_file
from .stored_report import where_written
from .text import one_line, terminal

DATA_CACHE_FLAGS = ("--data-cache", "--cache-dir")
WIDE_HELP = "show every column of the summary (by default the table fits 100 columns)"
DATA_CACHE_HELP = "decoded-sample cache (default: $SEGBENCH_DATA_CACHE, else the user cache dir)"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    with crash.sigterm_stops_cleanly():  # SIGTERM stops as Ctrl-C does: one line, temporary files removed
        try:
            return _main(argv)
        except KeyboardInterrupt as exc:  # before a command started, or while printing its outcome
            return stopped(exc)


def _main(argv) -> int:
    try:
        parser = build_parser(run_executors(argv), export_reporter(argv))
    except SegbenchError as exc:  # a plugin that -p names, or an installed one, does not load
        print(f"segbench: error: {terminal(exc)}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - as below: a bug is exit 3, never a bare traceback
        return crash.report_internal_error(exc, argv, "--debug" in argv)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - as below
        print(f"segbench: error: {terminal(crash.foreign_base_exception(exc))}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    args.argv = argv  # for the crash log of a reporter that fails
    absolute_paths(args)
    try:
        with crash.step(f"running `segbench {args.command}`"):
            code = args.handler(args)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return code
    except SegbenchError as exc:
        print(f"segbench: error: {terminal(exc)}", file=sys.stderr)  # it may quote suite text
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return stopped(exc)
    except SystemExit as exc:  # only plugin code calls sys.exit() inside a command
        print(f"segbench: error: a plugin called sys.exit({exc.code!r}) while {getattr(exc, 'segbench_step', 'loading')}; "
              "a plugin must raise an exception instead", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `segbench list | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for SIGPIPE
    except Exception as exc:  # noqa: BLE001 - the one boundary that turns any bug into exit 3
        return crash.report_internal_error(exc, argv, args.debug)
    except BaseException as exc:  # noqa: BLE001 - only plugin code raises one that is no Exception
        print(f"segbench: error: {terminal(crash.foreign_base_exception(exc))}", file=sys.stderr)
        return 2


def stopped(exc: KeyboardInterrupt) -> int:
    """Ctrl-C (130), SIGTERM (143) or SIGHUP (129): one line saying what is kept."""
    finished = getattr(exc, "finished_runs", None)
    if isinstance(exc, crash.Terminated):
        print(f"segbench: terminated: {finished} finished runs kept" if finished is not None else
              "segbench: terminated; finished runs are kept", file=sys.stderr)
        return exc.exit_code
    print(f"segbench: interrupted; finished runs are kept{f' ({finished} finished runs)' if finished is not None else ''}", file=sys.stderr)
    return 130


OUTPUT_ARGUMENTS = ("output", "cache_dir", "directory", "markdown", "junit")


def absolute_paths(args) -> None:
    """Every path the command writes to, made absolute once, now: a plugin that calls
    os.chdir later must not move where the results go (results folders it reads are made
    absolute by segbench.store)."""
    for name in OUTPUT_ARGUMENTS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            setattr(args, name, os.path.abspath(value))


def run_executors(argv) -> dict:
    """For ``segbench run``, the installed executors and those of its ``-p`` plugins, whose
    options become flags of the command (as pytest's plugins add theirs); others load none."""
    if next((arg for arg in argv if not arg.startswith("-")), None) != "run":
        return {}
    plugins, _ = _plugin_flag(argparse.ArgumentParser(add_help=False)).parse_known_args(argv)
    return {executor.name: executor for executor in api.list_executors(plugins.plugin)}


def export_reporter(argv):
    """For ``segbench export NAME``, the reporter NAME (installed, or of its ``-p``
    plugins), whose options become flags of the command; None otherwise."""
    words = _plugin_flag(argparse.ArgumentParser(add_help=False))
    words.add_argument("words", nargs="*")
    known, _ = words.parse_known_args(argv)
    if known.words[:1] != ["export"] or len(known.words) < 2:
        return None
    return api.find_reporter(known.words[1], known.plugin)  # an unknown name is bad input, whatever flags follow


def _plugin_flag(parser):
    parser.add_argument("-p", "--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="load a plugin module, or a .py file (a relative path is read from the current directory); "
                             "-p no:NAME disables the installed plugin NAME (an entry point or a distribution); repeatable")
    return parser


def add_executor_flags(run, executors: dict):
    """``--executor`` and one flag per executor option. Two executors may share an option
    name (one flag); each converts the text with its own declaration (segbench.extensions)."""
    names = ", ".join(executors) or "(none installed)"
    run.add_argument("--executor", default="local", help=f"what runs the runs: {names} (default: local, in this process)")
    flags = {}
    for executor in executors.values():
        for option in executor.options:
            flags.setdefault(option.flag, (option, []))[1].append(executor.name)
    group = run.add_argument_group("executor options")
    for flag, (option, users) in flags.items():
        try:
            group.add_argument(flag, dest=f"executor_option:{option.name}", default=argparse.SUPPRESS,
                               action="append" if option.repeat else "store",
                               metavar=option.metavar or option.name.upper(),
                               help=f"{option.help} [--executor {', '.join(users)}]")
        except argparse.ArgumentError:
            raise SegbenchError(f"executor {', '.join(users)} declares the option {flag}, which `segbench run` has already; "
                                "rename the option") from None


def executor_options(args) -> dict:
    return {key.removeprefix("executor_option:"): value for key, value in vars(args).items() if key.startswith("executor_option:")}


def build_parser(executors=None, exporter=None) -> argparse.ArgumentParser:
    plugin_options = _plugin_flag(argparse.ArgumentParser(add_help=False))
    suite_options = argparse.ArgumentParser(add_help=False, parents=[plugin_options])
    suite_options.add_argument("suite", help="suite file (TOML)")
    suite_options.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                               help="override any key of the suite (docs/suite-reference.md lists them), e.g. train.epochs=1, "
                                    "seeds=[0,1] or 'ablate.\"model.upsampler\"=[\"nearest\"]' (value in TOML syntax; repeatable)")

    parser = argparse.ArgumentParser(prog="segbench", description="Ablation harness for segmentation components.")
    parser.add_argument("--version", action="version", version=f"segbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[suite_options], help="train every variant x seed and write the report")
    run.add_argument("-o", "--output", default="results", help="results folder (default: results/)")
    run.add_argument("--rerun", action="store_true", help="redo runs that already have a finished record")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument("--wide", action="store_true", help=WIDE_HELP)
    run.add_argument(*DATA_CACHE_FLAGS, dest="cache_dir", metavar="DIR", help=DATA_CACHE_HELP)
    run.add_argument("--preflight-on", choices=["driver", "workers"], default="driver",
                     help="where the checks before training run: on this machine (default), or on one of the executor's workers")
    add_executor_flags(run, executors or {})
    run.set_defaults(handler=run_command)

    validate = commands.add_parser("validate", parents=[suite_options], help="check a suite and print its variants x seeds; trains nothing")
    validate.add_argument(*DATA_CACHE_FLAGS, dest="cache_dir", metavar="DIR", help=DATA_CACHE_HELP)
    validate.add_argument("--isolated", action="store_true", help="run the preflight in a process of its own, so that a plugin that "
                          "crashes it is named (a fresh interpreter: a few seconds more)")
    validate.set_defaults(handler=validate_command)

    listing = commands.add_parser("list", parents=[plugin_options], help="list installed components, executors or reporters")
    listing.add_argument("kind", nargs="?", help="upsamplers, architectures, losses, metrics or datasets; or executors or reporters")
    listing.add_argument("--matrix", action="store_true", help="which upsamplers fit which architectures")
    listing.set_defaults(handler=list_command)
    plan = commands.add_parser("plan", parents=[suite_options], help="seeds each comparison needs, from the spread of earlier results")
    plan.add_argument("--from", dest="results", default="results", metavar="DIR",
                      help="results of this suite (or of a pilot run of it), or a report's runs.csv, to take the paired spread from (default: results/)")
    plan.add_argument("--effect", type=float, default=None, help="the difference to detect, in the metric's units (default: the margin)")
    plan.add_argument("--power", type=float, default=None, help="the power to plan for (default: [stats] power, 0.8)")
    plan.add_argument("--json", action="store_true", help="print JSON (a stable schema, for scripts)")
    plan.set_defaults(handler=plan_command)
    add_schema_command(commands)
    add_data_commands(commands, plugin_options)
    add_gate_commands(commands)
    add_report_command(commands, plugin_options)
    add_export_command(commands, plugin_options, exporter)
    add_debug_flag(parser)
    return parser


def add_debug_flag(parser, top=True):
    """``--debug`` before or after the command: print the traceback of an internal error."""
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="on an internal error (exit 3), also print its traceback (always written to the crash log)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in set(action.choices.values()):
                add_debug_flag(command, top=False)


def add_data_commands(commands, plugin_options):
    source_options = argparse.ArgumentParser(add_help=False, parents=[plugin_options])
    source_options.add_argument("source", help="a suite file (TOML), or a dataset name whose parameters --set gives")
    source_options.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides", help="override a suite setting, or set a dataset parameter (value in TOML syntax)")
    source_options.add_argument(*DATA_CACHE_FLAGS, dest="cache_dir", metavar="DIR", help=DATA_CACHE_HELP)

    data = commands.add_parser("data", help="prepare, inspect and export a suite's datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    prepare = data_commands.add_parser("prepare", parents=[source_options], help="decode the datasets into the sample cache, with a progress bar")
    prepare.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(handler=data_prepare_command)
    stats = data_commands.add_parser("stats", parents=[source_options], help="images per split; pixels and images per class; ignored pixels")
    stats.add_argument("--split", choices=("train", "val"), help="one split only (default: both)")
    stats.add_argument("--json", action="store_true", help="print JSON (a stable schema, for scripts)")
    stats.set_defaults(handler=data_stats_command)
    show = data_commands.add_parser("show", parents=[source_options], help="draw one sample with its mask overlaid and a class legend")
    show.add_argument("--split", choices=("train", "val"), default="train", help="split (default: train)")
    show.add_argument("--index", type=int, default=0, help="sample index in the split (default: 0)")
    show.add_argument("-o", "--output", required=True, metavar="FILE.png", help="where to write the picture")
    show.set_defaults(handler=data_show_command)
    export = data_commands.add_parser("export", parents=[source_options], help="write the dataset in COCO or VOC layout")
    export.add_argument("--format", required=True, choices=("coco", "voc"), help="the layout to write")
    export.add_argument("directory", metavar="DIR", help="an empty or new folder")
    export.set_defaults(handler=data_export_command)


RESULTS_HELP = "a results folder: the output root holding one suite (results/) or a suite folder (results/<suite>/)"


def add_schema_command(commands):
    schema = commands.add_parser("schema", help="print the suite file's JSON Schema (draft-07), for editors that check and complete suites")
    schema.add_argument("--markdown", action="store_true", help="print the key reference (docs/suite-reference.md) instead")
    schema.set_defaults(handler=schema_command)


def schema_command(args) -> int:
    print(suite_schema.reference_markdown() if args.markdown else json.dumps(suite_schema.json_schema(), indent=2), end="")
    if not args.markdown:
        print()
    return 0


def add_report_command(commands, plugin_options):
    report = commands.add_parser("report", parents=[plugin_options],
                                 help="rebuild a results folder's report from its records alone (trains nothing)")
    report.add_argument("results", metavar="DIR", help=RESULTS_HELP)
    report.add_argument("--wide", action="store_true", help=WIDE_HELP)
    report.set_defaults(handler=report_command)
    doctor = commands.add_parser("doctor", help="list damaged files of a results folder and the runs `segbench run` would redo; "
                                 "exit 0 when nothing is damaged, 1 when something is",
                                 description="Reads only: lists the damaged files of a results folder (path and problem), the "
                                 "runs `segbench run` would redo and the finished runs. Exit 0 when nothing is damaged, 1 when "
                                 "something is, 2 when the folder is not a results folder.")
    doctor.add_argument("results", metavar="DIR", help=RESULTS_HELP)
    doctor.set_defaults(handler=doctor_command)


def report_command(args) -> int:
    report = api.rebuild_report(args.results, args.plugin)
    print(report["wide_text" if args.wide else "text"])
    print(f"\n{terminal(where_written(report))}")
    return 1 if reporters_failed(report, args) else 0


def add_export_command(commands, plugin_options, exporter=None):
    """``segbench export NAME DIR`` with the options NAME declares as flags (an exporter
    registers them like an executor: segbench.ReporterOption)."""
    export = commands.add_parser("export", parents=[plugin_options], help="send a results folder to a tracker with an exporter "
                                 "(`segbench list reporters`), e.g. `segbench export mlflow results/` (install segbench[mlflow]); "
                                 "`segbench export NAME --help` lists NAME's options")
    export.add_argument("exporter", metavar="NAME", help="the exporter (a reporter), e.g. mlflow")
    export.add_argument("results", metavar="DIR", help=RESULTS_HELP)
    if exporter is not None and exporter.options:
        group = export.add_argument_group(f"options of {exporter.name}")
        for option in exporter.options:
            try:
                group.add_argument(option.flag, dest=f"reporter_option:{option.name}", default=argparse.SUPPRESS,
                                   metavar=option.metavar or option.name.upper(), help=option.help)
            except argparse.ArgumentError:
                raise SegbenchError(f"reporter {exporter.name} declares the option {option.flag}, which `segbench export` has "
                                    "already; rename the option") from None
    export.set_defaults(handler=export_command)


def export_command(args) -> int:
    options = {key.removeprefix("reporter_option:"): value for key, value in vars(args).items() if key.startswith("reporter_option:")}
    try:
        result = api.run_reporter(args.exporter, args.results, options, args.plugin)
    except ReporterError as exc:
        reporters_failed({"failures": [exc.failure]}, args)
        return exc.exit_code
    print(terminal(getattr(result, "text", None) or f"{args.exporter}: exported {args.results}"))
    return 0


def reporters_failed(report, args) -> bool:
    """Name each reporter that failed (its outputs are missing; the others were written),
    with its traceback in the crash-log folder (and here with --debug)."""
    failures = report.get("failures") or []
    for failure in failures:
        error = failure.error
        error.segbench_step = f'running reporter "{failure.reporter.name}"'
        log = crash.write_crash_log(error, args.argv, kind=f"reporter-{failure.reporter.name}")
        print(f"segbench: {terminal(one_line(str(failure)))} (traceback: {log}; --debug prints it)", file=sys.stderr)
        if args.debug:
            traceback.print_exception(error, file=sys.stderr)
    return bool(failures)


def doctor_command(args) -> int:
    diagnosis = api.doctor(args.results)
    print(format_diagnosis(diagnosis))
    return diagnosis.exit_code


def add_gate_commands(commands):
    baseline = commands.add_parser("baseline", help="save a result set as the baseline `segbench gate` compares with")
    baseline_commands = baseline.add_subparsers(dest="baseline_command", required=True, metavar="BASELINE_COMMAND")
    save = baseline_commands.add_parser("save", help="write every variant's per-seed metrics and cost to a JSON file")
    save.add_argument("results", metavar="DIR", help=RESULTS_HELP)
    save.add_argument("-o", "--output", metavar="FILE.json", help="where to write it (default: baselines/<suite>.json beside the suite folder)")
    save.set_defaults(handler=baseline_save_command)

    gating = commands.add_parser("gate", help="exit 1 when results regress from a baseline beyond the rules' thresholds and the seed noise")
    gating.add_argument("results", metavar="DIR", help=RESULTS_HELP)
    gating.add_argument("--baseline", required=True, metavar="FILE.json", help="a file written by `segbench baseline save`")
    gating.add_argument("--rule", action="append", default=[], dest="rules", metavar="RULE",
                        help='METRIC:max_drop=X or METRIC:max_increase=X, X absolute or N%%, optionally ,noise=ignore '
                             '(repeatable; default: the [gate] rules of the suite stored with the results)')
    gating.add_argument("--markdown", metavar="FILE", help="also write a Markdown table of every check (e.g. for $GITHUB_STEP_SUMMARY)")
    gating.add_argument("--junit", metavar="FILE", help="also write JUnit XML, one test case per rule x variant")
    gating.set_defaults(handler=gate_command)

    compare = commands.add_parser("compare", help="the same variants in two result sets: differences, 95%% CIs, p-values")
    compare.add_argument("dir_a", metavar="DIR_A", help="the result set before the change")
    compare.add_argument("dir_b", metavar="DIR_B", help="the result set after it")
    compare.add_argument("--markdown", metavar="FILE", help="also write the comparison as Markdown")
    compare.set_defaults(handler=compare_command)


def run_command(args) -> int:
    outcome = api.run(args.suite, args.output, args.plugin, parse_overrides(args.overrides), args.rerun, args.fail_fast,
                      args.quiet, args.cache_dir, args.executor, executor_options=executor_options(args),
                      preflight_on=args.preflight_on)
    print(outcome.report["wide_text" if args.wide else "text"])
    print(f"\n{terminal(where_written(outcome.report))}")
    failed_reporters = reporters_failed(outcome.report, args)
    if outcome.failures:
        names = "; ".join(one_line(f"{r['label']} seed {r['seed']}: {r['error']['type']}: {r['error']['message']}") for r in outcome.failures)
        print(f"segbench: {len(outcome.failures)} run(s) failed: {names}", file=sys.stderr)
        return 1
    return 1 if failed_reporters else 0


def validate_command(args) -> int:
    suite = api.prepare(args.suite, args.plugin, parse_overrides(args.overrides), args.cache_dir, args.isolated)
    print(format_plan(suite))
    return 0


def plan_command(args) -> int:
    from .planning import format_plan_table  # heavy: scipy; kept out of the commands that need no statistics

    plan = api.plan(args.suite, args.results, args.plugin, parse_overrides(args.overrides), args.effect, args.power)
    print(json.dumps(plan, indent=2) if args.json else format_plan_table(plan))
    return 0


def data_prepare_command(args) -> int:
    print(api.prepare_data(args.source, args.plugin, parse_overrides(args.overrides), args.cache_dir, not args.quiet))
    return 0


def data_stats_command(args) -> int:
    stats = api.data_stats(args.source, args.plugin, parse_overrides(args.overrides), args.cache_dir, args.split)
    if args.json:
        print(json.dumps(stats if len(stats) > 1 else stats[0], indent=2))
    else:
        print("\n\n".join(format_stats(entry) for entry in stats))
    return 0


def data_show_command(args) -> int:
    output_file(args.output, "-o/--output", image_suffixes())
    path = api.show_sample(args.source, args.split, args.index, args.output, args.plugin, parse_overrides(args.overrides), args.cache_dir)
    print(f"wrote {path}")
    return 0


def data_export_command(args) -> int:
    snippet = api.export_data(args.source, args.format, args.directory, args.plugin, parse_overrides(args.overrides), args.cache_dir)
    print(f"wrote {args.format.upper()} layout to {args.directory}; read it back with:\n\n[dataset]\n{snippet}")
    return 0


def baseline_save_command(args) -> int:
    if args.output:
        output_file(args.output, "-o/--output", (".json",))
    saved = gate.save_baseline(args.results, args.output)
    print(f"wrote {saved.path}: suite {saved.suite}, {saved.variants} variant(s), {saved.runs} finished run(s)")
    if saved.unsaved:
        print(f"not in the baseline (no finished run): {'; '.join(saved.unsaved)}")
    return 0


def gate_command(args) -> int:
    check_report_files(args)
    result = gate.run_gate(args.results, args.baseline, args.rules)
    if args.markdown:
        gate.write_file(args.markdown, gate.gate_markdown(result))
    if args.junit:
        gate.write_file(args.junit, gate.gate_junit(result))
    print(gate.gate_text(result))
    return result.exit_code


def compare_command(args) -> int:
    check_report_files(args)
    comparison = gate.compare_results(args.dir_a, args.dir_b)
    if args.markdown:
        gate.write_file(args.markdown, gate.compare_markdown(comparison))
    print(gate.compare_text(comparison))
    return 0


def check_report_files(args):
    if args.markdown:
        output_file(args.markdown, "--markdown")
    if getattr(args, "junit", None):
        output_file(args.junit, "--junit")


def list_command(args) -> int:
    if args.kind in ("executors", "executor", "reporters", "reporter"):
        kind = args.kind.removesuffix("s")
        entries = api.list_executors(args.plugin) if kind == "executor" else api.list_reporters(args.plugin)
        print(format_extensions(kind, entries))
    elif args.matrix:
        print(format_matrix(api.compatibility_matrix(args.plugin)))
    else:
        print(format_components(api.list_components(args.kind, args.plugin)))
    return 0


def parse_overrides(pairs) -> dict:
    """``KEY=VALUE`` pairs; VALUE is read as TOML (``1``, ``"x"``, ``[1, 2]``), else as text
    (``train.loss=dice``). What KEY may name is checked with the suite (segbench.suite)."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise SegbenchError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set train.epochs=1")
        overrides[key.strip()] = _override_value(pair, value)
    return overrides


def _override_value(pair, text):
    """Text that starts like a TOML list, table or string but does not parse is an error,
    not a string nobody meant; so is more than one value, or none."""
    try:
        parsed = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError as exc:
        if not text.strip():
            raise SegbenchError(f'--set {pair!r}: no value; e.g. --set train.epochs=1 (an empty text is "")') from None
        if text.lstrip()[0] in "[{\"'":
            raise SegbenchError(f"--set {pair!r}: {text!r} is not a TOML value: {exc}") from None
        return text
    if set(parsed) != {"value"}:
        raise SegbenchError(f"--set {pair!r}: expected one TOML value after '=', got {text!r}")
    return parsed["value"]


if __name__ == "__main__":
    sys.exit(main())
