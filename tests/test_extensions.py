"""Executors and reporters as plugins (segbench/extensions.py): what a registration may say,
duplicates, options from the command line, the order reporters run in, the sections they add
to the page, and that one failing reporter costs no other output. No training here except
one `segbench run` through a plugin's stand-in executor (its preflight builds a tiny model)."""

import textwrap
from html import escape

import pytest

from segbench import plugins
from segbench.cli import main
from segbench.components import Catalogue, Registrar
from segbench.errors import PluginError, SegbenchError
from segbench.extensions import (PAGE_ORDER, ExecutorOption, ReportContext, ReporterOption, ReportSection, chosen_reporters,
                                 run_reporters)
from segbench.report import write_report
from segbench.runner import run_prepared
from segbench.suite import load_suite


def registrar():
    return Registrar("sbtest-plugin", "9.9")


def make(*, workers: int = 1, label: str = "x"):
    return ("made", workers, label)


# --- registration --------------------------------------------------------------------------


@pytest.mark.parametrize("call, expected", [
    (lambda r: r.add_executor("no way", make), "a name must be an identifier"),
    (lambda r: r.add_executor("fine", "not callable"), "non-callable factory"),
    (lambda r: r.add_executor("fine", make, options=["workers"]), "expected ExecutorOption"),
    (lambda r: r.add_executor("fine", make, options=[ExecutorOption("workers", int), ExecutorOption("workers", int)]),
     "distinct identifier names"),
    (lambda r: r.add_executor("fine", make, options=[ExecutorOption("threads", int)]), "its factory takes no keyword threads"),
    (lambda r: r.add_reporter("fine", lambda context: None, default="yes"), "expected True or False"),
    (lambda r: r.add_reporter("fine", None), "non-callable write"),
    (lambda r: r.add_reporter("fine", lambda context: None, options=["uri"]), "expected ReporterOption"),
])
def test_an_invalid_registration_names_the_plugin_and_the_problem(call, expected):
    with pytest.raises(PluginError) as error:
        call(registrar())
    assert str(error.value).startswith('plugin "sbtest-plugin" registers') and expected in str(error.value)


def test_a_registration_keeps_its_provider_and_reads_the_description_off_the_docstring():
    register = registrar()

    def leaderboard(context):
        """Ranks the variants.

        More text."""

    register.add_executor("mine", make, options=[ExecutorOption("workers", int, 1)])
    register.add_reporter("board", leaderboard, default=False)
    executor, reporter = register.executors[0], register.reporters[0]
    assert (executor.provider, executor.version, executor.description) == ("sbtest-plugin", "9.9", "")
    assert (reporter.name, reporter.description, reporter.default, reporter.order) == ("board", "Ranks the variants.", False, 0)
    assert register.components == [], "executors and reporters are no components"


@pytest.mark.parametrize("kind", ["executor", "reporter"])
def test_a_name_provided_twice_names_both_providers(kind):
    first, second = Registrar("dist-a", "1"), Registrar("dist-b", "2")
    for register in (first, second):
        getattr(register, f"add_{kind}")("same", make if kind == "executor" else (lambda context: None))
    with pytest.raises(PluginError) as error:
        Catalogue(executors=first.executors + second.executors, reporters=first.reporters + second.reporters)
    assert str(error.value) == f'{kind} "same" is provided twice: by "dist-a" and by "dist-b"; uninstall one of them'


def test_an_unknown_executor_is_bad_input_with_the_valid_names():
    register = registrar()
    register.add_executor("process", make)
    with pytest.raises(SegbenchError) as error:
        Catalogue(executors=register.executors).executor("proces")
    assert str(error.value) == "unknown executor 'proces'; did you mean 'process'? Valid: process"


# --- executor options ----------------------------------------------------------------------


def built(given):
    register = registrar()
    register.add_executor("mine", make, options=[ExecutorOption("workers", int, 3), ExecutorOption("label", str, "x")])
    return register.executors[0].build(given)


def test_options_take_their_defaults_and_text_is_converted_by_its_declared_type():
    assert built({}) == ("made", 3, "x")
    assert built({"workers": "4"}) == ("made", 4, "x")  # from the command line
    assert built({"workers": 5, "label": "7"}) == ("made", 5, "7")  # from the API: as given


