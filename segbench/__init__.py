"""segbench: ablation harness for semantic segmentation components.

This module is segbench's public API: the names a plugin or a script may use, listed in
``__all__`` and documented in docs/api.md. Every other module and name (``segbench.suite``,
``segbench.engine``, ``segbench.components.Catalogue``, ...) is private: it may change in
any release. The contract test classes for plugin authors are public too, in
:mod:`segbench.testing`.

Names are imported on first use (PEP 562): every ``segbench`` command imports this module,
and most of them must start without torch or pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the module (under segbench) that defines it; docs/api.md follows this order
_PUBLIC = {
    # writing a plugin
    "hookimpl": "hookspecs",
    "Registrar": "components",
    "Component": "components",
    "Param": "components",
    "keyword_params": "components",
    "check_params": "params",
    # executors and reporters
    "ExecutorOption": "extensions",
    "ReporterOption": "extensions",
    "ReportContext": "extensions",
    "ReportSection": "extensions",
    "PAGE_ORDER": "extensions",
    "run_task": "executors.task",
    "run_in_process": "executors.task",
    "failed_run": "executors.task",
    "check_on_worker": "preflight_remote",
    "preflight_problems": "preflight_remote",
    # metrics
    "Metric": "metrics",
    "ConfusionMatrixMetric": "metrics",
    "check_label_maps": "metrics",
    "confusion_matrices": "metrics",
    # datasets
    "SegmentationData": "data.samples",
    "TensorPairs": "data.samples",
    "ImageList": "data.samples",
    "MapSamples": "data.samples",
    "pairs_from_arrays": "data.samples",
    "cached_dataset": "data.cache",
    "files_fingerprint": "data.cache",
    "folder_fingerprint": "data.cache",
    "track": "data.cache",
    # errors a plugin raises
    "SegbenchError": "errors",
    "PluginError": "errors",
    # using segbench from Python
    "load_catalogue": "plugins",
    "run_suite": "api",
}
__all__ = [*_PUBLIC, "__version__"]

if TYPE_CHECKING:  # what editors and type checkers see; at run time names load on first use
    from .api import run_suite as run_suite
    from .components import (
        Component as Component,
        Param as Param,
        Registrar as Registrar,
        keyword_params as keyword_params,
    )
    from .data.cache import (
        cached_dataset as cached_dataset,
        files_fingerprint as files_fingerprint,
        folder_fingerprint as folder_fingerprint,
        track as track,
    )
    from .data.samples import (
        ImageList as ImageList,
        MapSamples as MapSamples,
        SegmentationData as SegmentationData,
        TensorPairs as TensorPairs,
        pairs_from_arrays as pairs_from_arrays,
    )
    from .errors import PluginError as PluginError, SegbenchError as SegbenchError
    from .executors.task import failed_run as failed_run, run_in_process as run_in_process, run_task as run_task
    from .extensions import (
        PAGE_ORDER as PAGE_ORDER,
        ExecutorOption as ExecutorOption,
        ReportContext as ReportContext,
        ReportSection as ReportSection,
        ReporterOption as ReporterOption,
    )
    from .hookspecs import hookimpl as hookimpl
    from .metrics import (
        ConfusionMatrixMetric as ConfusionMatrixMetric,
        Metric as Metric,
        check_label_maps as check_label_maps,
        confusion_matrices as confusion_matrices,
    )
    from .params import check_params as check_params
    from .preflight_remote import check_on_worker as check_on_worker, preflight_problems as preflight_problems
    from .plugins import load_catalogue as load_catalogue


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
