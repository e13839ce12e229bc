"""A line when something long starts and one with its duration when it ends.

Tracing a supernet step, graph optimisation and building the compiled
libraries take from seconds to minutes with no output of their own;
:func:`timed` tells the user what is happening and how long it took. Imports
no TensorFlow.

Example:

>>> with timed("tracing the shared-weights step"):  # doctest: +SKIP
...     step(x, y, arch)
nas_tf: tracing the shared-weights step ...
nas_tf: tracing the shared-weights step: done in 21.4 s
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import IO, Iterator

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
