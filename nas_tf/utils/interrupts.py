"""Stopping a run cleanly on Ctrl-C (SIGINT) and SIGTERM.

:func:`handle_interrupts` (the scripts wrap their run in it) turns both
signals into :class:`Interrupted`, a ``KeyboardInterrupt``, so no
``except Exception`` of a child trainer or of TensorFlow takes it for a
failed child. Three rules keep every file whole:

* inside :func:`critical` (a checkpoint and the files saved with it) the
  signal is held back and raised when the block ends;
* the loops call :func:`check` at safe points (before a finished child is
  recorded, between phases): a signal whose exception was swallowed
  somewhere (an exception raised inside a TensorFlow callback becomes a
  TensorFlow error) still stops the run there, and a child whose training
  was interrupted is never recorded as failed;
* writes are atomic (:mod:`nas_tf.utils.io`), so an exception anywhere else
  leaves each file whole, old or new.

Re-running the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Interrupted", "check", "critical", "handle_interrupts", "requested"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop (``signal``: ``"SIGINT"`` or ``"SIGTERM"``)."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal = signal_name

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number."""
        return 128 + int(getattr(signal, self.signal, signal.SIGINT))


class _State:
    requested: str | None = None
    deferring: int = 0
    installed: int = 0


_state = _State()


def _handler(signum, frame) -> None:
    _state.requested = signal.Signals(signum).name
    if _state.deferring:
        return  # raised when the critical block ends
    raise Interrupted(_state.requested)


def requested() -> str | None:
    """The name of the signal received (None: none)."""
    return _state.requested


def check() -> None:
    """Raises :class:`Interrupted` if a stop was requested (call at safe points)."""
    if _state.requested is not None and not _state.deferring:
        raise Interrupted(_state.requested)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """Holds SIGINT and SIGTERM back while the block runs; raises when it ends if one came."""
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
    check()


@contextlib.contextmanager
def handle_interrupts() -> Iterator[None]:
    """Turns SIGINT and SIGTERM into :class:`Interrupted` while the block runs (main thread only).

    The previous handlers are restored when the block ends. Nested uses are
    fine; outside the main thread this does nothing (Python delivers signals
    to the main thread only).

    Example:

    >>> with handle_interrupts():  # doctest: +SKIP
    ...     search.run()  # Ctrl-C or kill -TERM: Interrupted, files whole, resumable
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    if not _state.installed:
        _state.requested = None
    _state.installed += 1
    for s in _SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        _state.installed -= 1
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        if not _state.installed:
            _state.requested = None
            _state.deferring = 0
