"""Benchmark reports: markdown tables written into sections of docs/*.md."""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Sequence
from typing import Any

from nas_tf.utils.io import atomic_write_text


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats get 4 significant digits."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_description() -> str:
    """One line naming the CPU count, Python and TensorFlow versions."""
    import tensorflow as tf

    return (
        f"{os.cpu_count()} CPU cores ({platform.machine()}), Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}"
    )


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running, as a user would type it (``python scripts/x.py --flag=...``).

    The script's path is made relative to the current directory when it is
    inside it.
    """
    import shlex

    argv = list(sys.argv if argv is None else argv)
    script = argv[0] if argv else ""
    if script and os.path.isabs(script):
        rel = os.path.relpath(script)
        script = rel if not rel.startswith("..") else script
    return " ".join(["python", shlex.quote(script)] + [shlex.quote(a) for a in argv[1:]])


def update_section(path: str, name: str, content: str, command: str | None = None) -> None:
    """Replaces (or appends) the section ``name`` of a markdown file, atomically.

    A section is the text between ``<!-- begin NAME -->`` and
    ``<!-- end NAME -->``, so several benchmark scripts share one file. The
    command that produced it (default: :func:`command_line`) is recorded after
    the section's heading.
    """
    command = command_line() if command is None else command
    content = content.strip()
    record = f"Produced by: `{command}`"
    if content.startswith("#"):
        heading, _, rest = content.partition("\n")
        content = f"{heading}\n\n{record}\n{rest}"
    else:
        content = f"{record}\n\n{content}"
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{content.strip()}\n{end}"
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        if not text:
            text = "# Benchmarks\n\nEach section is written by the script it names; numbers are from one run.\n"
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(path, text)


def median_step_time(step, args: Sequence[Any], steps: int, warmup: int = 3) -> float:
    """Median wall time in seconds of ``step(*args)`` over ``steps`` calls, after ``warmup`` calls.

    ``step`` returns a tensor (or a tuple whose first item is one); it is read
    back every call, so asynchronous execution is included.
    """
    import time

    import numpy as np

    def run():
        out = step(*args)
        first = out[0] if isinstance(out, (tuple, list)) else out
        np.asarray(first)

    for _ in range(warmup):
        run()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
