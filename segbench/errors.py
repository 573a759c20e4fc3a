"""Errors the CLI maps to exit codes."""


class SegbenchError(Exception):
    """Bad input: a suite, a plugin, a dataset or a command-line flag. Exit code 2."""

    exit_code = 2


class PluginError(SegbenchError):
    """A plugin could not be loaded or registers something invalid."""


class SuiteError(SegbenchError):
    """A suite file is invalid; ``problems`` holds every problem found, one line each."""

    def __init__(self, path, problems):
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{path}: {count} problem{'s' if count != 1 else ''}:\n{lines}")
