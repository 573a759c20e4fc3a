"""Contract tests for segbench components, executors and reporters: the checks every
standard plugin passes, for plugin authors to run on their own.

Two ways to use them (docs/writing-plugins.md, "Testing a plugin"):

- ``pytest --segbench-contracts`` collects one contract test class per component that
  the distribution under test registers (the pytest plugin in :mod:`.pytest_plugin`,
  installed with segbench through the ``pytest11`` entry point);
- subclass a contract class in your tests and set ``name`` (and ``params``)::

      from segbench.testing import LossContract

      class TestMyLoss(LossContract):
          name = "my_loss"
          params = {"smooth": 0.5}

A contract class looks its component up in every installed plugin, as ``segbench run``
does; set ``hook`` to one of your hook functions to test a plugin that is not installed.

The classes import torch, so they are loaded on first use: importing this package (which
pytest does at every start through the plugin) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_EXPORTS = {
    "ComponentContract": "_base",
    "UpsamplerContract": "upsampler",
    "ArchitectureContract": "architecture",
    "RecordingUpsamplerFactory": "architecture",
    "single_torch_thread": "architecture",
    "LossContract": "loss",
    "MetricContract": "metric",
    "DatasetContract": "dataset",
    "ExecutorContract": "executor",
    "ReporterContract": "reporter",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from ._base import ComponentContract as ComponentContract
    from .architecture import (
        ArchitectureContract as ArchitectureContract,
        RecordingUpsamplerFactory as RecordingUpsamplerFactory,
        single_torch_thread as single_torch_thread,
    )
    from .dataset import DatasetContract as DatasetContract
    from .executor import ExecutorContract as ExecutorContract
    from .loss import LossContract as LossContract
    from .metric import MetricContract as MetricContract
    from .reporter import ReporterContract as ReporterContract
    from .upsampler import UpsamplerContract as UpsamplerContract


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