@pytest.mark.parametrize("given, expected", [
    ({"workers": "four"}, "--workers: invalid int value 'four'"),
    ({"threads": 2}, "--threads: not an option of --executor mine (it takes --workers, --label)"),
])
def test_a_bad_option_is_bad_input_naming_the_flag(given, expected):
    with pytest.raises(SegbenchError) as error:
        built(given)
    assert str(error.value).startswith(expected) and error.value.exit_code == 2


def test_a_factory_refusing_a_value_is_bad_input_naming_the_executor():
    def picky(*, workers: int = 1):
        raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")

    register = registrar()
    register.add_executor("picky", picky, options=[ExecutorOption("workers", int, 1)])
    with pytest.raises(SegbenchError) as error:
        register.executors[0].build({"workers": "0"})
    assert str(error.value) == "--executor picky: --workers must be an integer >= 1, got 0"


# --- reporters -------------------------------------------------------------------------------


def context(tmp_path):
    return ReportContext(records=[], meta={"name": "s"}, runs=None, summary=None, report_dir=tmp_path, suite_dir=tmp_path.parent)


def test_default_reporters_run_by_order_then_registration_and_exporters_last_as_named(tmp_path):
    calls = []
    register = registrar()

    def reporter(name, section=True):
        def write(context):
            calls.append((name, [s.title for s in context.sections], dict(context.options)))
            return [ReportSection(name, "")] if section else None
        return write

    register.add_reporter("page", reporter("page"), order=PAGE_ORDER)
    register.add_reporter("first", reporter("first"))
    register.add_reporter("export_b", reporter("export_b", section=False), default=False)
    register.add_reporter("second", reporter("second", section=False))
    register.add_reporter("export_a", reporter("export_a"), default=False,
                          options=[ReporterOption("uri"), ReporterOption("retries", int, 3)])
    reporters = Catalogue(reporters=register.reporters).reporters
    chosen = chosen_reporters(reporters, ["export_a"])
    assert [r.name for r in chosen] == ["first", "second", "page", "export_a"]  # export_b: not asked for
    assert run_reporters(chosen, context(tmp_path), {"export_a": {"uri": "x"}}) == []
    assert calls == [("first", [], {}), ("second", ["first"], {}), ("page", ["first"], {}),
                     ("export_a", ["first", "page"], {"uri": "x", "retries": 3})], "declared defaults fill in"
    with pytest.raises(SegbenchError, match=r"^--url: not an option of exporter export_a \(it takes --uri, --retries\)$"):
        run_reporters(chosen, context(tmp_path), {"export_a": {"url": "x"}})


def test_a_failing_reporter_is_recorded_and_the_others_still_run(tmp_path):
    register = registrar()
    register.add_reporter("broken", lambda context: 1 / 0)
    register.add_reporter("mixed", lambda context: [ReportSection("ok", ""), "not a section"])
    register.add_reporter("after", lambda context: [ReportSection("after", "")])
    seen = []
    register.add_reporter("page", lambda context: seen.extend(s.title for s in context.sections), order=PAGE_ORDER)
    failures = run_reporters(chosen_reporters(Catalogue(reporters=register.reporters).reporters), context(tmp_path))
    assert [str(f) for f in failures] == [
        'reporter "broken" of "sbtest-plugin" failed: ZeroDivisionError: division by zero',
        'reporter "mixed" of "sbtest-plugin" failed: TypeError: write() returned a list mixing ReportSection with other items',
    ]
    assert seen == ["after"]


RECORDS = [
    {"variant_id": v, "label": label, "seed": s, "status": "ok", "factors": {}, "wall_seconds": 1.0,
     "curves": {"epoch": [1], "miou": [m]}, "metrics": {"miou": m}, "cost": {"params": 10, "latency_ms": 1.0}}
    for v, label, base in (("a", "nearest", 0.5), ("b", "bilinear", 0.6)) for s, m in ((0, base), (1, base + 0.01))
]
META = {"name": "suite", "description": "", "path": "s.toml", "text": "", "baseline_id": "a", "variant_order": ["a", "b"],
        "primary": "miou", "metrics": ["miou"]}


