"""Export a suite's results to MLflow: one parent run per suite, one nested child run per
variant x seed.

A child run holds the record's resolved config as params (dotted keys), its final metrics
and costs as metrics (``cost/<name>``), its per-epoch curves as step metrics
(``curve/<name>``, step = epoch), and its status (a failed run is FAILED, with
``segbench.error_*`` tags).

The parent carries the answer: the suite's settings as params (``suite.<key>`` from the
suite file, ``stats.<key>`` and ``seeds.<key>`` as resolved, the ``--set`` overrides); per
variant ``<label>/<metric>_mean`` and, for each comparison with the baseline,
``<label>/delta``, ``delta_ci_low``/``high``, ``p_value``, ``p_adjusted`` and the TOST
interval ``equivalence_ci_low``/``high`` as metrics, with the outcome in words as the tag
``segbench.outcome.<label>`` (the report's outcome column, word for word). The report
files, the summary tables among them, are its artifacts.

Exporting again does not duplicate runs: each run carries deterministic tags
(``segbench.suite_key``, ``segbench.run_key``: hashes, so that no suite text enters a
search filter) and the hash of what was logged (``segbench.export_sha256``). A run whose
hash is unchanged is skipped; a changed one (a re-run, a new label) is replaced: the old
run is deleted (MLflow keeps it as "deleted" until ``mlflow gc``) and logged anew, since
MLflow params cannot be changed in place.

An interrupted export loses nothing and breaks nothing (see ``Exporter``): each run is
created with its keys as tags and marked complete (``segbench.export_sha256``) last, so the
next export finds a half-logged run and replaces it; Ctrl-C and SIGTERM wait until the run
being logged is whole; and in a local file store, a run folder an earlier kill left
unreadable (an empty ``meta.yaml``, an empty metric file) is set aside before the export,
so that MLflow can read the experiment again.

Suite text (names, labels, config keys) is untrusted: it becomes values, never a path.
Keys are reduced to the characters MLflow allows, and artifact paths are segbench's own
report file names. mlflow is imported only when exporting, so segbench works without the
``segbench[mlflow]`` extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import signal
import sys
import threading
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import segbench
from segbench import SegbenchError

NAME = "mlflow"
DEFAULT_TRACKING_URI = "./mlruns"  # a local file store: works offline, needs no server
DEFAULT_EXPERIMENT = "segbench"
INSTALL_HINT = "pip install 'segbench[mlflow]'"
OPTIONS = ("tracking_uri", "experiment")  # declared below (EXPORT_OPTIONS): `segbench export mlflow --help`
# Bump when what a record is logged as changes: every run is then logged again.
EXPORT_LAYOUT = 1

MAX_KEY = 250  # MLflow's limits (mlflow.utils.validation), the lowest of the releases the extra admits
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 5000  # 5000 in 2.10, 8000 in 3.x
PARAMS_TAGS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
UNSAFE_KEY_CHARACTER = re.compile(r"[^A-Za-z0-9_.\- ]")  # ASCII only; no "/" (a folder in a file store) nor ":" (Windows)
SAFE_ARTIFACT_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
SUITE_ROLE, RUN_ROLE = "suite", "run"
COMPLETE_TAG = "segbench.export_sha256"  # logged last: a run without it was interrupted
SET_ASIDE_SUFFIX = ".segbench-damaged"  # meta.yaml renamed so: MLflow no longer reads that run folder
# What the parent logs of each comparison (summary.csv's columns, under the same names).
COMPARISON_METRICS = ("delta", "delta_ci_low", "delta_ci_high", "p_value", "p_adjusted", "equivalence_ci_low", "equivalence_ci_high")


@dataclass
class ExportSummary:
    """What an export did; ``text`` says it in one line, for the terminal."""

    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    logged: int = 0  # new runs
    replaced: int = 0  # runs whose record changed since the last export
    unchanged: int = 0
    artifacts: list = field(default_factory=list)

    @property
    def text(self) -> str:
        return (f"exported to MLflow {self.tracking_uri}, experiment {self.experiment!r} (id {self.experiment_id}), "
                f"parent run {self.parent_run_id}: {self.logged} run(s) logged, {self.replaced} replaced, "
                f"{self.unchanged} unchanged; {len(self.artifacts)} report file(s) as artifacts")


# `segbench export mlflow --tracking-uri URI --experiment NAME`
EXPORT_OPTIONS = [
    segbench.ReporterOption("tracking_uri", str, None, "where MLflow keeps runs (default: $MLFLOW_TRACKING_URI, else ./mlruns)",
                            metavar="URI", destination=True),
    segbench.ReporterOption("experiment", str, None, "the experiment to log into (default: $MLFLOW_EXPERIMENT_NAME, else segbench)",
                            metavar="NAME"),
]


@segbench.hookimpl
def segbench_reporters(register):
    register.add_reporter(NAME, write, default=False, check=check_installed, options=EXPORT_OPTIONS,
                          description="the runs to MLflow: a parent run per suite, a child per variant x seed, the report "
                                      f"as artifacts (needs {INSTALL_HINT}).")


def write(context):
    """The reporter: export the context's records and report folder; its options are
    ``tracking_uri`` and ``experiment``."""
    options = dict(context.options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SegbenchError(f"the mlflow exporter has no option {', '.join(map(repr, unknown))}; valid: {', '.join(OPTIONS)}")
    rows = context.summary.to_dict("records") if context.summary is not None and len(context.summary) else []
    return export_suite(context.records, context.meta, context.report_dir, context.suite_dir,
                        tracking_uri=options.get("tracking_uri"), experiment=options.get("experiment"), summary=rows)


def export_suite(records, meta, report_dir, suite_dir=None, tracking_uri=None, experiment=None, summary=()) -> ExportSummary:
    """Log ``records`` (run records of one suite), the ``summary`` rows (summary.csv's, as
    dicts) and the report files in ``report_dir`` to MLflow. ``tracking_uri`` defaults to
    $MLFLOW_TRACKING_URI, else ``./mlruns``; ``experiment`` to $MLFLOW_EXPERIMENT_NAME,
    else ``segbench``."""
    tracking_uri = resolve_tracking_uri(tracking_uri)
    experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    mlflow = import_mlflow()
    with file_store_allowed(tracking_uri), mlflow_errors(tracking_uri, mlflow):
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        experiment_id = experiment_id_for(client, experiment)
        if is_file_store(tracking_uri):
            set_aside_damaged_runs(file_store_path(tracking_uri) / experiment_id, suite_key(meta.get("name") or ""))
        exporter = Exporter(client, mlflow, experiment_id, meta)
        done = exporter.export(records, report_files(report_dir, suite_dir), list(summary or ()))
    done.tracking_uri, done.experiment = tracking_uri, experiment
    return done


def check_installed():
    """Before a suite trains: is mlflow there to export to? (Without importing it.)"""
    if importlib.util.find_spec("mlflow") is None:
        raise SegbenchError(f"the MLflow exporter needs mlflow, which is not installed; {INSTALL_HINT}")


def import_mlflow():
    try:
        import mlflow
        import mlflow.entities  # noqa: F401 - Metric, Param, RunTag
    except ImportError as exc:
        raise SegbenchError(f"the MLflow exporter needs mlflow, which is not installed ({exc}); {INSTALL_HINT}") from None
    return mlflow


def resolve_tracking_uri(tracking_uri=None) -> str:
    """An explicit URI, else $MLFLOW_TRACKING_URI, else ``./mlruns``. A plain path (no
    scheme) is a local file store, made absolute from the current directory."""
    uri = str(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)
    if urlparse(uri).scheme or uri == "databricks":  # file:, http://, sqlite:///; MLflow's one bare word
        return uri
    return Path(uri).expanduser().resolve().as_uri()


def is_file_store(tracking_uri: str) -> bool:
    return tracking_uri.startswith("file:")


@contextlib.contextmanager
def file_store_allowed(tracking_uri):
    """MLflow 3 refuses its file store (``./mlruns``) unless MLFLOW_ALLOW_FILE_STORE is set
    (its default became sqlite, which mlflow-skinny cannot open). The file store is
    segbench's offline default, so allow it for this export, unless the user said otherwise."""
    if not is_file_store(tracking_uri) or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


