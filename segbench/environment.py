"""What a record says about where it ran."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys

PACKAGES = ("segbench", "torch", "torchvision", "segmentation-models-pytorch", "numpy", "pycocotools")


@functools.cache
def environment() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": {name: _version(name) for name in PACKAGES},
        "segbench_commit": segbench_commit(),
    }


def run_environment(suite_path) -> dict:
    """Where a run ran: the machine and packages, segbench's own commit, and the commit of
    the repository holding the suite file (None outside a git checkout)."""
    return {**environment(), "suite_commit": git_commit(os.path.dirname(os.path.abspath(suite_path)))}


def ran_on(device) -> dict:
    """Where one run ran, read in the process that ran it: the host, the Ray node or Slurm
    job when there is one, and the name of the device it trained on (``device``: the
    torch device, e.g. "cuda:0"; None when the run failed before choosing one). The
    runner adds the executor's name, which only the driver knows."""
    place = {"hostname": socket.gethostname(), "device_name": device_name(device) if device else None}
    node = ray_node_id()
    if node:
        place["ray_node_id"] = node
    job = slurm_job_id()
    if job:
        place["slurm_job_id"] = job
    return place


def device_name(device: str) -> str | None:
    """The GPU's name for a CUDA device, else the CPU's model: cost figures are this device's.
    None when CUDA cannot say (a broken context after a failed run must not lose its record)."""
    if str(device).startswith("cuda"):
        import torch  # a CUDA run has loaded it already

        try:
            return torch.cuda.get_device_name(torch.device(device))
        except Exception:  # noqa: BLE001 - see the docstring
            return None
    return cpu_model()


@functools.cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def ray_node_id():
    """The Ray node this process runs on, when it is a Ray worker or driver; never imports Ray."""
    ray = sys.modules.get("ray")
    try:
        return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - an odd Ray build must not fail the run it describes
        return None


def slurm_job_id():
    """``<array job>_<task>`` for a Slurm array task, the job id for a plain job, else None."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def segbench_commit():
    """The commit segbench's own source is at, when it runs from a checkout (an editable
    install); None for an installed release, whose version says it all."""
    return git_commit(os.path.dirname(os.path.abspath(__file__)))



def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(cwd=None):
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
