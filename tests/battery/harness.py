"""The bad-input battery: one row per case, each with the exit code it must end in and a
fragment of what it must say. Every case also asserts that no Python traceback reaches
the user (exit 3 writes it to a crash log instead).

A row::

    Case("misspelt-loss", ["run", "{suite}", "--set", "train.loss=dcie"], 2, "did you mean", suite=TINY)

``argv`` may name ``{suite}`` (the case's suite file, written from ``suite``), ``{tmp}``
(the case's own folder) and ``{results}`` (a finished tiny results folder, copied fresh
for the case when ``results=True``). ``setup(tmp)`` runs before the command, e.g. to damage
a file.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from segbench.cli import main

# The cheapest suite that trains for real: 2 variants x 2 seeds, a few seconds in all.
TINY = """
name = "tiny"
seeds = [0, 1]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [16, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 4

[eval]
metrics = ["miou", "dice"]

[ablate]
"model.upsampler" = ["nearest", "bilinear"]
"""


def tiny(*, drop=(), add="", **replace) -> str:
    """TINY with lines starting with a key in ``drop`` removed, ``replace`` as
    ``key=value-text`` line substitutions (first match), and ``add`` appended."""
    lines = textwrap.dedent(TINY).splitlines()
    lines = [line for line in lines if not any(line.startswith(f"{key} ") or line.startswith(f"{key}=") for key in drop)]
    for key, value in replace.items():
        key = key.replace("__", ".")
        for index, line in enumerate(lines):
            if line.startswith(f"{key} =") or line.startswith(f'"{key}" ='):
                lines[index] = f"{line.split('=')[0]}= {value}"
                break
        else:
            raise KeyError(f"TINY has no line for {key!r}")
    return "\n".join(lines) + "\n" + textwrap.dedent(add)


@dataclass(frozen=True)
class Case:
    id: str
    argv: list
    exit: int
    says: str
    suite: str | None = None
    setup: Callable | None = None
    results: bool = False

    def __str__(self):
        return self.id


_finished: dict = {}


def finished_results() -> Path:
    """A results folder holding the finished TINY suite, made once per test session."""
    if "root" not in _finished:
        root = Path(tempfile.mkdtemp(prefix="segbench-battery-"))
        (root / "tiny.toml").write_text(TINY)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["run", str(root / "tiny.toml"), "-o", str(root / "results"), "-q"])
        assert code == 0, "the battery's finished results could not be made"
        _finished["root"] = root / "results"
    return _finished["root"]


def run_case(case: Case, tmp: Path) -> tuple[int, str]:
    """Run one case's command in this process; returns (exit code, stdout + stderr)."""
    names = {"tmp": str(tmp), "suite": str(tmp / "suite.toml"), "results": str(tmp / "results")}
    if case.suite is not None:
        (tmp / "suite.toml").write_text(textwrap.dedent(case.suite))
    if case.results:
        shutil.copytree(finished_results(), tmp / "results")
    if case.setup is not None:
        case.setup(tmp)
    argv = [str(arg).format(**names) for arg in case.argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue() + err.getvalue()


def check_case(case: Case, tmp: Path) -> None:
    code, text = run_case(case, tmp)
    assert "Traceback (most recent call last)" not in text, text
    assert code == case.exit, f"exit {code}, expected {case.exit}:\n{text}"
    assert case.says.lower() in text.lower(), f"expected {case.says!r} in:\n{text}"
