"""Runs one after another in this process (the default)."""

from __future__ import annotations

from .task import run_in_process


class LocalExecutor:
    name = "local"
    shows_epochs = True  # in-process runs can report each epoch to the progress bar

    def records(self, suite, pending, cache_dir, on_epoch=None):
        for variant, seed in pending:
            yield run_in_process(suite, variant, seed, cache_dir, on_epoch)

    def close(self):
        pass
