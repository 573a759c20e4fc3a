"""The Ray executor on a local Ray instance (one per module: tests/conftest.py local_ray),
as on an existing cluster: the workers' working directory is not the driver's, and Ray
writes nothing into the user's home."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from segbench.cli import main
from segbench.executors.ray import MAX_RETRIES, RayExecutor, _attempt_number
from segbench.plugins import load_catalogue
from segbench.runner import resolve_cache_dir
from segbench.suite import load_suite

COMPUTED = ("metrics", "curves", "per_class", "per_image")  # what a run computes

SUITE = """
name = "executors"
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
epochs = 1
batch_size = 4

[ablate]
"model.upsampler" = ["nearest", "bilinear"]
"""


def _records(folder):
    records = [json.loads(p.read_text()) for p in folder.glob("executors/runs/*/seed-*/record.json")]
    return {(r["variant_id"], r["seed"]): r for r in records}


@pytest.fixture(autouse=True, scope="module")
def probes_by_value(local_ray):
    """The probe functions below travel by value: the workers cannot import this test module."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _working_directory():
    return os.getcwd()


@pytest.fixture
def suite_folder(tmp_path):
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "executors.toml").write_text(SUITE)
    return folder


def test_a_suite_given_by_a_relative_path_runs_where_the_workers_cannot_resolve_it_with_the_local_executor_s_bits(local_ray, suite_folder, tmp_path,
                                                                                    monkeypatch, capsys):
    """The README's form, `segbench run suites/x.toml --executor ray`, from a directory that
    is not the workers' (they resolve a relative path from theirs): every run finishes, and
    what it computed is bitwise the local executor's (tests/test_same_numbers.py does the
    same for the process executor)."""
    monkeypatch.chdir(suite_folder)
    ray, _ = local_ray
    assert ray.get(ray.remote(_working_directory).remote()) != str(suite_folder)  # the workers are elsewhere
    source = load_suite("executors.toml", load_catalogue).source
    assert source["path"] == str(suite_folder / "executors.toml") and source["text"] == SUITE  # what each task is sent

    assert main(["run", "executors.toml", "-o", str(tmp_path / "ray"), "-q", "--executor", "ray"]) == 0
    assert main(["run", "executors.toml", "-o", str(tmp_path / "local"), "-q"]) == 0
    assert "Ray" not in capsys.readouterr().out  # -q: no Ray log lines among segbench's output
    ray_records, local_records = _records(tmp_path / "ray"), _records(tmp_path / "local")
    assert ray_records.keys() == local_records.keys() and len(ray_records) == 4
    for key, record in ray_records.items():
        assert record["status"] == "ok", record.get("error")
        for computed in COMPUTED:  # bit for bit: the suite's thread count, not the executor's, decides the float path
            assert record.get(computed) == local_records[key].get(computed), f"{computed} of {key} differs under Ray"
        assert record["ran_on"]["executor"] == "ray" and record["ran_on"]["ray_node_id"]
        assert record["environment"]["attempts"] == 1 and "retried_because" not in record["environment"]
        assert "attempts" not in local_records[key]["environment"]


def _reads_the_suite_from_a_moved_file(source, variant_id, seed, cache_dir, threads):
    """A run's task as on a worker that must read the suite file, which has moved."""
    from segbench.executors.task import run_task

    return run_task({**source, "path": source["path"] + ".moved-away", "text": None}, variant_id, seed, cache_dir)


def test_a_task_that_fails_outside_the_run_records_its_real_cause_without_escapes(local_ray, suite_folder, monkeypatch):
    """A task that raises before its run starts (here: its worker cannot read the suite
    file; the node check passed); Ray wraps that in a coloured RayTaskError whose first
    line says nothing. The record keeps the cause and its traceback, as plain text; with
    one node, the run is not sent again, and one failure does not drain the node."""
    import segbench.executors.ray as ray_executor

    monkeypatch.setattr(ray_executor, "_run_with_threads", _reads_the_suite_from_a_moved_file)
    suite = load_suite(suite_folder / "executors.toml", load_catalogue)
    executor = RayExecutor(None)
    records = list(executor.records(suite, [(suite.variants[0], 0)], resolve_cache_dir()))
    assert len(records) == 1
    error = records[0]["error"]
    assert records[0]["status"] == "failed" and error["type"] == "SegbenchError"
    assert error["message"] == f"Ray could not finish the run: suite file {suite.source['path']}.moved-away does not exist"
    assert "read_suite_file" in error["traceback"]
    assert not any("\x1b" in text for text in (error["message"], error["traceback"]))
    assert executor.notes == []


