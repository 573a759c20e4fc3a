"""What the executor and reporter contracts share: finding the extension under test, the
tiny suite they run, and a watchdog that turns a hang into a failed check."""

from __future__ import annotations

import contextlib
import signal
import threading

import pytest

from ..components import Catalogue, Registrar
from ..crash import Halt
from ._base import installed_catalogue

# The cheapest suite that trains for real: shapes at 32 px, a one-epoch U-Net with the
# light encoder. ``{body}`` adds the tables a contract needs.
TINY_SUITE = """
name = "{name}"
seeds = {seeds}

[dataset]
name = "shapes"
image_size = 32
num_train = 4
num_val = 2

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [8, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 2
{body}
"""


class ExtensionContract:
    """The base of the executor and reporter contracts: the extension ``kind``/``name``
    under test. ``hook`` (a ``segbench_executors`` or ``segbench_reporters`` function, or
    a tuple of them) registers it on its own, for a plugin that is not installed; left
    ``None``, it comes from every installed plugin, as ``segbench run`` finds it."""

    kind: str = ""
    name: str = ""
    options: dict = {}
    hook = None

    def registered(self):
        """The registration under test (segbench.extensions.Executor or Reporter)."""
        if not self.name:
            raise NotImplementedError(f"a {type(self).__name__} subclass sets `name` to the {self.kind} under test")
        hooks = type(self).hook  # read off the class: a plain function, never a bound method
        if hooks is None:
            catalogue = installed_catalogue()
        else:
            register = Registrar("contract-test")
            for hook in hooks if isinstance(hooks, (tuple, list)) else (hooks,):
                hook(register)
            catalogue = Catalogue(executors=register.executors, reporters=register.reporters)
        return getattr(catalogue, self.kind)(self.name)

    def who(self) -> str:
        """The extension, as every failure names it."""
        entry = self.registered()
        return f'{self.kind} "{entry.name}" of "{entry.provider}"'

    def expect(self, condition, message):
        """Fail with ``message`` (a callable giving the text, so that it is built only on
        failure) unless ``condition``: a plain ``assert`` would vanish under ``python -O``
        and, outside test modules, say nothing of the values."""
        if not condition:
            pytest.fail(message() if callable(message) else message, pytrace=False)


class Overdue(Halt):
    """A check ran past its deadline. A :class:`segbench.crash.Halt`, so that neither
    segbench's run isolation nor a plugin's ``except Exception`` takes it for the run's own
    failure."""


@contextlib.contextmanager
def deadline(seconds: float, what: str):
    """Fail the check when ``what`` takes longer than ``seconds`` (it would have hung).
    It uses SIGALRM: on the main thread of a Unix process only; elsewhere nothing is timed
    (the check then hangs rather than fails). A run's own ``timeout_s`` alarm, set inside,
    puts this one back when it ends (segbench.execute.time_limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise Overdue(f"{what} did not end within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Overdue as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
