"""Progress on the terminal: a suite-level bar and a line per finished run."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, quiet: bool = False):
        self.quiet = quiet
        self.bar = tqdm(total=total, unit="run", desc="runs", file=sys.stderr, disable=quiet, dynamic_ncols=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def epoch(self, epoch, epochs, stats):
        shown = ", ".join(f"{k}={v:.3f}" for k, v in stats.items())
        self.bar.set_postfix_str(f"epoch {epoch}/{epochs} {shown}")

    def skipped(self, label, seed):
        self._line(f"skip  {label} seed={seed}: finished record exists (--rerun to redo)")
        self.bar.update(1)

    def finished(self, record, primary):
        if record["status"] == "ok":
            value = record["metrics"].get(primary)
            result = f"{primary}={value:.4f}" if value is not None else "ok"
        else:
            result = f"FAILED {record['error']['type']}: {record['error']['message']}"
        self._line(f"done  {record['label']} seed={record['seed']}: {result} ({record['wall_seconds']:.1f} s)")
        self.bar.update(1)

    def _line(self, text):
        if not self.quiet:
            tqdm.write(text, file=sys.stderr)
