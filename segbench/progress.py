"""Progress on the terminal: a suite-level bar (runs done / total, ETA), a bar for the
epochs of the run in progress (in-process runs only) and a line per finished run."""

from __future__ import annotations

import sys

from tqdm import tqdm

from .text import one_line


class Progress:
    def __init__(self, total: int, quiet: bool = False):
        self.quiet = quiet
        self.bar = tqdm(total=total, unit="run", desc="runs", file=sys.stderr, disable=quiet, dynamic_ncols=True)
        self.epochs = None  # the current run's epoch bar

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close_epochs()
        self.bar.close()

    def epoch(self, epoch, epochs, stats):
        if self.epochs is None:
            self.epochs = tqdm(total=epochs, unit="epoch", desc="  epochs", file=sys.stderr, disable=self.quiet,
                               dynamic_ncols=True, position=1, leave=False)
        self.epochs.set_postfix_str(", ".join(f"{k}={v:.3f}" for k, v in stats.items()), refresh=False)
        self.epochs.update(epoch - self.epochs.n)

    def expect(self, runs: int):
        """``runs`` more runs are coming (adaptive seeds add rounds as they go)."""
        self.bar.total = (self.bar.total or 0) + runs
        self.bar.refresh()

    def skipped(self, label, seed):
        self.expect(1)
        self._line(f"skip  {label} seed={seed}: finished record exists (--rerun to redo)")
        self.bar.update(1)

    def finished(self, record, primary):
        if record["status"] == "ok":
            value = record["metrics"].get(primary)
            result = f"{primary}={value:.4f}" if value is not None else "ok"
        else:
            result = f"FAILED {record['error']['type']}: {record['error']['message']}"
        self._close_epochs()
        self._line(f"done  {record['label']} seed={record['seed']}: {result} ({record['wall_seconds']:.1f} s)")
        self.bar.update(1)

    def warn(self, text):
        """A problem shown even with ``-q`` (an executor that lost a run, say)."""
        tqdm.write(one_line(f"segbench: warning: {text}"), file=sys.stderr)

    def _close_epochs(self):
        if self.epochs is not None:
            self.epochs.close()
            self.epochs = None

    def _line(self, text):
        if not self.quiet:
            tqdm.write(one_line(text), file=sys.stderr)  # labels and plugin messages: no escape sequences
