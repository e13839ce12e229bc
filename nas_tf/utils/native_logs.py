"""Drops TensorFlow's known start-up noise from the process's stderr (the scripts use it).

TensorFlow's C++ libraries print lines that say nothing to a user of nas_tf
before any Python logging applies (``TF_CPP_MIN_LOG_LEVEL`` does not reach
them): the absl notice "All log messages before absl::InitializeLog() ..."
and the oneDNN notice, once for each of TensorFlow's two libraries; on a
machine without a GPU, the CUDA wheel's failed ``cuInit``; the CPU-feature
notice; oneDNN's fallback notice for int32. :func:`filter_native_stderr`
routes file descriptor 2 through a thread that drops exactly those lines and
passes everything else through, line by line, so real errors still show.
``NAS_TF_TF_LOGS=all`` turns the filter off.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# The lines dropped (each a pattern searched in one line).
NOISE = tuple(
    re.compile(p)
    for p in (
        r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
        r"oneDNN custom operations are on",
        r"This TensorFlow binary is optimized to use available CPU instructions",
        r"^To enable the following instructions: .*rebuild TensorFlow",
        r"oneDNN supports DT_\w+ only on platforms with",
        r"failed call to cuInit",
        r"Could not find cuda drivers on your machine",
        r"Unable to register cu(DNN|FFT|BLAS) factory",
        r"computation placer already registered",
        r"TF-TRT Warning: Could not find TensorRT",
        r"Attempting to register factory for plugin cu(DNN|FFT|BLAS) when one has already been registered",
    )
)

_state: dict = {}


def filter_native_stderr(patterns=NOISE) -> bool:
    """Routes fd 2 through a filter that drops the lines matching ``patterns`` (once per process).

    Returns:
        Whether the filter is now installed (False with ``NAS_TF_TF_LOGS=all``,
        or when fd 2 cannot be redirected).
    """
    if _state:
        return True
    if os.environ.get("NAS_TF_TF_LOGS", "").strip().lower() == "all":
        return False
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:
        return False

    def pump() -> None:
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as source:
            while True:
                chunk = source.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = [line for line in lines if not _is_noise(line, patterns)]
                if kept:
                    os.write(real, b"".join(line + b"\n" for line in kept))
        if pending and not _is_noise(pending, patterns):
            os.write(real, pending)

    thread = threading.Thread(target=pump, name="nas_tf-stderr-filter", daemon=True)
    thread.start()
    _state.update(real=real, thread=thread)
    atexit.register(_restore)
    return True


def _is_noise(line: bytes, patterns) -> bool:
    text = line.decode("utf-8", errors="replace")
    return any(p.search(text) for p in patterns)


def _restore() -> None:
    """Puts the real stderr back and lets the filter pass on what it still holds."""
    if not _state:
        return
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(_state["real"], 2)  # closes the pipe's last write end: the filter reads to the end
    _state["thread"].join(timeout=5)
    _state.clear()
