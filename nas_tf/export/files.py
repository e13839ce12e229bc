"""Atomic writes of export artifacts: a directory (SavedModel) or a file (``.keras``, ``.tflite``).

Every export is written next to its destination under a temporary name and
moved into place at the end, so an interrupted export never leaves a
half-written artifact behind, and an existing one is replaced whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator


def atomic_export(export_dir: str, write: Callable[[str], None]) -> str:
    """Runs ``write(tmp_dir)`` next to ``export_dir`` and moves the result into place; returns the absolute path."""
    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(export_dir) + ".", dir=parent)
    try:
        write(tmp)
        if os.path.exists(export_dir):
            old = export_dir + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(export_dir, old)
            os.replace(tmp, export_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, export_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return export_dir


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[str]:
    """Yields a temporary path beside ``path`` (same suffix); renamed over ``path`` when the block succeeds.

    Example:

    >>> with atomic_file("runs/final/model.keras") as tmp:  # doctest: +SKIP
    ...     model.save(tmp)
    """
    path = os.path.abspath(path)
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    suffix = "".join(os.path.splitext(name)[1:]) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=suffix, dir=directory)
    os.close(fd)
    os.unlink(tmp)  # writers (Keras) refuse to overwrite some files; give them a free name
    try:
        yield tmp
        if os.path.isdir(tmp):
            raise IsADirectoryError(f"{tmp} is a directory, expected a file")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str, content: bytes) -> str:
    """Writes ``content`` to ``path`` atomically; returns ``path``."""
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
    return path
