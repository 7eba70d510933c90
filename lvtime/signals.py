"""Ctrl-C and SIGTERM: one exception for both, the stop flag training polls, and a hold
that defers them while the ledger is written.

Three CPython behaviours shape this module:

- A plain ``KeyboardInterrupt`` that passes through an ``exec()`` of a string (dataclasses
  and transformers build classes that way while a model loads) sets a process-wide flag,
  and CPython then ends the process by SIGINT even though lvtime caught the interrupt and
  asked for exit code 130. :class:`Stop` is a subclass, which that check ignores
  (it compares the exception type by identity).
- Python runs a handler between any two bytecodes, including inside a weakref callback
  or ``__del__``, where it swallows the exception. The handler therefore also records the
  request, and :func:`check` (called by the long loops and when a command ends) raises it.
- A thread's signal mask does not defer a process signal: the kernel hands it to another
  thread (torch's workers), whose C handler flags it, and CPython runs the Python handler
  in the main thread anyway. :class:`SignalHold` therefore swaps the Python handlers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOPPING = "stopping at the end of this step (or evaluation) and saving; Ctrl-C again to stop now"


class Stop(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, raised by lvtime's handler; ``except KeyboardInterrupt`` catches it."""


_requested: int | None = None  # the signal that asked lvtime to stop, once one has


def _raise_stop(signum, frame) -> None:
    global _requested
    _requested = signum
    raise Stop


def check() -> None:
    """Raise :class:`Stop` if a Ctrl-C / SIGTERM came whose exception Python swallowed."""
    if _requested is not None:
        raise Stop


def requested() -> bool:
    return _requested is not None


def _unraisable(previous):
    def hook(info) -> None:
        if not isinstance(info.exc_value, Stop):  # a swallowed Stop is raised again by check()
            previous(info)

    return hook


def install() -> None:
    """Make SIGTERM and Ctrl-C raise :class:`Stop`. A signal the parent set to be ignored
    (a background job of a non-interactive shell ignores SIGINT) stays ignored."""
    signal.signal(signal.SIGTERM, _raise_stop)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _raise_stop)
    sys.unraisablehook = _unraisable(sys.unraisablehook)


def _swap(handler) -> dict[int, object]:
    """Set ``handler`` for each signal Python handles here; return the handlers it replaced.
    Ignored signals stay ignored; only the main thread may set handlers (or runs them)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {}
    for sig in SIGNALS:
        if signal.getsignal(sig) not in (signal.SIG_IGN, None):  # None: set outside Python
            old[sig] = signal.signal(sig, handler)
    return old


def _restore(old: dict[int, object]) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler)


def ignore() -> None:
    """Ignore further Ctrl-C / SIGTERM (lvtime is already stopping)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class StopFlag:
    """Within the block, the first Ctrl-C / SIGTERM only sets ``raised`` and says so on
    stderr (training finishes its step and saves); a second one raises :class:`Stop`."""

    def __init__(self) -> None:
        self.raised = requested()  # a stop that came before (and was swallowed) counts
        self._old: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        self._old = _swap(self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised:
            raise Stop
        self.raised = True
        # An evaluation may run minutes before the step ends: say now that the stop was heard.
        # os.write, not print: the handler may run inside a write to stderr. On a terminal the
        # line replaces the progress bar's, which its next refresh draws again below.
        clear = "\r\x1b[2K" if os.isatty(2) else ""
        os.write(2, f"{clear}lvtime: {STOPPING}\n".encode())

    def __exit__(self, *exc) -> None:
        _restore(self._old)


class SignalHold:
    """Records SIGINT / SIGTERM instead of acting on them between :meth:`hold` and
    :meth:`release`, which re-raises what arrived (the original handler then runs)."""

    def __init__(self) -> None:
        self._old: dict[int, object] = {}
        self._held: list[int] = []

    def _record(self, signum, frame) -> None:
        self._held.append(signum)

    def hold(self) -> None:
        if not self._old:  # holding already: keep the handlers to restore
            self._old = _swap(self._record)

    def release(self) -> None:
        _restore(self._old)
        self._old = {}
        held, self._held = self._held, []
        for sig in dict.fromkeys(held):
            signal.raise_signal(sig)  # the restored handler runs now, in this thread


@contextlib.contextmanager
def held() -> Iterator[SignalHold]:
    """Hold Ctrl-C / SIGTERM for the block; deliver them when it ends. The block may call
    ``release()`` and ``hold()`` on what it gets to let signals through for a while."""
    hold = SignalHold()
    hold.hold()
    try:
        yield hold
    finally:
        hold.release()
