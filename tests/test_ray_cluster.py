"""The Ray executor on a real 3-node Ray cluster on loopback, started as a user starts
one (``ray start --head`` and two ``ray start --address``), each node in a process group
of its own, with HOME and Ray's temporary folder in a folder of the test's: the test never
touches the real ~/.ray, nor another Ray on this machine (no ``ray stop``).

One worker node is planted bad: it is started without the PYTHONPATH entry that holds the
suite's plugin module, so the plugins do not import there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import forget_ray_auth

import segbench
from segbench.cli import main

pytestmark = pytest.mark.ray_cluster

NODE_SETTINGS = ["--num-cpus", "1", "--object-store-memory", "100000000", "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
                 "--block"]
START_S = 120  # for three nodes to start and join on two busy cores
STOP_S = 5  # for the nodes to stop on SIGTERM before their groups are killed
BAD_RESOURCE = "planted_bad_node"  # marks the bad node, to find its id

PLUGIN = """
import segbench


@segbench.hookimpl
def segbench_losses(register):
    import torch.nn.functional as F

    register.add_loss("cluster_ce", lambda mode, num_classes, ignore_index: lambda logits, masks: F.cross_entropy(
        logits, masks.long(), ignore_index=ignore_index), description="cross-entropy from a module only some nodes have")
"""

SUITE = """
name = "cluster"
seeds = [0, 1]
plugins = ["cluster_plugin"]

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
loss = "cluster_ce"

