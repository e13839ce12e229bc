"""Progress of long phases in the terminal: durations, estimated time left, announced phases.

Tracing a supernet step, graph optimisation and building the compiled
libraries take from seconds to minutes with no output of their own:
:func:`timed` and :class:`AnnouncedFirstCall` print what is happening and how
long it took; :func:`announced` does the same through the ``nas_tf`` logger.
Imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import IO

PREFIX = "nas_tf"


@contextlib.contextmanager
def timed(what: str, stream: IO[str] | None = None, enabled: bool = True) -> Iterator[dict]:
    """Prints ``nas_tf: WHAT ...`` now and ``nas_tf: WHAT: done in X s`` at the end.

    Args:
        what: what is happening, e.g. ``"tracing the shared-weights step"``.
        stream: where to write (default: ``sys.stderr`` at the time of the call).
        enabled: ``False`` prints nothing (the block still runs and is timed).

    Yields:
        A dict whose ``"seconds"`` entry holds the duration once the block ends.
        A block that raises prints ``failed after X s`` instead.
    """
    out = stream if stream is not None else sys.stderr
    record = {"seconds": None}
    if enabled:
        print(f"{PREFIX}: {what} ...", file=out, flush=True)
    start = time.perf_counter()
    try:
        yield record
    except BaseException:
        record["seconds"] = time.perf_counter() - start
        if enabled:
            print(f"{PREFIX}: {what}: failed after {record['seconds']:.1f} s", file=out, flush=True)
        raise
    record["seconds"] = time.perf_counter() - start
    if enabled:
        print(f"{PREFIX}: {what}: done in {record['seconds']:.1f} s", file=out, flush=True)


class AnnouncedFirstCall:
    """A callable (e.g. a ``tf.function``) whose first call is announced with :func:`timed`.

    The first call of a train step traces it, optimises the graph and runs
    it once: the long wait of a search's start. Later calls go straight
    through; every other attribute (``experimental_get_tracing_count``,
    ``get_concrete_function``, ...) is the wrapped callable's.

    Args:
        fn: the callable.
        what: the message, e.g. ``"tracing the shared-weights step"``.
        stream: as :func:`timed`.

    Example:

    >>> step = AnnouncedFirstCall(tf.function(train), "tracing the shared-weights step")  # doctest: +SKIP
    """

    def __init__(self, fn, what: str, stream: IO[str] | None = None):
        self.fn = fn
        self.what = what
        self.stream = stream
        self.seconds: float | None = None  # duration of the first call

    def __call__(self, *args, **kwargs):
        if self.seconds is not None:
            return self.fn(*args, **kwargs)
        with timed(self.what, self.stream) as record:
            out = self.fn(*args, **kwargs)
        self.seconds = record["seconds"]
        return out

    def __getattr__(self, name):
        return getattr(self.fn, name)


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