@contextlib.contextmanager
def mlflow_errors(tracking_uri, mlflow):
    """An MLflow refusal (a bad URI, a deleted experiment, a store it will not open) is the
    user's input to fix: exit 2 naming the store, not a traceback."""
    try:
        yield
    except mlflow.exceptions.MlflowException as exc:
        raise SegbenchError(f"MLflow at {tracking_uri}: {exc.message}") from None
    except OSError as exc:  # a file store it cannot write
        raise SegbenchError(f"MLflow at {tracking_uri}: {exc}; give --tracking-uri (or $MLFLOW_TRACKING_URI) a store you can write") from None


def file_store_path(tracking_uri: str) -> Path:
    return Path(unquote(urlparse(tracking_uri).path))


@contextlib.contextmanager
def signals_deferred():
    """Ctrl-C and SIGTERM wait until the block ends, then act as they would have: a run is
    never left half-written by them (in a file store, an empty meta.yaml or metric file
    makes the whole experiment unreadable to MLflow). Only on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {number: signal.signal(number, lambda signum, frame: caught.append(signum)) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        for number in dict.fromkeys(caught):
            signal.raise_signal(number)


def set_aside_damaged_runs(experiment_dir: Path, key: str) -> list:
    """Run folders of this experiment that MLflow cannot read, left by an export killed
    while MLflow wrote them: a ``meta.yaml`` that is empty or not YAML, or (in a run of this
    suite) a metric file with no value. Each is set aside by renaming its ``meta.yaml``
    (MLflow then skips the folder, and its files stay for a look) and named on stderr; the
    export then logs that run anew. Another tool's run with a damaged metric is left as it is."""
    set_aside = []
    if not experiment_dir.is_dir():
        return set_aside
    for run_dir in sorted(d for d in experiment_dir.iterdir() if d.is_dir() and not d.is_symlink() and (d / "meta.yaml").is_file()):
        problem = meta_problem(run_dir / "meta.yaml") or (metric_problem(run_dir) if run_suite_key(run_dir) in (key, None) else None)
        if problem:
            (run_dir / "meta.yaml").rename(run_dir / f"meta.yaml{SET_ASIDE_SUFFIX}")
            set_aside.append(run_dir)
            print(f"segbench: warning: MLflow run folder {run_dir} is damaged ({problem}), likely by an interrupted export; set aside "
                  f"(meta.yaml renamed meta.yaml{SET_ASIDE_SUFFIX}), its run is exported again", file=sys.stderr)
    return set_aside


