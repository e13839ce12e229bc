"""Atomic file writes and crash-tolerant JSON-lines logs.

Every file that a search or training run writes goes through these helpers so
that a crash (or a ``kill -9``) never leaves a half-written file behind:

* :func:`atomic_write_text` / :func:`atomic_write_json` write to a temporary
  file in the same directory, ``fsync`` it and ``os.replace`` it over the
  target, so readers see either the old or the new content.
* :func:`append_jsonl` appends one complete line and ``fsync`` s it;
  :func:`read_jsonl` ignores (and by default removes) a torn last line left by
  a crash in the middle of an append.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Iterable


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (write a temporary file, rename).

    Args:
        path: destination file. Its directory is created if needed.
        text: the full new content.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Serialises ``obj`` as JSON and writes it atomically to ``path``."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Appends rows to a JSON-lines file, one complete line each, then fsyncs."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = "".join(json.dumps(r, sort_keys=False) + "\n" for r in rows)
    if not data:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike, repair: bool = True) -> list[dict]:
    """Reads a JSON-lines file written by :func:`append_jsonl`.

    A last line without its newline (a crash during an append) is dropped; with
    ``repair=True`` the file is rewritten atomically without it. A malformed line
    anywhere else is an error that names the file and the line number.

    Args:
        path: the file; a missing file reads as an empty list.
        repair: rewrite the file without a torn last line.

    Returns:
        The rows, in file order.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    torn = lines[-1] != ""
    complete = lines[:-1]
    rows = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {number} is not valid JSON ({e.msg}): {line[:80]!r}") from None
    if torn and repair:
        atomic_write_text(path, "".join(line + "\n" for line in complete))
    return rows


def format_json(obj: Any, indent: int = 2, width: int = 140, _level: int = 0) -> str:
    """Pretty JSON that keeps short objects and lists on one line.

    Arch files stay readable and diff-friendly: a layer or a block fits on one
    line, the list of layers is one entry per line.
    """
    compact = json.dumps(obj, separators=(", ", ": "))
    if not isinstance(obj, (dict, list)) or len(compact) + indent * _level <= width or not obj:
        return compact
    pad = " " * (indent * (_level + 1))
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {format_json(v, indent, width, _level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * (indent * _level) + "}"
    items = [pad + format_json(v, indent, width, _level + 1) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + " " * (indent * _level) + "]"
