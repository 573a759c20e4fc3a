"""The MLflow exporter (plugins/reporters/mlflow.py): a real suite run, exported into a real
local MLflow store and read back through ``mlflow.MlflowClient``."""

from __future__ import annotations

import ast
import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")  # the test extra installs it; `segbench[mlflow]` for users

from mlflow import MlflowClient  # noqa: E402

from segbench import api  # noqa: E402
from segbench.cli import main  # noqa: E402
from segbench import SegbenchError  # noqa: E402
from segbench.store import ResultStore  # noqa: E402
from segbench_plugins.reporters import mlflow as exporter  # noqa: E402

# A label that looks like a path, a filter and markup: it must stay a value.
HOSTILE_LABEL = "../../escaped' OR 1=1 <b>x</b>/.."
FAILING_LOSS = '''
import torch
from segbench import hookimpl


class FailsOnSecondCall(torch.nn.Module):
    """Cross-entropy that raises from its second call on (a preflight may call it once)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, logits, target):
        self.calls += 1
        if self.calls >= 2:
            raise RuntimeError("the loss broke")
        return torch.nn.functional.cross_entropy(logits, target)


@hookimpl
def segbench_losses(register):
    register.add_loss("failing", lambda mode, num_classes, ignore_index: FailsOnSecondCall())
'''
SUITE = f"""
name = "export"
description = "The MLflow exporter's test"
seeds = [0, 1]
plugins = ["failing.py"]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [8, 8, 8, 8, 8]

[train]
epochs = 2
batch_size = 8
val_every = 1

[eval]
metrics = ["miou", "dice"]

[[variants]]
label = {json.dumps(HOSTILE_LABEL)}
train.loss = "ce"

[[variants]]
label = "failing"
train.loss = "failing"

[report]
exporters = ["mlflow"]  # to $MLFLOW_TRACKING_URI, set by the fixture
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """One tiny suite run (2 variants x 2 seeds; the "failing" variant fails), shared by the
    tests: they copy it before changing anything. Its suite lists the mlflow exporter, which
    writes to ``suite-mlruns`` beside it when the report is written."""
    folder = tmp_path_factory.mktemp("export-suite")
    (folder / "failing.py").write_text(FAILING_LOSS)
    (folder / "export.toml").write_text(textwrap.dedent(SUITE))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", str(folder / "suite-mlruns"))
        env.setenv("MLFLOW_EXPERIMENT_NAME", "from-the-suite")
        outcome = api.run(folder / "export.toml", folder / "out", quiet=True, cache_dir=tmp_path_factory.getbasetemp() / "cache")
    assert not outcome.report["failures"], outcome.report["failures"]
    return folder / "out" / "export"


def stored(suite_dir: Path):
    store = ResultStore(suite_dir.parent, suite_dir.name, quiet=True)
    return store, store.load_summary(required=True), store.records()


def export(suite_dir: Path, uri: str, experiment="segbench"):
    store, meta, records = stored(suite_dir)
    return exporter.export_suite(records, meta, store.report_dir, store.suite_dir, tracking_uri=uri, experiment=experiment)


@pytest.fixture
def store_uri(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for reading back; the export allows its own file store
    return (tmp_path / "mlruns").as_uri()


def runs_of(uri: str, experiment="segbench") -> list:
    client = MlflowClient(tracking_uri=uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def split(runs):
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def unflatten(params: dict) -> dict:
    """Params back into the nested config; values were logged as text, or as JSON."""
    nested = {}
    for key, text in params.items():
        *path, leaf = key.split(".")
        table = nested
        for part in path:
            table = table.setdefault(part, {})
        try:
            table[leaf] = json.loads(text)
        except json.JSONDecodeError:
            table[leaf] = text
    return nested


def test_the_suite_round_trips_through_mlflow(results, store_uri):
    _, meta, records = stored(results)
    summary = export(results, store_uri)
    assert (summary.logged, summary.replaced, summary.unchanged) == (4, 0, 0)

    client = MlflowClient(tracking_uri=store_uri)
    parents, children = split(runs_of(store_uri))
    assert len(parents) == 1 and len(children) == len(records) == 4
    parent = parents[0]
    assert parent.info.run_name == "export" and parent.data.tags["segbench.description"] == "The MLflow exporter's test"
    assert parent.info.status == "FAILED"  # two of its runs failed
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}

    by_key = {(c.data.tags["segbench.variant_id"], int(c.data.tags["segbench.seed"])): c for c in children}
    ok = next(r for r in records if r["status"] == "ok")
    child = by_key[(ok["variant_id"], ok["seed"])]
    assert child.info.status == "FINISHED" and child.info.run_name == f"{HOSTILE_LABEL} seed {ok['seed']}"
    assert child.data.tags["segbench.label"] == HOSTILE_LABEL
    assert unflatten(child.data.params) == ok["config"]
    assert {k: v for k, v in child.data.metrics.items() if "/" not in k and k != "wall_seconds"} == ok["metrics"]
    numeric_costs = {k: v for k, v in ok["cost"].items() if isinstance(v, (int, float))}
    assert {k.removeprefix("cost/"): v for k, v in child.data.metrics.items() if k.startswith("cost/")} == numeric_costs
    history = client.get_metric_history(child.info.run_id, "curve/miou")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == list(zip(ok["curves"]["epoch"], ok["curves"]["miou"]))
    assert [m.step for m in client.get_metric_history(child.info.run_id, "curve/train_loss")] == [1, 2]

    failed = next(r for r in records if r["status"] != "ok")
    failed_child = by_key[(failed["variant_id"], failed["seed"])]
    assert failed_child.info.status == "FAILED" and failed_child.data.tags["segbench.status"] == "failed"
    assert failed_child.data.tags["segbench.error_message"] == "the loss broke"

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"index.html", "summary.md", "runs.csv", "summary.csv", "suite.toml", "plots"} <= artifacts
    assert {"plots/metrics.png", "plots/curves.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}


def test_exporting_twice_adds_no_run_and_a_changed_record_replaces_its_run(results, store_uri, tmp_path):
    suite_dir = tmp_path / "results" / "export"
    shutil.copytree(results, suite_dir)
    export(suite_dir, store_uri)
    first = runs_of(store_uri)

    again = export(suite_dir, store_uri)
    assert (again.logged, again.replaced, again.unchanged) == (0, 0, 4)
    assert sorted(r.info.run_id for r in runs_of(store_uri)) == sorted(r.info.run_id for r in first)

    store, _, records = stored(suite_dir)
    rerun = next(r for r in records if r["status"] == "ok")
    store.write({**rerun, "metrics": {**rerun["metrics"], "miou": 0.125}})  # as if that run was redone
    changed = export(suite_dir, store_uri)
    assert (changed.logged, changed.replaced, changed.unchanged) == (0, 1, 3)
    parents, children = split(runs_of(store_uri))
    assert len(parents) == 1 and len(children) == 4
    new = [c for c in children if c.data.tags["segbench.run_key"] == exporter.run_key("export", rerun["variant_id"], rerun["seed"])]
    assert len(new) == 1 and new[0].data.metrics["miou"] == 0.125


def test_changed_settings_replace_the_parent_and_its_children_follow(results, store_uri):
    """MLflow params cannot change in place: a suite exported again with another margin gets a
    new parent run (the old one deleted), and its runs are logged under the new parent."""
    store, meta, records = stored(results)
    exporter.export_suite(records, meta, None, None, tracking_uri=store_uri)
    (old_parent,), _ = split(runs_of(store_uri))
    assert old_parent.data.params["stats.margin"] == str(meta["stats"]["margin"])
    changed = {**meta, "stats": {**meta["stats"], "margin": 0.05}}
    again = exporter.export_suite(records, changed, None, None, tracking_uri=store_uri)
    assert (again.logged, again.replaced, again.unchanged) == (0, 4, 0)
    (parent,), children = split(runs_of(store_uri))
    assert parent.info.run_id != old_parent.info.run_id and parent.data.params["stats.margin"] == "0.05"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id} and len(children) == 4


def test_untrusted_names_become_valid_keys_and_stay_values(results, store_uri):
    _, meta, records = stored(results)
    record = next(r for r in records if r["status"] == "ok")
    hostile = {"../../up": 1, "a:b/c": "x", "é\x1b[31m": 2, "..": 3, "k" * 300: 4, "k" * 301: 5}
    record = {**record, "config": {**record["config"], "plugin": hostile}, "metrics": {**record["metrics"], "../m": 0.5}}
    exporter.export_suite([record], meta, None, None, tracking_uri=store_uri)

    _, children = split(runs_of(store_uri))
    params = children[0].data.params
    assert params["plugin..._.._up"] == "1" and params["plugin.a_b_c"] == "x" and params["plugin..."] == "3"
    assert params["plugin.___31m"] == "2"
    long_keys = [k for k in params if k.startswith("plugin.kkk")]
    assert len(long_keys) == 2 and all(len(k) == 250 for k in long_keys)  # cut to MLflow's limit, told apart
    assert children[0].data.metrics["_.._m"] == 0.5
    assert children[0].data.tags["segbench.label"] == HOSTILE_LABEL
    names = {p.name for p in Path(store_uri.removeprefix("file://")).rglob("*")}
    assert not names & {"up", "..", "escaped' OR 1=1 <b>x<"}  # no suite text became a file or folder


def test_the_exporter_does_not_import_mlflow_until_it_exports():
    """segbench works without the extra: nothing at module level imports mlflow."""
    tree = ast.parse(Path(exporter.__file__).read_text())
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [alias.name for node in top_level for alias in node.names] + [node.module for node in top_level if isinstance(node, ast.ImportFrom)]
    assert not any(name and name.split(".")[0] == "mlflow" for name in names)


def test_a_suite_listing_mlflow_exports_when_its_report_is_written(results, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    parents, children = split(runs_of((results.parent.parent / "suite-mlruns").as_uri(), "from-the-suite"))
    assert len(parents) == 1 and len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}


def test_cli_export_exits_0_and_2(results, store_uri, tmp_path, monkeypatch, capsys):
    assert main(["export", "mlflow", str(results.parent), "--tracking-uri", store_uri, "--experiment", "from-the-cli"]) == 0
    assert "4 run(s) logged" in capsys.readouterr().out
    assert len(runs_of(store_uri, "from-the-cli")) == 5

    missing = tmp_path / "no-results"
    assert main(["export", "mlflow", str(missing), "--tracking-uri", store_uri]) == 2
    assert str(missing) in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    assert main(["export", "mlflow", str(results), "--tracking-uri", str(tmp_path / "a-file" / "mlruns")]) == 2
    assert "a-file/mlruns: [Errno 20] Not a directory" in capsys.readouterr().err
    with pytest.raises(SegbenchError, match="--tracking-url: not an option of exporter mlflow .it takes --tracking-uri, --experiment"):
        api.run_reporter("mlflow", results, {"tracking_url": store_uri})

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if segbench[mlflow] were not installed: `import mlflow` fails
    assert main(["export", "mlflow", str(results), "--tracking-uri", store_uri]) == 2
    assert "pip install 'segbench[mlflow]'" in capsys.readouterr().err


def test_a_suite_listing_mlflow_without_it_installed_is_refused_before_training(tmp_path, monkeypatch, capsys):
    (tmp_path / "failing.py").write_text(FAILING_LOSS)
    (tmp_path / "export.toml").write_text(textwrap.dedent(SUITE))
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if segbench[mlflow] were not installed
    assert main(["validate", str(tmp_path / "export.toml")]) == 2
    error = capsys.readouterr().err
    assert "report.exporters: mlflow: the MLflow exporter needs mlflow" in error and "pip install 'segbench[mlflow]'" in error
    assert main(["run", str(tmp_path / "export.toml"), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert not (tmp_path / "out" / "export" / "runs").exists(), "nothing may train"


# ---------------------------------------------------------------------------- interrupted exports

CLIENT_CALLS = ("search_runs", "create_run", "log_batch", "set_terminated", "set_tag", "delete_run", "delete_tag", "log_artifact")


def interrupting_client(monkeypatch, after: int) -> list:
    """Make the MLflow client raise KeyboardInterrupt at its ``after``-th call (0: the first);
    returns the list of calls made, so that a test can tell how many an export makes."""
    calls = []
    for name in CLIENT_CALLS:
        original = getattr(MlflowClient, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            if len(calls) == after:
                raise KeyboardInterrupt(f"interrupted at call {after} ({_name})")
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, name, counted)
    return calls


def assert_exported_once(uri: str, records: list):
    """MLflow reads the experiment; one parent, and each record once, complete."""
    parents, children = split(runs_of(uri))
    assert len(parents) == 1, [p.info.run_id for p in parents]
    keys = sorted(c.data.tags.get("segbench.run_key", "(untagged)") for c in children)
    assert keys == sorted(exporter.run_key("export", r["variant_id"], r["seed"]) for r in records)
    assert all(exporter.COMPLETE_TAG in c.data.tags and c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)


def test_an_export_interrupted_at_any_call_is_finished_by_the_next_without_duplicates(results, tmp_path, monkeypatch):
    """Ctrl-C at each MLflow call of an export (the parent, each run, each artifact): the
    next export leaves exactly one complete run per record and MLflow reads the experiment."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, meta, records = stored(results)
    with monkeypatch.context() as patch:
        total = interrupting_client(patch, after=10**9)
        export(results, (tmp_path / "count").as_uri())
    assert len(total) > 20, total
    for after in range(0, len(total), 2 if len(total) > 40 else 1):
        uri = (tmp_path / f"cut-{after}").as_uri()
        with monkeypatch.context() as patch:
            interrupting_client(patch, after)
            with pytest.raises(KeyboardInterrupt):
                export(results, uri)
        again = export(results, uri)
        assert again.logged + again.replaced + again.unchanged == len(records), (after, again)
        assert_exported_once(uri, records)