def meta_problem(path: Path) -> str | None:
    import yaml  # MLflow's own dependency

    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return f"meta.yaml cannot be read: {type(exc).__name__}"
    ours = isinstance(meta, dict) and path.parent.name in (meta.get("run_id"), meta.get("run_uuid"))  # run_uuid: older MLflow
    return None if ours else "meta.yaml is empty or incomplete"


def metric_problem(run_dir: Path) -> str | None:
    """A metric file MLflow cannot read: every line is ``timestamp value step``."""
    for path in sorted((run_dir / "metrics").rglob("*")):
        if path.is_file():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            if not lines or any(len(line.split()) not in (2, 3) for line in lines):
                return f"metric file {path.relative_to(run_dir)} is empty or cut"
    return None


def run_suite_key(run_dir: Path) -> str | None:
    """The run's ``segbench.suite_key`` tag, None when it has none (not segbench's, or cut
    before its tags were written)."""
    tag = run_dir / "tags" / "segbench.suite_key"
    return tag.read_text(encoding="utf-8", errors="replace").strip() if tag.is_file() else None


def experiment_id_for(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name)
    if experiment.lifecycle_stage != "active":
        raise SegbenchError(f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) or give another --experiment")
    return experiment.experiment_id


def report_files(report_dir, suite_dir=None) -> list:
    """``(file, artifact folder or None)`` for the report files and the suite file. Only
    regular files whose every path part is a plain name (segbench's own file names) are
    taken: no links, no hidden files, nothing that could name a path elsewhere."""
    files = []
    if report_dir is not None and Path(report_dir).is_dir():
        root = Path(report_dir)
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if SAFE_ARTIFACT_PART.fullmatch(d) and not os.path.islink(Path(folder) / d))
            relative = Path(folder).relative_to(root)
            for name in sorted(names):
                path = Path(folder) / name
                if SAFE_ARTIFACT_PART.fullmatch(name) and path.is_file() and not path.is_symlink():
                    files.append((path, relative.as_posix() if relative.parts else None))
    suite_file = Path(suite_dir) / "suite.toml" if suite_dir is not None else None
    if suite_file is not None and suite_file.is_file() and not suite_file.is_symlink():
        files.append((suite_file, None))
    return files


