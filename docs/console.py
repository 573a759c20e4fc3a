"""Rewrite the console blocks of README.md and docs/ from their commands' real output.

    python docs/console.py            rewrite every stale block (and the pictures named by writes=)
    python docs/console.py --check    rewrite nothing; exit 1 listing the stale blocks
    python docs/console.py PAGE...    only these pages

tests/test_docs.py runs ``--check``, so a console block that no longer matches what its
command prints fails the tests, as a stale docs/suite-reference.md does.

The convention
--------------
Every ```console block in README.md and docs/ (docs/examples/ aside: generated reports)
follows a marker comment, at the same indentation:

    <!-- console -->
    ```console
    $ segbench list upsamplers
    ...what it prints...
    ```

The block's ``$ `` lines are its commands. They run in order in one bash (so ``echo $?``
sees the previous command's status), and each one's output, stdout and stderr together as
a terminal shows them, becomes the lines under it. Options, in the marker:

``cwd=PATH``
    run from PATH (relative to the repository root) instead of the root.
``writes=PATH``
    the commands write this file (a picture): rewritten in place; ``--check`` draws it into
    a temporary folder and compares pixels instead (a mean difference above 1 of 255 is
    stale; fonts and matplotlib versions move less than that, another sample far more).
``from="COMMAND"``
    for a block whose one command trains (minutes: too slow for a test): COMMAND prints the
    same text from stored results without training, and its output fills the block, which
    still shows its own command.
``recorded="WHY"``
    never run: the block is a transcript from a machine or data set a test cannot have.
    WHY says which, and is listed on every run.

A console block without a marker is an error: show commands without output in a ```bash
block instead.

What keeps the output the same from machine to machine
------------------------------------------------------
Each block runs in a fresh environment: a new empty data cache and home folder, no
``SEGBENCH_*`` dataset roots, Hugging Face offline (no cached weights), ``COLUMNS=100``,
unbuffered Python, the interpreter's own ``bin/`` first on PATH. Output is then
normalised: escape sequences dropped, a progress bar's redraws (``\\r``) reduced to what a
terminal shows last, trailing spaces stripped, the temporary data cache shown as the
default ``~/.cache/segbench`` and the home folder as ``~``, the repository's path removed.
Durations (``3.9 s``, ``120 ms``, ``4 min``) are the one machine-dependent value left in
the output: a block is stale only when something other than a duration changed, and an
unchanged block keeps the durations it was written with. Keep other values that depend on
the machine (memory, absolute paths outside the repository) out of console blocks.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300
BLOCK = re.compile(r"^(?P<indent>[ \t]*)<!-- console(?P<options>(?:[ \t][^\n]*?)?)[ \t]*-->\n"
                   r"(?P=indent)```console\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
FENCE = re.compile(r"^[ \t]*```console[ \t]*$", re.M)
QUOTE = re.compile(r"^[ \t]*(`{4,}).*?^[ \t]*\1[ \t]*$", re.M | re.S)
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
DURATION = re.compile(r"\b\d+(?:\.\d+)?[ \t]?(?:ms|s|min)\b")
# A sample-cache entry's name hashes its key, which holds an editable plugin's source
# fingerprint (segbench.data.cache.plugin_origin): any edit to the standard datasets changes it.
CACHE_ENTRY = re.compile(r"\b((?:samples|scans)/[\w.]+-)[0-9a-f]{20}\b")
OPTIONS = {"cwd", "writes", "from", "recorded"}


def pages() -> list[Path]:
    docs = [p for p in sorted((ROOT / "docs").rglob("*.md")) if "examples" not in p.relative_to(ROOT / "docs").parts]
    return [ROOT / "README.md", *docs]


def shown(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


@dataclass
class Block:
    page: Path
    line: int
    indent: str
    options: dict
    body: str  # without the indentation
    span: tuple[int, int]  # of the body in the page's text

    @property
    def where(self) -> str:
        return f"{shown(self.page)}:{self.line}"

    def commands(self) -> list[str]:
        return [line[2:] for line in self.body.splitlines() if line.startswith("$ ")]


def parse_options(text: str, where: str) -> dict:
    options = {}
    for token in shlex.split(text):
        key, equals, value = token.partition("=")
        if key not in OPTIONS:
            raise ValueError(f"{where}: unknown console option {key!r}; valid: {', '.join(sorted(OPTIONS))}")
        if not equals or not value:
            raise ValueError(f"{where}: write console options as KEY=VALUE, got {token!r}")
        options[key] = value
    return options


def blocks(page: Path) -> tuple[list[Block], list[str]]:
    """The marked blocks of a page, and the places of console blocks without a marker.
    A console fence inside a longer fence (a file quoted whole, e.g. a plugin's README) is
    part of that quotation, not a block."""
    text = page.read_text(encoding="utf-8")
    quoted = [m.span() for m in QUOTE.finditer(text)]
    inside = lambda m: any(start < m.start() < end for start, end in quoted)  # noqa: E731
    found, marked = [], set()
    for m in (m for m in BLOCK.finditer(text) if not inside(m)):
        indent = m["indent"]
        body = "".join(line[len(indent):] if line.startswith(indent) else line
                       for line in m["body"].splitlines(keepends=True))
        fence_line = text.count("\n", 0, m.start()) + 2
        options = parse_options(m["options"], f"{shown(page)}:{fence_line - 1}")
        found.append(Block(page, fence_line, indent, options, body, m.span("body")))
        marked.add(fence_line)
    unmarked = [f"{shown(page)}:{text.count(chr(10), 0, m.start()) + 1}" for m in FENCE.finditer(text)
                if not inside(m) and text.count("\n", 0, m.start()) + 1 not in marked]
    return found, unmarked


def environment(scratch: Path) -> dict:
    (scratch / "home").mkdir()
    bin_dir = str(Path(sys.executable).parent)
    return {
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": str(scratch / "home"),
        "SEGBENCH_DATA_CACHE": str(scratch / "cache"),
        "SEGBENCH_CRASH_DIR": str(scratch / "crash"),
        "HF_HOME": str(scratch / "hf"), "HF_HUB_OFFLINE": "1", "TORCH_HOME": str(scratch / "torch"),
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(scratch / "mpl"),
        "COLUMNS": "100", "LINES": "40", "TERM": "dumb", "NO_COLOR": "1",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ beside docs/guide/files/my_plugin.py
    }


def normalise(text: str, scratch: Path) -> str:
    lines = []
    for line in ANSI.sub("", text).split("\n"):
        line = line.rsplit("\r", 1)[-1]  # what a terminal shows after a progress bar's redraws
        lines.append(line.rstrip())
    text = "\n".join(lines)
    for path, shown in ((scratch / "cache", "~/.cache/segbench"), (scratch / "home", "~"), (ROOT, ".")):
        text = text.replace(f"{path}/", "" if path == ROOT else f"{shown}/").replace(str(path), shown)
    return text


def run(block: Block, scratch: Path, drawn: Path | None = None) -> tuple[str, list[int]]:
    """The block's new body, and each command's exit status. With ``drawn``, the file the
    block writes (writes=) goes there instead, and the output still names the page's path."""
    commands = block.commands()
    run_commands = commands
    if "from" in block.options:
        if len(commands) != 1:
            raise ValueError(f"{block.where}: from= needs a block with one command, it has {len(commands)}")
        run_commands = [block.options["from"]]
    writes = block.options.get("writes")
    if drawn:
        run_commands = [c.replace(writes, str(drawn)) for c in run_commands]
    sentinel = f"@@console-{secrets.token_hex(8)}@@"
    script = ["set +e"]
    for command in run_commands:
        script += [command, f"__status=$?; printf '{sentinel}%d\\n' $__status; (exit $__status)"]
    cwd = ROOT / block.options.get("cwd", ".")
    result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=environment(scratch),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT_S)
    parts = re.split(re.escape(sentinel) + r"(\d+)\n", result.stdout.decode("utf-8", "replace"))
    outputs, statuses = parts[0:-1:2], [int(s) for s in parts[1::2]]
    if len(statuses) != len(commands):
        raise RuntimeError(f"{block.where}: the commands stopped early:\n{''.join(parts)}")
    body = []
    for command, out in zip(commands, outputs):
        out = normalise(out, scratch)
        if drawn:
            out = out.replace(str(drawn), writes)
        body.append(f"$ {command}\n" + (out if out.endswith("\n") or not out else out + "\n"))
    return "".join(body), statuses