def test_write_report_keeps_every_other_output_when_a_reporter_fails_and_shows_the_added_sections(tmp_path):
    register = registrar()
    register.add_reporter("broken", lambda context: 1 / 0)
    register.add_reporter("extra", lambda context: [ReportSection("<Extra> & more", f"<p id='extra'>{len(context.records)} runs</p>")])
    standard = {name: r for name, r in plugins.load_catalogue().reporters.items() if name != "plots"}  # plots: slow to draw
    report = write_report(RECORDS, META, tmp_path / "report", reporters={**standard, **Catalogue(reporters=register.reporters).reporters})
    assert [str(f) for f in report["failures"]] == ['reporter "broken" of "sbtest-plugin" failed: ZeroDivisionError: division by zero']
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"runs.csv", "summary.csv", "summary.md", "index.html"}
    page = (tmp_path / "report" / "index.html").read_text()
    assert f"<h2>{escape('<Extra> & more')}</h2><p id='extra'>4 runs</p>" in page
    assert page.index("<h2 id='summary'>Summary</h2>") < page.index("&lt;Extra&gt;") < page.index("<h2>Timing</h2>")


# --- through the command line ----------------------------------------------------------------

PLUGIN = """
    from segbench import hookimpl
    from segbench.extensions import ExecutorOption, ReportSection


    class StandIn:
        '''Records with a fixed value per run, at once: no training.'''

        shows_epochs = False

        def __init__(self, value):
            self.value = value

        def records(self, suite, pending, cache_dir, on_epoch=None):
            for variant, seed in pending:
                yield {"schema": 1, "suite": suite.name, "variant_id": variant.id, "label": variant.label,
                       "factors": variant.factors, "seed": seed, "config": variant.config,
                       "is_baseline": variant.id == suite.baseline_id, "status": "ok", "wall_seconds": 0.1,
                       "curves": {"epoch": [1], "miou": [self.value]},
                       "metrics": {"miou": self.value + seed / 100, "dice": 0.5, "pixel_accuracy": 0.5},
                       "cost": {"params": 10, "latency_ms": 1.0}}

        def close(self):
            pass


    def stand_in(*, fixed_value: float = 0.25):
        return StandIn(fixed_value)


    def runs_seen(context):
        (context.report_dir / "runs_seen.txt").write_text(f"{len(context.records)} {[s.title for s in context.sections]}")
        return [ReportSection("Runs seen", str(len(context.records)))]


    def broken(context):
        raise RuntimeError("the exporter is down")


    def after(context):
        (context.report_dir / "after.txt").write_text(" ".join(s.title for s in context.sections))


    @hookimpl
    def segbench_executors(register):
        register.add_executor("stand_in", stand_in, options=[ExecutorOption("fixed_value", float, 0.25, "the miou of every run")])


    @hookimpl
    def segbench_reporters(register):
        register.add_reporter("runs_seen", runs_seen)
        register.add_reporter("broken_export", broken, default=False)
        register.add_reporter("after_export", after, default=False)
"""

SUITE = """
name = "through"
seeds = [0, 1]
[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4
[model]
architecture = "unet"
decoder_channels = [16, 8, 8, 8, 8]
[train]
batch_size = 4
[report]
exporters = ["broken_export", "after_export"]
"""


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "through_plugin.py"
    path.write_text(textwrap.dedent(PLUGIN))
    return path