# ---------------------------------------------------------------------------- what is logged


@dataclass(frozen=True)
class RunPlan:
    """Everything logged for one run, so that its hash says whether it changed."""

    name: str
    tags: dict
    params: dict
    metrics: list  # (key, value, step)
    status: str  # FINISHED or FAILED
    start_ms: int | None
    end_ms: int | None

    def digest(self) -> str:
        payload = json.dumps([EXPORT_LAYOUT, self.name, self.tags, self.params, self.metrics, self.status, self.start_ms, self.end_ms],
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


def run_plan(record: dict, meta: dict) -> RunPlan:
    suite = record.get("suite") or meta.get("name", "")
    label = current_label(record, meta)
    keys = KeyMaker()
    ok = record["status"] == "ok"
    return RunPlan(
        name=value_text(f"{label} seed {record['seed']}", MAX_KEY),
        tags={**run_tags(record, suite, label), **factor_tags(record, keys)},
        params={keys.key(k): value_text(v, MAX_PARAM_VALUE) for k, v in flatten(record.get("config") or {}).items()},
        metrics=final_metrics(record, keys) + curve_metrics(record, keys),
        status="FINISHED" if ok else "FAILED",
        start_ms=epoch_ms(record.get("started_at")),
        end_ms=epoch_ms(record.get("finished_at")),
    )


def run_tags(record: dict, suite: str, label: str) -> dict:
    environment = record.get("environment") or {}
    tags = {
        "segbench.role": RUN_ROLE,
        "segbench.suite": suite,
        "segbench.suite_key": suite_key(suite),
        "segbench.run_key": run_key(suite, record["variant_id"], record["seed"]),
        "segbench.variant_id": record["variant_id"],
        "segbench.seed": str(record["seed"]),
        "segbench.label": label,
        "segbench.status": record["status"],
        "segbench.is_baseline": str(bool(record.get("is_baseline"))).lower(),
        "segbench.version": (record.get("versions") or {}).get("segbench", ""),
        "segbench.device": record.get("device", ""),
        "segbench.precision": record.get("precision", ""),
        "mlflow.source.git.commit": environment.get("git_commit") or "",
    }
    if record["status"] != "ok":
        error = record.get("error") or {}
        tags.update({"segbench.error_type": error.get("type", ""), "segbench.error_message": error.get("message", ""),
                     "segbench.error_hint": error.get("hint", "")})
    return {key: value_text(value, MAX_TAG_VALUE) for key, value in tags.items() if value != ""}


def factor_tags(record: dict, keys) -> dict:
    """What this variant changed, as tags one can filter the runs table by."""
    return {"segbench.factor." + keys.key(name): value_text(value, MAX_TAG_VALUE) for name, value in (record.get("factors") or {}).items()}


def final_metrics(record: dict, keys) -> list:
    """The record's final metrics under their names, its numeric costs as ``cost/<name>``."""
    step = last_epoch(record)
    metrics = [(keys.key(name), float(value), step) for name, value in (record.get("metrics") or {}).items() if is_number(value)]
    metrics += [("cost/" + keys.key(name), float(value), step) for name, value in (record.get("cost") or {}).items() if is_number(value)]
    if is_number(record.get("wall_seconds")):
        metrics.append(("wall_seconds", float(record["wall_seconds"]), step))
    return metrics


def curve_metrics(record: dict, keys) -> list:
    """Each per-epoch curve as ``curve/<name>`` with step = epoch; epochs that were not
    validated (null) are left out."""
    curves = record.get("curves") or {}
    epochs = curves.get("epoch") or []
    metrics = []
    for name, values in curves.items():
        if name == "epoch" or not isinstance(values, list):
            continue
        key = "curve/" + keys.key(name)
        metrics += [(key, float(value), int(epoch)) for epoch, value in zip(epochs, values) if is_number(value) and is_number(epoch)]
    return metrics


def parent_plan(records: list, meta: dict, summary: list = ()) -> RunPlan:
    suite = meta.get("name") or (records[0].get("suite", "") if records else "")
    failed = [r for r in records if r["status"] != "ok"]
    commits = {(r.get("environment") or {}).get("git_commit") for r in records}
    baseline = (meta.get("labels") or {}).get(meta.get("baseline_id"), meta.get("baseline_id", ""))
    tags = {
        "segbench.role": SUITE_ROLE,
        "segbench.suite": suite,
        "segbench.suite_key": suite_key(suite),
        "segbench.version": segbench.__version__,
        "segbench.description": meta.get("description", ""),
        "segbench.suite_path": meta.get("path", ""),
        "segbench.primary_metric": meta.get("primary", ""),
        "segbench.metrics": ", ".join(meta.get("metrics") or []),
        "segbench.baseline": baseline if isinstance(baseline, str) else "",
        "segbench.runs": str(len(records)),
        "segbench.failed_runs": str(len(failed)),
        "mlflow.source.git.commit": next(iter(commits)) if len(commits) == 1 and None not in commits else "",
    }
    starts = [t for t in (epoch_ms(r.get("started_at")) for r in records) if t is not None]
    ends = [t for t in (epoch_ms(r.get("finished_at")) for r in records) if t is not None]
    keys = KeyMaker()
    label_keys = {str(row["variant"]): keys.key(row["variant"]) for row in summary}
    tags.update({f"segbench.outcome.{label_keys[str(row['variant'])]}": row.get("outcome") or "" for row in summary})
    return RunPlan(name=value_text(suite, MAX_KEY), tags={k: value_text(v, MAX_TAG_VALUE) for k, v in tags.items() if v},
                   params=suite_params(meta), metrics=summary_metrics(summary, meta, label_keys),
                   status="FAILED" if failed else "FINISHED", start_ms=min(starts) if starts else None,
                   end_ms=max(ends) if ends else None)


def suite_params(meta: dict) -> dict:
    """The suite's settings: the suite file's keys, the statistics and seeds as resolved,
    the primary metric and the ``--set`` overrides."""
    try:
        written = tomllib.loads(meta.get("text") or "")
    except tomllib.TOMLDecodeError:
        written = {}
    settings = {**{f"suite.{k}": v for k, v in flatten(written).items()},
                **{f"stats.{k}": v for k, v in flatten(meta.get("stats") or {}).items()},
                **{f"seeds.{k}": v for k, v in flatten(meta.get("design") or {}).items()},
                "primary_metric": meta.get("primary", ""), "overrides": meta.get("overrides") or []}
    keys = KeyMaker()
    return {keys.key(k): value_text(v, MAX_PARAM_VALUE) for k, v in settings.items()}


def summary_metrics(summary: list, meta: dict, label_keys: dict) -> list:
    """``<label>/<metric>_mean`` of every variant, and each comparison's numbers."""
    metrics = []
    for row in summary:
        prefix = label_keys[str(row["variant"])] + "/"
        compared = row.get("verdict") != "baseline"
        names = [f"{m}_mean" for m in meta.get("metrics") or []] + (list(COMPARISON_METRICS) if compared else [])
        metrics += [(prefix + name, float(row[name]), 0) for name in names if is_number(row.get(name))]
    return metrics


def current_label(record: dict, meta: dict) -> str:
    """The variant's label as the suite now says (as the report shows it)."""
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    label = labels.get(record["variant_id"])
    return label if isinstance(label, str) else record.get("label") or record["variant_id"]


def flatten(config, prefix="") -> dict:
    """Nested tables as dotted keys (``model.architecture.params.encoder``); a list stays
    one value (JSON), as a suite writes it."""
    flat = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def value_text(value, limit: int) -> str:
    """A param or tag value: text as it is, anything else as JSON; cut to MLflow's limit."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(", ", ": "))
    marker = "... (cut)"
    return text if len(text) <= limit else text[: limit - len(marker)] + marker


class KeyMaker:
    """MLflow keys from untrusted names: characters MLflow refuses become ``_``, nothing
    can resolve to another path (``..``, a leading dot or slash), and two names that would
    become the same key are told apart by a hash of the original."""

    def __init__(self):
        self.owners = {}

    def key(self, name) -> str:
        name = str(name)
        key = UNSAFE_KEY_CHARACTER.sub("_", name).strip() or "_"
        if key.startswith("."):
            key = "_" + key
        if len(key) > MAX_KEY or self.owners.get(key, name) != name:
            key = f"{key[: MAX_KEY - 9]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        self.owners[key] = name
        return key


def suite_key(suite: str) -> str:
    return hashlib.sha256(f"segbench suite\0{suite}".encode()).hexdigest()[:24]


def run_key(suite: str, variant_id: str, seed) -> str:
    return hashlib.sha256(f"segbench run\0{suite}\0{variant_id}\0{seed}".encode()).hexdigest()[:24]


def last_epoch(record: dict) -> int:
    epochs = [e for e in (record.get("curves") or {}).get("epoch") or [] if is_number(e)]
    return int(epochs[-1]) if epochs else 0


def epoch_ms(timestamp) -> int | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except ValueError:
        return None


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")


# ---------------------------------------------------------------------------- writing


class Exporter:
    """Logs plans into one experiment, reusing what an earlier export left there.

    Crash-safe: each unit of work (the parent, one run, one artifact) is written with Ctrl-C
    and SIGTERM deferred; a run is created with its keys as tags (so a cut run is found next
    time) and marked complete with ``segbench.export_sha256`` last. The next export keeps one
    complete run per key and deletes every other one of the suite (a duplicate, a half-logged
    run), so each record is in the experiment exactly once."""

    def __init__(self, client, mlflow, experiment_id: str, meta: dict):
        self.client, self.entities, self.experiment_id, self.meta = client, mlflow.entities, experiment_id, meta

    def export(self, records: list, artifacts: list, summary: list = ()) -> ExportSummary:
        plan = parent_plan(records, self.meta, summary)
        existing = self.existing_runs(plan.tags["segbench.suite_key"])
        with signals_deferred():
            parent_id = self.parent_run(plan, existing.pop(SUITE_ROLE, []))
        summary = ExportSummary("", "", self.experiment_id, parent_id)
        for record in records:
            run = run_plan(record, self.meta)
            with signals_deferred():
                self.export_run(run, parent_id, existing.pop(run.tags["segbench.run_key"], []), summary)
        with signals_deferred():
            self.delete_incomplete(existing)
        for path, folder in artifacts:
            with signals_deferred():
                self.client.log_artifact(parent_id, str(path), folder)
            summary.artifacts.append(f"{folder}/{path.name}" if folder else path.name)
        with signals_deferred():
            self.client.set_terminated(parent_id, plan.status, plan.end_ms)
        return summary

    def existing_runs(self, key: str) -> dict:
        """The active runs of this suite, by run key (the parents under ``suite``), the
        newest first (MLflow's default order); a run with neither is under None."""
        runs, token = {}, None
        while True:
            page = self.client.search_runs([self.experiment_id], f"tags.`segbench.suite_key` = '{key}'", max_results=1000, page_token=token)
            for run in page:
                tags = run.data.tags
                role_key = SUITE_ROLE if tags.get("segbench.role") == SUITE_ROLE else tags.get("segbench.run_key")
                runs.setdefault(role_key, []).append(run)
            token = page.token
            if not token:
                return runs

    def parent_run(self, plan: RunPlan, candidates: list) -> str:
        """The suite's run, reused unless its settings changed (params cannot change in
        place: it is replaced, and its children are logged again under the new one). Any
        other parent of the suite (left by an interrupted export) is deleted."""
        run = candidates[0] if candidates else None
        for extra in candidates[1:]:
            self.client.delete_run(extra.info.run_id)
        if run is not None and any(run.data.params.get(k, v) != v for k, v in plan.params.items()):
            self.client.delete_run(run.info.run_id)
            run = None
        run_id = run.info.run_id if run else self.create_run(plan, {}).info.run_id
        stale = set(run.data.tags) - set(plan.tags) if run else set()
        for key in sorted(k for k in stale if k.startswith("segbench.outcome.")):  # a variant no longer in the suite
            self.client.delete_tag(run_id, key)
        params = {k: v for k, v in plan.params.items() if not run or k not in run.data.params}
        self.log(run_id, plan.tags, params, plan.metrics, plan.end_ms)
        return run_id

    def export_run(self, plan: RunPlan, parent_id: str, earlier: list, summary: ExportSummary) -> None:
        """Keep the one complete, unchanged run of this record; delete every other (an old
        version, a duplicate, a half-logged one) and log it anew when none is kept."""
        digest = plan.digest()
        kept = next((run for run in earlier if run.data.tags.get(COMPLETE_TAG) == digest
                     and run.data.tags.get("mlflow.parentRunId") == parent_id), None)
        for run in earlier:
            if run is not kept:
                self.client.delete_run(run.info.run_id)  # params are immutable: replace the run
        if kept is not None:
            summary.unchanged += 1
            return
        run_id = self.create_run(plan, {"mlflow.parentRunId": parent_id}).info.run_id
        self.log(run_id, plan.tags, plan.params, plan.metrics, plan.end_ms)
        self.client.set_terminated(run_id, plan.status, plan.end_ms)
        self.client.set_tag(run_id, COMPLETE_TAG, digest)  # last: a half-logged run is replaced next time
        if any(COMPLETE_TAG in run.data.tags for run in earlier):
            summary.replaced += 1
        else:
            summary.logged += 1

    def create_run(self, plan: RunPlan, tags: dict):
        """A run that carries its keys from the start, so that an export cut before its
        first log call still leaves a run the next export finds (and replaces)."""
        keys = {k: v for k, v in plan.tags.items() if k in ("segbench.role", "segbench.suite_key", "segbench.run_key")}
        return self.client.create_run(self.experiment_id, plan.start_ms, {**tags, **keys}, run_name=plan.name)

    def delete_incomplete(self, left: dict) -> None:
        """Runs of this suite no record asked for: a half-logged one (no completion tag) is
        deleted; a complete one (of a record since removed) stays, as before."""
        for runs in left.values():
            for run in runs:
                if COMPLETE_TAG not in run.data.tags:
                    self.client.delete_run(run.info.run_id)

    def log(self, run_id: str, tags: dict, params: dict, metrics: list, timestamp_ms) -> None:
        """In batches within MLflow's limits per request."""
        entities = self.entities
        timestamp = timestamp_ms or 0
        tag_list = [entities.RunTag(k, v) for k, v in tags.items()]
        param_list = [entities.Param(k, v) for k, v in params.items()]
        metric_list = [entities.Metric(k, v, timestamp, step) for k, v, step in metrics]
        for batch in chunks(tag_list + param_list, PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=[e for e in batch if isinstance(e, entities.Param)],
                                  tags=[e for e in batch if isinstance(e, entities.RunTag)])
        for batch in chunks(metric_list, METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=batch)


def chunks(items: list, size: int):
    return [items[i: i + size] for i in range(0, len(items), size)]