def masked(text: str) -> str:
    return CACHE_ENTRY.sub(r"\1<digest>", DURATION.sub("<duration>", text))


def picture_difference(a: Path, b: Path) -> float:
    import numpy as np
    from PIL import Image

    x, y = (np.asarray(Image.open(p).convert("RGB"), dtype=float) for p in (a, b))
    return float("inf") if x.shape != y.shape else float(np.abs(x - y).mean())


def judge(block: Block, check: bool) -> tuple[str | None, list[str], list[str]]:
    """Run one block: its new body (None: leave it), notes to print, and why it is stale."""
    if "recorded" in block.options:
        return None, [f"recorded, not run: {block.where}: {block.options['recorded']}"], []
    writes = block.options.get("writes")
    notes, stale = [], []
    with tempfile.TemporaryDirectory(prefix="segbench-console-") as tmp:
        scratch = Path(tmp)
        drawn = scratch / Path(writes).name if check and writes else None
        body, statuses = run(block, scratch, drawn)
        if drawn and (difference := picture_difference(ROOT / writes, drawn)) > 1.0:
            stale.append(f"{block.where}: {writes} differs from what its command draws now "
                         f"(mean pixel difference {difference:.1f} of 255)")
    if masked(body) == masked(block.body):
        return None, notes + ([f"drew {writes}"] if writes and not check else []), stale
    diff = "".join(difflib.unified_diff(block.body.splitlines(keepends=True), body.splitlines(keepends=True),
                                        "in the page", "printed now", n=1))
    return body, notes, stale + [f"{block.where}: stale\n{diff}"]


