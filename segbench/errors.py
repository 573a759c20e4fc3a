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


class WriteError(SegbenchError):
    """A file segbench writes could not be written (disk full, read-only, a file in the
    way): exit 2, naming the path and the system's reason; nothing half-written stays."""

    def __init__(self, path, error: OSError):
        self.path, self.reason = path, error.strerror or str(error)
        super().__init__(f"could not write {path}: {self.reason}")


class RunNotRecorded(WriteError):
    """A finished run whose record could not be written: the suite stops (exit 1); the
    records already written are kept, and `segbench run` resumes once the folder is fixed."""

    exit_code = 1

    def __init__(self, failed: WriteError, run: str, saved=None, record_path=None):
        self.path, self.reason, self.run, self.saved = failed.path, failed.reason, run, saved
        self.record_path = record_path
        self.finished_runs = None  # counted by segbench.api.run once the suite has stopped
        SegbenchError.__init__(self, str(failed))

    def __str__(self):
        kept = "the finished runs are kept" if self.finished_runs is None else f"{self.finished_runs} finished runs kept"
        saved = f" (its record is saved as {self.saved}: move it to {self.record_path} to keep the run)" if self.saved else ""
        return (f"{self.args[0]}; the run {self.run} is not recorded{saved}, so the suite stopped; {kept}: free space or fix the "
                "folder, then `segbench run` again to go on")
