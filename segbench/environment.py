"""What a record says about where it ran."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess

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
