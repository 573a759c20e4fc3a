"""segbench: ablation harness for semantic segmentation components."""

from .components import Registrar
from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "Registrar", "run_suite", "__version__"]


def run_suite(path, **options):
    """Run a suite file; returns a pandas DataFrame with one row per run record."""
    from .api import run_suite as _run_suite

    return _run_suite(path, **options)