def test_a_run_folder_left_damaged_by_a_killed_export_is_set_aside_and_logged_again(results, store_uri, capsys):
    """What a kill inside MLflow's own writes left before (an empty meta.yaml, an empty
    metric file) made every later export fail; now those folders are set aside and named."""
    _, _, records = stored(results)
    export(results, store_uri)
    _, children = split(runs_of(store_uri))
    store_dir = Path(store_uri.removeprefix("file://"))
    experiment_dir = store_dir / children[0].info.experiment_id
    empty_meta = experiment_dir / children[0].info.run_id / "meta.yaml"
    empty_meta.write_text("")
    metric = next((experiment_dir / children[1].info.run_id / "metrics").iterdir())
    metric.write_text("")
    cut_at_creation = experiment_dir / "0123456789abcdef0123456789abcdef"  # a run cut inside create_run: no tags yet
    cut_at_creation.mkdir()
    (cut_at_creation / "meta.yaml").write_text("")

    again = export(results, store_uri)
    assert (again.logged, again.replaced, again.unchanged) == (2, 0, 2)  # the set-aside runs are no longer seen
    assert_exported_once(store_uri, records)
    warnings = capsys.readouterr().err
    assert str(empty_meta.parent) in warnings and f"metric file metrics/{metric.name} is empty" in warnings
    assert str(cut_at_creation) in warnings and (cut_at_creation / "meta.yaml.segbench-damaged").exists()


