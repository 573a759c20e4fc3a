"""Tests of the segbench-example-executor plugin without training: the hook registers the
executor and its option, and a run whose process dies becomes that run's failed record.
(A real suite through it: segbench's tests/test_example_extensions.py.)"""

import types

import segbench
import segbench_example_executor


def registered():
    register = segbench.Registrar("segbench-example-executor", "test")
    segbench_example_executor.segbench_executors(register=register)
    return {executor.name: executor for executor in register.executors}


def test_the_hook_registers_the_executor_with_its_option():
    executor = registered()["subprocess"]
    assert [(option.flag, option.default) for option in executor.options] == [("--log-dir", None)]
    assert executor.build({}).log_dir is None
    assert str(executor.build({"log_dir": "logs"}).log_dir) == "logs"


def test_a_run_whose_process_dies_is_a_failed_record(tmp_path, monkeypatch):
    monkeypatch.setattr(segbench_example_executor, "CHILD", "import os; print('dying'); os._exit(7)")
    suite = types.SimpleNamespace(source={"path": "none.toml", "plugins": [], "overrides": {}}, name="s", baseline_id="v",
                                  path=tmp_path / "none.toml")
    variant = types.SimpleNamespace(id="v", label="v", factors={}, config={"train": {}}, versions={})
    executor = registered()["subprocess"].build({"log_dir": str(tmp_path / "logs")})
    (record,) = executor.records(suite, [(variant, 3)], tmp_path / "cache")
    assert (record["status"], record["seed"], record["error"]["type"]) == ("failed", 3, "SubprocessDied")
    assert "exit code 7" in record["error"]["message"]
    assert (tmp_path / "logs" / "v-seed-3.log").read_text() == "dying\n"
