"""The environment an executor's remote tasks get: segbench's own variables (``SEGBENCH_*``:
the data folders, the cache) and those the user names with ``--env``. Shared by the Ray and
Slurm executors."""

from __future__ import annotations

import os
import re

from ..errors import SegbenchError

FORWARDED_PREFIX = "SEGBENCH_"  # segbench's own variables: the data folders, the cache
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_names(given) -> list[str]:
    """The names ``--env`` gives: one text or a list of them (the flag repeated, or from
    the Python API), each maybe comma-separated."""
    texts = [given] if isinstance(given, str) else list(given or ())
    return [name.strip() for text in texts for name in str(text).split(",") if name.strip()]


def forwarded_env(names=(), environ=None) -> dict:
    """The variables the tasks get: every ``SEGBENCH_*`` set here, and each of ``names``,
    which must be set here (a typo would otherwise reach the workers as nothing)."""
    environ = os.environ if environ is None else environ
    bad = [name for name in names if not ENV_NAME.fullmatch(name)]
    if bad:
        raise SegbenchError(f"--env {', '.join(map(repr, bad))}: not a variable name; give NAME or NAME1,NAME2")
    unset = [name for name in names if name not in environ]
    if unset:
        raise SegbenchError(f"--env {', '.join(unset)}: not set in this environment, so there is nothing to forward; "
                            "export it before 'segbench run', or drop it from --env")
    forwarded = {name: value for name, value in environ.items() if name.startswith(FORWARDED_PREFIX)}
    return {**forwarded, **{name: environ[name] for name in names}}