SIGTERM_DURING_EXPORT = """
import os, signal, sys
from mlflow.store.tracking.file_store import FileStore
from segbench.cli import main

original, calls = FileStore.set_tag, []

def set_tag(self, run_id, tag):  # SIGTERM inside create_run of the 2nd run (after its meta.yaml, before its tags)
    calls.append(tag.key)
    if len(calls) == 12:
        os.kill(os.getpid(), signal.SIGTERM)
    return original(self, run_id, tag)

FileStore.set_tag = set_tag
sys.exit(main(["export", "mlflow", sys.argv[1], "--tracking-uri", sys.argv[2]]))
"""


def test_sigterm_inside_an_export_stops_it_between_runs_and_the_next_export_finishes(results, store_uri, tmp_path):
    import os
    import subprocess

    _, _, records = stored(results)
    script = tmp_path / "export_and_term.py"
    script.write_text(SIGTERM_DURING_EXPORT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script), str(results), store_uri], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "segbench: terminated; finished runs are kept", done.stderr
    _, children = split(runs_of(store_uri))
    assert 0 < len(children) < len(records) and all(exporter.COMPLETE_TAG in c.data.tags for c in children)  # whole runs only

    again = export(results, store_uri)
    assert again.unchanged == len(children) and again.logged == len(records) - len(children)
    assert_exported_once(store_uri, records)