def test_run_help_lists_a_plugins_executor_and_its_option(plugin_file, capsys):
    with pytest.raises(SystemExit):
        main(["run", "suite.toml", "-p", str(plugin_file), "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "local, process, ray, slurm, stand_in" in out
    assert "--fixed-value FIXED_VALUE the miou of every run [--executor stand_in]" in out
    assert "--workers N" in out and "--ray-address auto|HOST:PORT" in out


def test_a_run_goes_through_the_plugins_executor_and_reporters_and_a_failing_exporter_costs_nothing_else(
        plugin_file, tmp_path, write_suite):
    """The standard reporters are left out (-p no:reporters): no plots to draw, and the
    order of the plugin's own reporters is the whole story."""
    suite = load_suite(write_suite(SUITE), plugins.load_catalogue, extra_plugins=[str(plugin_file), "no:reporters"])
    executor = suite.catalogue.executor("stand_in").build({"fixed_value": "0.75"})  # as the command line gives it
    outcome = run_prepared(suite, tmp_path / "out", quiet=True, cache_dir=tmp_path / "cache", executor=executor)
    assert sorted(r["metrics"]["miou"] for r in outcome.records) == [0.75, 0.76], "the stand-in's records, with the option's value"
    assert [str(f) for f in outcome.report["failures"]] == [
        f'reporter "broken_export" of "{plugin_file}" failed: RuntimeError: the exporter is down']
    report_dir = tmp_path / "out" / "through" / "report"
    assert (report_dir / "runs_seen.txt").read_text() == "2 []"
    assert (report_dir / "after.txt").read_text() == "Runs seen", "exporters run after the default reporters, as listed"
    assert not (report_dir / ".fingerprint").exists(), "a report with a failed reporter is drawn again next run"


def test_report_exits_1_naming_a_failed_reporter_after_writing_the_others(plugin_file, tmp_path, write_suite, capsys, monkeypatch):
    suite = load_suite(write_suite(SUITE), plugins.load_catalogue, extra_plugins=[str(plugin_file), "no:reporters"])
    run_prepared(suite, tmp_path / "out", quiet=True, cache_dir=tmp_path / "cache", executor=suite.catalogue.executor("stand_in").build())
    failing = tmp_path / "failing_default.py"
    failing.write_text("from segbench import hookimpl\n\n\n@hookimpl\ndef segbench_reporters(register):\n"
                       "    register.add_reporter('fails', lambda context: 1 / 0)\n")
    (tmp_path / "out" / "through" / "report" / "runs_seen.txt").unlink()
    argv = ["report", str(tmp_path / "out"), "-p", str(plugin_file), "-p", str(failing), "-p", "no:reporters"]
    monkeypatch.setenv("SEGBENCH_CRASH_DIR", str(tmp_path / "logs"))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f'segbench: reporter "fails" of "{failing}" failed: ZeroDivisionError: division by zero' in err
    (log,) = (tmp_path / "logs").glob("reporter-fails-*.log")
    assert f"(traceback: {log}; --debug prints it)" in err
    assert 'step: running reporter "fails"' in log.read_text() and "1 / 0" in log.read_text() and "ZeroDivisionError" in log.read_text()
    assert "Traceback" not in err
    assert main([*argv, "--debug"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    assert (tmp_path / "out" / "through" / "report" / "runs_seen.txt").read_text() == "2 []"
    assert "broken_export" not in err, "segbench report runs the default reporters only; exporters run by segbench export"


def test_an_exporter_that_is_not_installed_is_bad_input_before_training(plugin_file, tmp_path, write_suite, capsys):
    suite = write_suite(SUITE.replace('"broken_export",', '"brokn_export",'))
    assert main(["run", str(suite), "-p", str(plugin_file), "-o", str(tmp_path / "out"), "-q", "--executor", "stand_in"]) == 2
    err = capsys.readouterr().err
    assert "report.exporters: unknown exporter 'brokn_export'; did you mean 'broken_export'" in err and "Valid: after_export, broken_export" in err
    assert not (tmp_path / "out" / "through" / "runs").exists()


def test_an_option_of_another_executor_is_bad_input(tiny_suite, tmp_path, capsys):
    assert main(["run", str(tiny_suite), "-o", str(tmp_path / "out"), "-q", "--workers", "2"]) == 2
    assert "--workers: not an option of --executor local (it takes no options)" in capsys.readouterr().err


@pytest.mark.parametrize("kind, expected", [("executors", ["local", "process", "ray", "slurm"]),
                                            ("reporters", ["tables", "markdown", "plots", "html"])])
def test_list_shows_the_standard_executors_and_reporters(kind, expected, capsys):
    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines()[1:] if line.startswith("  ") and not line.startswith("   ")]
    assert names[:len(expected)] == expected
    assert "options: --workers (1)" in out if kind == "executors" else "runs: every report" in out


@pytest.mark.parametrize("keywords, expected", [
    ({"executor": "local", "workers": 2}, "--workers: not an option of --executor local (it takes no options)"),
    ({"executor": "process", "workers": 0}, "--executor process: --workers must be an integer >= 1, got 0"),
    ({"executor": "process", "executor_options": {"workers": "x"}}, "--workers: invalid int value 'x'"),
])
def test_the_api_takes_executor_options_as_keywords_and_checks_them_before_training(tiny_suite, tmp_path, keywords, expected):
    from segbench import api

    with pytest.raises(SegbenchError) as error:
        api.run_suite(tiny_suite, output=tmp_path / "out", **keywords)
    assert str(error.value).startswith(expected)
    assert not (tmp_path / "out").exists()


# --- no standard reporter assumed: what a report wrote; an exporter's own options ----------------

EXPORTER = """
from segbench import ReporterOption, hookimpl


def echo(context):
    (context.report_dir / "echo.txt").write_text(repr(sorted(context.options.items())))


@hookimpl
def segbench_reporters(register):
    register.add_reporter("echo", echo, default=False, options=[
        ReporterOption("greeting", str, "hello", "what to say"), ReporterOption("times", int, 1, "how often", metavar="N")])
"""


@pytest.fixture
def finished(plugin_file, tmp_path, write_suite):
    """A results folder of the stand-in executor's records; no standard reporter ran."""
    suite = load_suite(write_suite(SUITE.split("[report]")[0]), plugins.load_catalogue,
                       extra_plugins=[str(plugin_file), "no:reporters"])
    run_prepared(suite, tmp_path / "out", quiet=True, cache_dir=tmp_path / "cache", executor=suite.catalogue.executor("stand_in").build())
    return tmp_path / "out"


def test_a_report_without_a_page_says_what_was_written_not_a_missing_index_html(finished, plugin_file, capsys):
    report_dir = finished / "through" / "report"
    assert main(["report", str(finished), "-p", "no:reporters"]) == 0
    out = capsys.readouterr().out
    assert ("report: no reporter that runs on every report is installed (`segbench list reporters`), so no report file was "
            f"written in {report_dir}") in out
    assert "index.html" not in out and not (report_dir / "index.html").exists()
    assert main(["report", str(finished), "-p", str(plugin_file), "-p", "no:reporters"]) == 0
    assert f"report: no reporter writes index.html; 1 file(s) written in {report_dir}: runs_seen.txt" in capsys.readouterr().out


def test_where_written_names_the_page_when_a_reporter_wrote_it(tmp_path):
    from segbench.stored_report import where_written

    page = tmp_path / "index.html"
    report = {"dir": tmp_path, "html": page, "reporters": ["html"], "written": [tmp_path / "a.csv", page]}
    assert where_written(report) == f"report: {page}"
    assert where_written({**report, "written": []}) == f"report: the reporters (html) wrote no file in {tmp_path}"


def test_export_takes_the_exporters_own_options_as_flags(finished, tmp_path, capsys):
    exporter = tmp_path / "echo_exporter.py"
    exporter.write_text(EXPORTER)
    with pytest.raises(SystemExit):
        main(["export", "echo", "-p", str(exporter), "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "options of echo: --greeting GREETING what to say --times N how often" in out and "--tracking-uri" not in out
    assert main(["export", "echo", str(finished), "-p", str(exporter), "--times", "3"]) == 0
    assert (finished / "through" / "report" / "echo.txt").read_text() == "[('greeting', 'hello'), ('times', 3)]"
    assert main(["export", "echo", str(finished), "-p", str(exporter), "--times", "many"]) == 2
    assert "--times: invalid int value 'many'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_code:  # another exporter's flag is no flag of this one
        main(["export", "echo", str(finished), "-p", str(exporter), "--tracking-uri", "x"])
    assert exit_code.value.code == 2 and "unrecognized arguments: --tracking-uri x" in capsys.readouterr().err
    assert main(["list", "reporters", "-p", str(exporter)]) == 0
    assert "options: --greeting ('hello'), --times (1)" in capsys.readouterr().out


def test_mlflow_declares_its_flags_in_its_registration(capsys):
    with pytest.raises(SystemExit):
        main(["export", "mlflow", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "options of mlflow: --tracking-uri URI where MLflow keeps runs" in out and "--experiment NAME" in out


def test_an_exporter_that_fails_in_export_exits_1_with_its_traceback_in_the_crash_log(finished, plugin_file, tmp_path, capsys,
                                                                                      monkeypatch):
    monkeypatch.setenv("SEGBENCH_CRASH_DIR", str(tmp_path / "logs"))
    assert main(["export", "broken_export", str(finished), "-p", str(plugin_file)]) == 1
    err = capsys.readouterr().err
    (log,) = (tmp_path / "logs").glob("reporter-broken_export-*.log")
    assert f'reporter "broken_export" of "{plugin_file}" failed: RuntimeError: the exporter is down (traceback: {log}' in err
    assert 'raise RuntimeError("the exporter is down")' in log.read_text()