def _probe():
    import ray

    return {"SEGBENCH_PROBE": os.environ.get("SEGBENCH_PROBE"), "MY_TOKEN": os.environ.get("MY_TOKEN"),
            "NOT_NAMED": os.environ.get("NOT_NAMED"), "task": ray.get_runtime_context().get_task_name()}


def test_segbench_variables_and_those_named_with_env_reach_the_tasks_named_after_their_run(local_ray, monkeypatch):
    ray, home = local_ray
    monkeypatch.setenv("SEGBENCH_PROBE", "data-here")
    monkeypatch.setenv("MY_TOKEN", "t0k")
    monkeypatch.setenv("NOT_NAMED", "stays-here")
    executor = RayExecutor(None, env="MY_TOKEN")
    task = executor._task(ray.remote(num_cpus=1)(_probe), SimpleNamespace(label="upsampler=bilinear"), 2)
    seen = ray.get(task.remote())
    assert seen == {"SEGBENCH_PROBE": "data-here", "MY_TOKEN": "t0k", "NOT_NAMED": None, "task": "segbench upsampler=bilinear seed=2"}
    assert (home / ".ray").is_dir()  # Ray's own files went to the stand-in home


def _dies_on_its_first_attempt():
    if _attempt_number() == 0:
        os._exit(1)  # the worker dies, as on an out-of-memory kill or a lost node
    return _attempt_number()


def _raises():
    raise ValueError(f"raised on attempt {_attempt_number()}")


def test_a_task_whose_worker_died_is_retried_and_one_that_raised_is_not(local_ray):
    ray, _ = local_ray
    executor = RayExecutor(None)
    run = SimpleNamespace(label="x")
    assert MAX_RETRIES >= 1
    assert ray.get(executor._task(ray.remote(num_cpus=1)(_dies_on_its_first_attempt), run, 0).remote()) == 1
    with pytest.raises(Exception, match="raised on attempt 0"):
        ray.get(executor._task(ray.remote(num_cpus=1)(_raises), run, 0).remote())


@pytest.mark.parametrize("env, expected", [
    ("SEGBENCH_SURELY_UNSET_NAME", "not set in this environment"),
    ("BAD-NAME", "not a variable name"),
])
def test_a_bad_env_name_exits_2_before_training(tmp_path, suite_folder, capsys, env, expected):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    out = tmp_path / "out"
    assert main(["run", str(suite_folder / "executors.toml"), "-o", str(out), "-q", "--executor", "ray", "--env", env]) == 2
    err = capsys.readouterr().err
    assert f"--env {env}" in err or f"--env '{env}'" in err, err
    assert expected in err and not list(out.glob("executors/runs/*"))


def test_ray_started_by_segbench_keeps_its_log_lines_and_the_workers_output_out_of_segbench_output(monkeypatch):
    """`--executor ray` without an address starts Ray itself; under -q only segbench speaks."""
    import segbench.executors.ray as ray_executor

    started = {}

    class NotStartedRay:
        def is_initialized(self):
            return False

        def init(self, **settings):
            started.update(settings)

    monkeypatch.setattr(ray_executor, "import_ray", NotStartedRay)
    RayExecutor(None)
    assert started["log_to_driver"] is False and started["logging_level"] >= logging.ERROR


def test_env_may_be_repeated_or_comma_separated_and_every_name_is_forwarded(monkeypatch):
    from segbench.cli import build_parser, executor_options
    from segbench.executors.forwarding import env_names, forwarded_env
    from segbench.plugins import load_catalogue as catalogue

    parser = build_parser(catalogue([]).executors)
    args = parser.parse_args(["run", "x.toml", "--executor", "ray", "--env", "HF_HOME", "--env", "TORCH_HOME,MY_TOKEN"])
    names = env_names(executor_options(args)["env"])
    assert names == ["HF_HOME", "TORCH_HOME", "MY_TOKEN"]
    environ = {"HF_HOME": "/h", "TORCH_HOME": "/t", "MY_TOKEN": "k", "SEGBENCH_COCO": "/coco", "OTHER": "x"}
    assert forwarded_env(names, environ) == {"HF_HOME": "/h", "TORCH_HOME": "/t", "MY_TOKEN": "k", "SEGBENCH_COCO": "/coco"}


