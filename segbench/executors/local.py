"""Runs one after another in this process (the default)."""

from __future__ import annotations

from .task import run_in_process


class LocalExecutor:
    name = "local"
    shows_epochs = True  # in-process runs can report each epoch to the progress bar

    def records(self, suite, pending, cache_dir, on_epoch=None):
        for variant, seed in pending:
            yield run_in_process(suite, variant, seed, cache_dir, on_epoch)

    def preflight(self, suite, variant_ids, cache_dir) -> list:
        """This executor's worker is this process: the preflight runs here, as the driver's."""
        from ..preflight_remote import check_here  # heavy: the preflight's checks

        return check_here(suite, variant_ids, cache_dir)

    def close(self):
        pass