[ablate]
"model.upsampler" = ["nearest", "bilinear"]
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port) -> bool:
    with contextlib.suppress(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    return False


class LoopbackCluster:
    """Three Ray nodes on this machine: each ``ray start --block`` in its own session, so
    that its process group (raylet, GCS, workers) can be ended without touching any other."""

    def __init__(self, root: Path, plugin_dir: Path):
        self.root, self.port, self.nodes = root, _free_port(), []
        self.address = f"127.0.0.1:{self.port}"
        self.home = root / "home"
        self.home.mkdir()
        self.cwd = root / "nodes-cwd"  # the nodes' working directory: not the driver's
        self.cwd.mkdir()
        code = str(Path(segbench.__file__).parents[1])  # this checkout's segbench, as the driver imports it
        self.good_path = os.pathsep.join([code, str(plugin_dir)])
        self.bad_path = code

    def start(self):
        self._node("head", self.good_path, "--head", "--port", str(self.port), "--include-dashboard", "false")
        self._wait(lambda: _answers(self.port), "the head node to answer")
        self._node("worker-1", self.good_path, "--address", self.address)
        self._node("worker-bad", self.bad_path, "--address", self.address, "--resources", json.dumps({BAD_RESOURCE: 1}))

    def _node(self, name, python_path, *arguments):
        env = {**os.environ, "HOME": str(self.home), "PYTHONPATH": python_path, "RAY_USAGE_STATS_ENABLED": "0"}
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the node's life
        command = [str(Path(sys.executable).with_name("ray")), "start", *arguments, *NODE_SETTINGS,
                   "--temp-dir", str(self.root / "ray" / name)]
        self.nodes.append(subprocess.Popen(command, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def _wait(self, ready, what):
        deadline = time.monotonic() + START_S
        while not ready():
            dead = [node.args for node in self.nodes if node.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in self.root.glob("*.log"))
                raise RuntimeError(f"waited for {what}: {'a node exited' if dead else 'too long'}\n{logs}")
            time.sleep(0.5)

    def wait_for_nodes(self, ray, count):
        self._wait(lambda: sum(node["Alive"] for node in ray.nodes()) >= count, f"{count} nodes to join")

    def stop(self):
        """End each node's process group (SIGTERM, then SIGKILL), then any process still
        running from this cluster's own temporary folder (a worker that left the group)."""
        for node in self.nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        for pid in self.leftover_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def leftover_pids(self) -> list[int]:
        mine = str(self.root).encode()
        pids = []
        for entry in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if mine in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
        return pids


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    if sys.platform != "linux":
        pytest.skip("the loopback cluster test finds its leftover processes in /proc (Linux)")
    root = Path(tempfile.mkdtemp(prefix="sbray-"))  # short: Ray's socket paths under it must stay under 108 bytes
    plugin_dir = root / "plugin-modules"
    plugin_dir.mkdir()
    (plugin_dir / "cluster_plugin.py").write_text(PLUGIN)
    nodes = LoopbackCluster(root, plugin_dir)
    forget_ray_auth()  # a local Ray of another test module would have this process ask the cluster for a token
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(nodes.home))  # the driver's Ray files too
        patch.syspath_prepend(str(plugin_dir))  # the driver imports the plugin; only the good nodes have it
        try:
            nodes.start()
            ray.init(address=nodes.address, log_to_driver=False, logging_level="ERROR")
            nodes.wait_for_nodes(ray, 3)
            ray.shutdown()  # segbench connects itself, from --ray-address
            yield ray, nodes
        finally:
            ray.shutdown()
            forget_ray_auth()
            nodes.stop()
            leftovers = nodes.leftover_pids()
            shutil.rmtree(root, ignore_errors=True)
    assert not leftovers, f"Ray processes of the test cluster outlived it: {leftovers}"


def _node_ids(ray):
    good = {node["NodeID"] for node in ray.nodes() if node["Alive"] and BAD_RESOURCE not in node["Resources"]}
    bad = {node["NodeID"] for node in ray.nodes() if node["Alive"] and BAD_RESOURCE in node["Resources"]}
    return good, bad


def test_a_relative_suite_runs_on_the_good_nodes_and_the_bad_node_is_named_and_skipped(cluster, tmp_path, monkeypatch, capsys):
    ray, nodes = cluster
    driver = tmp_path / "driver"
    (driver / "suites").mkdir(parents=True)
    (driver / "suites" / "cluster.toml").write_text(SUITE)
    monkeypatch.chdir(driver)  # not the nodes' working directory
    assert Path.cwd() != nodes.cwd

    code = main(["run", "suites/cluster.toml", "-o", "results", "-q", "--executor", "ray", "--ray-address", nodes.address])
    err = capsys.readouterr().err
    assert code == 0, err
    good, bad = _node_ids(ray)
    assert len(good) == 2 and len(bad) == 1
    (bad_id,) = bad
    assert f"(id {bad_id[:12]}) is left out: PluginError: plugin \"cluster_plugin\" not found" in err, err
    records = [json.loads(path.read_text()) for path in (driver / "results").glob("cluster/runs/*/seed-*/record.json")]
    assert len(records) == 4 and [r for r in records if r["status"] != "ok"] == []
    ran_on = {record["ran_on"]["ray_node_id"] for record in records}
    assert ran_on == good  # spread over both good nodes, none on the bad one


def _reads_the_suite_from_a_moved_file(source, variant_id, seed, cache_dir, threads):
    """A run's task as on a worker that must read the suite file, which has moved."""
    from segbench.executors.task import run_task

    return run_task({**source, "path": source["path"] + ".moved-away", "text": None}, variant_id, seed, cache_dir)


def test_a_planted_error_outside_the_run_shows_its_real_cause_in_the_record(cluster, tmp_path, monkeypatch):
    """The issue's failure (a worker that reads the suite from a path it cannot see), planted
    in the task: the record says what happened, from each node it was sent to."""
    from ray import cloudpickle

    import segbench.executors.ray as ray_executor
    from segbench.data.cache import resolve_cache_dir
    from segbench.plugins import load_catalogue
    from segbench.suite import load_suite

    _, nodes = cluster
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the nodes cannot import this test module
    monkeypatch.setattr(ray_executor, "_run_with_threads", _reads_the_suite_from_a_moved_file)
    (tmp_path / "cluster.toml").write_text(SUITE)
    suite = load_suite(tmp_path / "cluster.toml", load_catalogue)
    executor = ray_executor.RayExecutor(nodes.address)
    (record,) = executor.records(suite, [(suite.variants[0], 0)], resolve_cache_dir())
    error = record["error"]
    assert record["status"] == "failed" and error["type"] == "SegbenchError"
    assert error["message"] == f"Ray could not finish the run: suite file {tmp_path / 'cluster.toml'}.moved-away does not exist"
    assert "read_suite_file" in error["traceback"] and "\x1b" not in error["message"] + error["traceback"]
    assert "failed outside the run on each node it was sent to" in error["hint"]  # both good nodes tried, then given up