PLUGIN = """
import segbench


@segbench.hookimpl
def segbench_losses(register):
    import torch.nn.functional as F

    register.add_loss("shipped_ce", lambda mode, num_classes, ignore_index: lambda logits, masks: F.cross_entropy(
        logits, masks.long(), ignore_index=ignore_index), description="cross-entropy from a plugin file")
"""


def _with_plugin_file(folder):
    (folder / "plugins").mkdir()
    (folder / "plugins" / "shipped.py").write_text(PLUGIN)
    suite = SUITE.replace('name = "executors"', 'name = "executors"\nplugins = ["plugins/shipped.py"]').replace(
        "batch_size = 4", 'batch_size = 4\nloss = "shipped_ce"')
    (folder / "executors.toml").write_text(suite)
    return folder / "executors.toml"


def test_a_worker_loads_local_plugin_files_from_their_content_with_the_same_identity(suite_folder, tmp_path):
    """What a worker on another machine gets: the suite's text and its plugin files' bytes.
    With the driver's files gone, the suite loads with the same variant ids, the same
    plugin identity and the same dataset cache key (its source fingerprint)."""
    from segbench.engine.build import dataset_origin
    from segbench.executors import task

    driver = load_suite(_with_plugin_file(suite_folder), load_catalogue)
    plugin = str(suite_folder / "plugins" / "shipped.py")
    assert driver.source["plugin_files"] == {plugin: PLUGIN.encode()}
    origin = dataset_origin(driver.catalogue.get("loss", "shipped_ce"))
    moved = tmp_path / "moved-away"
    suite_folder.rename(moved)  # neither the suite nor its plugin file is where the driver read them
    task._suites.clear()
    worker, variant = task.find_run(driver.source, driver.variants[1].id)
    assert [v.id for v in worker.variants] == [v.id for v in driver.variants] and variant.id == driver.variants[1].id
    loss = worker.catalogue.get("loss", "shipped_ce")
    assert loss.provenance == driver.catalogue.get("loss", "shipped_ce").provenance
    assert dataset_origin(loss) == origin and loss.provider == plugin  # named as the driver names it
    assert not (suite_folder / "plugins" / "shipped.py").exists() and moved.is_dir()


def test_an_edited_plugin_file_is_not_mixed_with_the_one_the_driver_read(suite_folder):
    """Each content gets its own copy: a worker never runs another version of the plugin
    than the one whose hash is in the variant ids."""
    from segbench.plugins import _SHIPPED, shipped_plugin_files

    plugin = str(suite_folder / "gone.py")
    with shipped_plugin_files({plugin: b"A = 1\n"}):
        first = _SHIPPED[plugin]
    with shipped_plugin_files({plugin: b"A = 2\n"}):
        second = _SHIPPED[plugin]
    assert first != second and first.name == second.name == "gone.py"
    assert (first.read_bytes(), second.read_bytes()) == (b"A = 1\n", b"A = 2\n") and not _SHIPPED


def test_ray_runs_a_suite_whose_plugin_file_the_workers_have_not(local_ray, suite_folder, tmp_path, monkeypatch):
    """The plugin file is removed after the driver read it: the node check and the runs
    load it from the content shipped with the suite."""
    path = _with_plugin_file(suite_folder)
    suite = load_suite(path, load_catalogue)
    (suite_folder / "plugins" / "shipped.py").unlink()
    records = list(RayExecutor(None).records(suite, [(suite.variants[0], 0)], resolve_cache_dir()))
    assert [r["status"] for r in records] == ["ok"], records[0].get("error")
    assert records[0]["config"]["train"]["loss"]["name"] == "shipped_ce"


NODELESS = """
import segbench


@segbench.hookimpl
def segbench_losses(register):
    pass
"""


