"""Runs one after another in this process (the default)."""

from __future__ import annotations


class LocalExecutor:
    name = "local"
    shows_epochs = True  # in-process runs can report each epoch to the progress bar

    def records(self, suite, pending, cache_dir, on_epoch=None):
        from ..runner import execute

        for variant, seed in pending:
            yield execute(suite, variant, seed, cache_dir, on_epoch)

    def close(self):
        pass