def rewrite(page: Path, edits: list[tuple[Block, str]]) -> None:
    text = page.read_text(encoding="utf-8")
    for block, body in sorted(edits, key=lambda e: -e[0].span[0]):  # from the end: spans stay valid
        indented = "".join(block.indent + line if line.strip() else line for line in body.splitlines(keepends=True))
        text = text[:block.span[0]] + indented + text[block.span[1]:]
    page.write_text(text, encoding="utf-8")
    print(f"rewrote {len(edits)} block(s) in {shown(page)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 when a block is stale")
    parser.add_argument("pages", nargs="*", type=Path, help="pages to process (default: README.md and docs/)")
    args = parser.parse_args(argv)
    found, problems = [], []
    for page in [p.resolve() for p in args.pages] or pages():
        marked, unmarked = blocks(page)
        found += marked
        problems += [f"{where}: a console block without a <!-- console --> marker" for where in unmarked]
    # Each block runs in its own scratch folder, so blocks run side by side (the work is in subprocesses).
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        judged = list(pool.map(lambda block: judge(block, args.check), found))
    stale, edits = [], {}
    for block, (body, notes, why) in zip(found, judged):
        for note in notes:
            print(note)
        stale += why
        if body is not None:
            edits.setdefault(block.page, []).append((block, body))
    if not args.check:
        for page, page_edits in edits.items():
            rewrite(page, page_edits)
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.check and stale:
        print(f"{len(stale)} stale console block(s); run `python docs/console.py`:", file=sys.stderr)
        for entry in stale:
            print(entry, file=sys.stderr)
    return 1 if problems or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