def test_no_node_that_can_import_the_plugins_is_exit_2_naming_each_node_before_any_run(local_ray, suite_folder, tmp_path,
                                                                                        monkeypatch, capsys):
    """A plugin module the driver imports (it is on its sys.path) and the nodes cannot:
    each node is named with the reason; nothing is sent, nothing recorded."""
    modules = tmp_path / "only-on-the-driver"
    modules.mkdir()
    (modules / "driver_only_plugin.py").write_text(NODELESS)
    monkeypatch.syspath_prepend(str(modules))
    (suite_folder / "executors.toml").write_text(SUITE.replace('name = "executors"', 'name = "executors"\nplugins = ["driver_only_plugin"]'))
    out = tmp_path / "out"
    assert main(["run", str(suite_folder / "executors.toml"), "-o", str(out), "-q", "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    ray, _ = local_ray
    node = ray.get_runtime_context().get_node_id()
    assert f"(id {node[:12]}) is left out: PluginError: plugin \"driver_only_plugin\" not found" in err, err
    assert "no Ray node can run this suite, so nothing was sent" in err
    assert not list(out.glob("executors/runs/*/seed-*/record.json"))


class _FakeRay:
    """Just enough of Ray to follow where the executor sends each run: the tasks run when
    read, in the order sent; a run's task on a node in ``failing`` raises outside the run."""

    def __init__(self, hosts, failing=()):
        self.hosts, self.failing, self.sent = hosts, set(failing), []

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": float(len(self.hosts))}

    def nodes(self):
        return [{"NodeID": _node_id(host), "Alive": True, "NodeManagerHostname": host, "Resources": {"CPU": 1.0}} for host in self.hosts]

    def put(self, value):
        return value

    def remote(self, function=None, **resources):
        def remote_function(function):
            return SimpleNamespace(options=lambda **options: SimpleNamespace(
                remote=lambda *args: _Ref(function, args, options["scheduling_strategy"].node_id)))

        return remote_function if function is None else remote_function(function)

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        from segbench.executors.ray_nodes import node_problem

        if ref.function is node_problem:
            return None
        _, variant_id, seed = ref.args[:3]
        self.sent.append((variant_id, seed, ref.node))
        if ref.node in map(_node_id, self.failing):
            raise RuntimeError(f"the worker on node {ref.node[:8]} could not start")
        return {"variant_id": variant_id, "seed": seed, "status": "ok", "environment": {"attempts": 1}}

    def cancel(self, ref, force=False):
        pass


@dataclasses.dataclass(eq=False)
class _Ref:
    function: object
    args: tuple
    node: str


def _node_id(host):
    return (host.encode().hex() * 28)[:56]  # what Ray's NodeID takes: 28 bytes in hex


def _runs(count):
    return [(SimpleNamespace(id=f"v{index}", label=f"v{index}"), 0) for index in range(count)]


def _executor_on(fake, monkeypatch):
    import segbench.executors.ray as ray_executor

    pytest.importorskip("ray", reason="the ray extra is not installed")
    monkeypatch.setattr(ray_executor, "import_ray", lambda: fake)
    return RayExecutor("auto")


def test_a_node_that_fails_two_runs_in_a_row_outside_the_run_is_drained_and_its_runs_go_elsewhere(monkeypatch, capsys):
    fake = _FakeRay(["bad-", "good"], failing=["bad-"])
    executor = _executor_on(fake, monkeypatch)
    records = list(executor.records(SimpleNamespace(source={}), _runs(5), "cache"))
    assert sorted(r["variant_id"] for r in records) == [f"v{i}" for i in range(5)] and {r["status"] for r in records} == {"ok"}
    on_bad = [variant for variant, _, node in fake.sent if node == _node_id("bad-")]
    assert len(on_bad) == 2  # then drained: no third run went there
    drained = ("Ray node bad- (id 6261642d6261) is drained: 2 runs in a row failed there outside the run (last: RuntimeError: "
               "the worker on node 6261642d could not start); its runs go to the other nodes")
    assert executor.notes == [drained] and drained in capsys.readouterr().err
    resent = [r for r in records if r["variant_id"] in on_bad]
    for record in resent:  # not counted as the runs' failures: the other node ran them; the record says so
        assert record["environment"]["attempts"] == 2
        assert record["environment"]["retried_because"] == ("its task failed outside the run on Ray node bad- (id 6261642d6261): "
                                                            "RuntimeError: the worker on node 6261642d could not start")


def test_runs_that_no_node_can_finish_fail_with_each_node_s_cause_and_the_drained_nodes_named(monkeypatch):
    from segbench.executors import ray as ray_executor

    monkeypatch.setattr(ray_executor, "failed_record", lambda suite, variant, seed, error, started: {
        "variant_id": variant.id, "seed": seed, "status": "failed", "error": error})
    fake = _FakeRay(["aaaa", "bbbb"], failing=["aaaa", "bbbb"])
    executor = _executor_on(fake, monkeypatch)
    records = list(executor.records(SimpleNamespace(source={}), _runs(4), "cache"))
    assert len(records) == 4 and {r["status"] for r in records} == {"failed"}
    assert len(executor.notes) == 2 and all("is drained" in note for note in executor.notes)
    tried_both = [r for r in records if r["error"]["type"] == "RuntimeError"]
    assert tried_both and "failed outside the run on each node it was sent to: Ray node aaaa" in tried_both[0]["error"]["hint"]
    left = [r for r in records if r["error"]["type"] == "NoRayNode"]
    assert left and all("no Ray node is left to run it: Ray node aaaa (id 616161616161) drained, Ray node bbbb "
                        "(id 626262626262) drained" in r["error"]["message"] for r in left)


class _NotingExecutor:
    """An executor that warns about a worker and runs in this process, or refuses the suite."""

    name, shows_epochs = "noting", False

    def __init__(self, refuse=False):
        self.refuse, self.notes, self.sent = refuse, [], 0

    def records(self, suite, pending, cache_dir, on_epoch=None):
        from segbench.errors import SegbenchError
        from segbench.executors.task import run_in_process

        if self.refuse:
            raise SegbenchError("no worker can run this suite: worker w1 lacks the data")
        self.notes.append("worker w1 is left out: it lacks the data")
        for variant, seed in pending:
            self.sent += 1
            yield run_in_process(suite, variant, seed, cache_dir)

    def close(self):
        pass


def test_the_executor_s_notes_reach_the_suite_outcome_and_a_refusal_before_any_run_is_bad_input(suite_folder, tmp_path):
    from segbench.errors import SegbenchError
    from segbench.runner import run_prepared

    suite = load_suite(suite_folder / "executors.toml", load_catalogue, overrides={"seeds": [0], "ablate": {}})
    outcome = run_prepared(suite, tmp_path / "out", quiet=True, executor=_NotingExecutor())
    assert outcome.notes == ["worker w1 is left out: it lacks the data"] and not outcome.failures
    with pytest.raises(SegbenchError, match="no worker can run this suite: worker w1 lacks the data"):
        run_prepared(suite, tmp_path / "refused", quiet=True, executor=_NotingExecutor(refuse=True))
    assert not list((tmp_path / "refused").glob("*/runs/*/seed-*/record.json"))


HANGS_IN_ITS_TASK = '''
import os
import time

from segbench import hookimpl


def hanger(mode, num_classes, ignore_index, *, pid_file: str = ""):
    def loss(logits, target):
        with open(pid_file, "w") as out:
            out.write(str(os.getpid()))
        while True:  # a run that would hold its GPU until its timeout
            time.sleep(0.05)
    return loss


@hookimpl
def segbench_losses(register):
    register.add_loss("hanger", hanger)
'''


def _pid_written(path, limit_s=120) -> int:
    give_up = time.monotonic() + limit_s
    while time.monotonic() < give_up:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"the hanging run never started ({path} not written in {limit_s} s)")


def _alive(pid: int, limit_s=15) -> bool:
    give_up = time.monotonic() + limit_s
    while time.monotonic() < give_up:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def test_close_cancels_a_ray_task_still_training(local_ray, suite_folder, tmp_path):
    """Item 6: Ctrl-C, SIGTERM or SIGHUP of segbench run closes the executor, which must stop
    the tasks it started: a task left running would hold its node (and GPU) until it ends."""
    plugin = tmp_path / "hanger_loss.py"
    plugin.write_text(HANGS_IN_ITS_TASK)
    pid_file = tmp_path / "training.pid"
    (suite_folder / "hangs.toml").write_text(
        SUITE.replace('"model.upsampler" = ["nearest", "bilinear"]', f'"train.loss" = [{{ name = "hanger", pid_file = "{pid_file}" }}]'))
    suite = load_suite(suite_folder / "hangs.toml", load_catalogue, extra_plugins=[str(plugin)])
    executor = RayExecutor(None)
    reading = threading.Thread(target=lambda: list(executor.records(suite, [(suite.variants[0], 0)], resolve_cache_dir())),
                               daemon=True)
    reading.start()
    worker = _pid_written(pid_file)
    executor.close()
    assert not _alive(worker), f"close() returned, but the Ray worker {worker} still runs the cancelled run"
