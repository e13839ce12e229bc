"""Progress of long phases in the terminal: durations, estimated time left, announced phases."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Iterator


def format_duration(seconds: float) -> str:
    """A duration as a person reads it: ``42s``, ``3:05`` (minutes), ``1:02:05`` (hours).

    Example:

    >>> format_duration(42.4), format_duration(185), format_duration(3725.2)
    ('42s', '3:05', '1:02:05')
    """
    seconds = int(round(max(0.0, float(seconds))))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def eta(done: int, remaining: int, elapsed: float) -> str:
    """The time left at the pace so far: ``remaining`` units after ``done`` of them took ``elapsed`` seconds.

    Example:

    >>> eta(4, 36, 20.0)
    'ETA 3:00'
    >>> eta(0, 10, 5.0)
    'ETA ?'
    """
    if done <= 0 or remaining < 0:
        return "ETA ?"
    return "ETA " + format_duration(elapsed / done * remaining)


@contextlib.contextmanager
def announced(what: str, logger: logging.Logger | None = None, level: int = logging.INFO) -> Iterator[None]:
    """Logs ``what`` before a long phase and ``what: done in N s`` after it.

    Example:

    >>> with announced("tracing the shared-weights step"):  # doctest: +SKIP
    ...     step(x, y, arch)
    """
    logger = logger or logging.getLogger("nas_tf")
    logger.log(level, "%s ...", what)
    start = time.time()
    yield
    logger.log(level, "%s: done in %s", what, format_duration(time.time() - start))
