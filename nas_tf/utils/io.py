"""Atomic file writes, crash-tolerant JSON-lines logs, damaged-file errors and the run-directory lock.

Every file that a search or training run writes goes through these helpers so
that a crash (or a ``kill -9``, or a full disk) never leaves a half-written
file behind:

* :func:`atomic_write_text` / :func:`atomic_write_json` write to a temporary
  file in the same directory, ``fsync`` it and ``os.replace`` it over the
  target, so readers see either the old or the new content. The new file gets
  the permissions of any file the user creates (``0666`` less the umask), or
  keeps those of the file it replaces.
* :func:`append_jsonl` appends complete lines and ``fsync`` s them; if the
  write fails (a full disk) the file is cut back to its old length, so no
  torn line stays behind. :func:`read_jsonl` ignores (and by default removes)
  a torn last line left by a kill in the middle of an append.
* A file that cannot be read back (not UTF-8, not JSON, a row without its
  fields) is a :class:`DamagedFileError` naming the file and the line.
* :class:`RunLock`: one process at a time in a run directory (an
  ``fcntl.flock`` on ``.lock``, which the kernel releases when the process
  ends, however it ends: a killed run never leaves a stale lock).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import re
import socket
import sys
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DamagedFileError",
    "RunDirError",
    "RunLock",
    "RunLockedError",
    "append_jsonl",
    "atomic_write_json",
    "atomic_write_text",
    "disk_full_reason",
    "format_json",
    "hold_run_dir",
    "new_file_mode",
    "read_json_file",
    "read_jsonl",
    "release_run_dirs",
    "remove_stale_temporaries",
    "take_run_dir",
]


class RunDirError(ValueError):
    """A run directory cannot be used as it is; the message says what is wrong and what to do (one line)."""


class DamagedFileError(RunDirError):
    """A file of a run directory cannot be read back; the message names the file and the line."""


class RunLockedError(RunDirError):
    """Another process is running in the run directory."""


# ------------------------------------------------------------------ writes


def new_file_mode() -> int:
    """The mode a new file gets from ``open()``: ``0o666`` less the process's umask."""
    umask = None
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
                    break
    except (OSError, ValueError):
        pass
    if umask is None:  # no /proc: read it by setting it (and back at once)
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (write a temporary file, rename).

    The file gets the permissions of the file it replaces, or those of any
    new file of this process (``0666`` less the umask), not the ``0600`` of a
    temporary file.

    Args:
        path: destination file. Its directory is created if needed.
        text: the full new content.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = new_file_mode()
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
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
    """Appends rows to a JSON-lines file, one complete line each, then fsyncs.

    If the write fails (a full disk, a file-size limit, an interrupt), the
    file is cut back to its length before the call and the error raised: no
    torn or partial line is left behind.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = "".join(json.dumps(r, sort_keys=False) + "\n" for r in rows).encode("utf-8")
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


# ------------------------------------------------------------------- reads


def _not_utf8(path: str, number: int, line: bytes, error: UnicodeDecodeError) -> DamagedFileError:
    return DamagedFileError(
        f"{path}: line {number} is not UTF-8 text (byte 0x{line[error.start]:02x} at column {error.start + 1})"
    )


def _json_error(path: str, number: int, line: str, error: json.JSONDecodeError) -> DamagedFileError:
    return DamagedFileError(f"{path}: line {number} is not valid JSON ({error.msg} at column {error.colno}): {line[:60]!r}")


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object", bool: "true/false"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_fields(row: Any, require: Mapping[str, type | tuple]) -> str | None:
    """What is wrong with ``row`` (None: it is an object with every required field of its type)."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    for key, types in require.items():
        if key not in row:
            return f"field {key!r} is missing"
        value = row[key]
        wanted = types if isinstance(types, tuple) else (types,)
        if (isinstance(value, bool) and bool not in wanted) or not isinstance(value, wanted):
            return f"field {key!r} is {json.dumps(value)[:40]}, expected {_type_name(types)}"
    return None


def read_jsonl(
    path: str | os.PathLike, repair: bool = True, require: Mapping[str, type | tuple] | None = None
) -> list[dict]:
    """Reads a JSON-lines file written by :func:`append_jsonl`.

    A last line without its newline (a kill during an append) is dropped; with
    ``repair=True`` the file is rewritten atomically without it. Any other line
    that is not UTF-8, not JSON, or (with ``require``) not an object with the
    required fields is a :class:`DamagedFileError` naming the file and the
    line number.

    Args:
        path: the file; a missing file reads as an empty list.
        repair: rewrite the file without a torn last line.
        require: ``{field: type or tuple of types}`` every row must have.

    Returns:
        The rows, in file order.

    Raises:
        DamagedFileError: a line cannot be read.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    complete = lines[:-1]
    rows = []
    for number, raw in enumerate(complete, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _not_utf8(path, number, raw, e) from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise _json_error(path, number, line, e) from None
        except (ValueError, RecursionError) as e:  # an integer of thousands of digits, deep nesting
            raise DamagedFileError(f"{path}: line {number} cannot be read: {str(e)[:80]}") from None
        if require is not None:
            problem = _check_fields(row, require)
            if problem:
                raise DamagedFileError(f"{path}: line {number}: {problem}")
        rows.append(row)
    if torn and repair:
        atomic_write_text(path, b"".join(line + b"\n" for line in complete).decode("utf-8"))
    return rows


def read_json_file(path: str | os.PathLike, advice: str = "", missing: Any = None, expect: type | None = None) -> Any:
    """The content of a JSON file, or a :class:`DamagedFileError` naming it and the line.

    Args:
        path: the file.
        advice: what the user can do, appended to the error (``"delete it to ..."``).
        missing: returned when the file does not exist.
        expect: the JSON type the content must have (``dict``, ``list``).

    Raises:
        DamagedFileError: the file is not UTF-8, not JSON, or not of type ``expect``.
    """
    path = os.fspath(path)
    tail = f"; {advice}" if advice else ""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return missing
    except OSError as e:
        raise DamagedFileError(f"{path}: cannot be read ({e.strerror}){tail}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        number = data[: e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DamagedFileError(
            f"{path}: line {number} is not UTF-8 text (byte 0x{data[e.start]:02x} at column {column}){tail}"
        ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DamagedFileError(f"{path}: line {e.lineno} is not valid JSON ({e.msg} at column {e.colno}){tail}") from None
    except (ValueError, RecursionError) as e:
        raise DamagedFileError(f"{path}: cannot be read ({str(e)[:80]}){tail}") from None
    if expect is not None and not isinstance(value, expect):
        raise DamagedFileError(f"{path}: expected {_type_name(expect)}, got {type(value).__name__}{tail}")
    return value


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


# ------------------------------------------------------------------- lock

LOCK_FILE = ".lock"
_HELD: dict[str, RunLock] = {}


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        command = " ".join(info.get("command", []))
        if len(command) > 80:
            command = command[:77] + "..."
        return f"process {info['pid']} on {info['host']} ({command}, since {info['since']})"
    except (ValueError, KeyError, TypeError, AttributeError):
        return "another process"


class RunLock:
    """An exclusive lock on a run directory, held by this process.

    The lock is an ``fcntl.flock`` on ``<directory>/.lock``; the file also
    says who holds it (process id, host, command line, start time), for the
    error the next process gets. The kernel drops the lock when the process
    ends, however it ends, so a killed run never leaves a stale lock; the file
    itself stays (removing it would let two processes lock two different
    files). Locks of one process are re-entrant: taking a directory this
    process already holds returns the same lock (and counts).

    Use :func:`hold_run_dir` rather than this class directly.

    Args:
        directory: the run directory (must exist).

    Raises:
        RunLockedError: another process holds the lock.
    """

    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, LOCK_FILE)
        self.count = 0
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            self.count += 1
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, new_file_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                try:
                    holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
                finally:
                    os.close(fd)
                raise RunLockedError(
                    f"{self.directory} is in use by {_describe_holder(holder)}; two runs cannot share a run "
                    "directory: wait for that one to end (or stop it), or use another directory"
                ) from None
            os.close(fd)
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):  # a filesystem without locks
                return self
            raise
        since = datetime.datetime.now().isoformat(timespec="seconds")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": list(sys.argv), "since": since}
        data = (json.dumps(info) + "\n").encode("utf-8")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass  # a full disk: the lock holds anyway, only the description is missing
        self._fd = fd
        self.count = 1
        return self

    def release(self) -> None:
        """Drops one hold; the lock is released with the last."""
        self.count -= 1
        if self.count > 0 or self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
            _HELD.pop(self.directory, None)

    @property
    def held(self) -> bool:
        return self._fd is not None


class hold_run_dir:
    """Holds the lock of a run directory while the ``with`` block runs (re-entrant in one process).

    Args:
        directory: the run directory (created if missing).
        enabled: False does nothing (a worker of a cluster that is not the
            chief: only the chief holds the lock of the shared directory).

    Raises:
        RunLockedError: another process runs there; the message names it.

    Example:

    >>> with hold_run_dir("/tmp/run"):  # doctest: +SKIP
    ...     ...  # nobody else writes /tmp/run meanwhile
    """

    def __init__(self, directory: str | os.PathLike, enabled: bool = True):
        self.directory = os.path.abspath(os.fspath(directory))
        self.enabled = enabled
        self.lock: RunLock | None = None

    def __enter__(self) -> hold_run_dir:
        if self.enabled:
            self.lock = take_run_dir(self.directory)
        return self

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def take_run_dir(directory: str | os.PathLike) -> RunLock:
    """Takes (or takes again) this process's lock of ``directory``; release it with ``.release()``."""
    directory = os.path.abspath(os.fspath(directory))
    os.makedirs(directory, exist_ok=True)
    lock = _HELD.get(directory)
    if lock is None:
        lock = RunLock(directory)
    lock.acquire()
    if lock.held:
        _HELD[directory] = lock
    return lock


def release_run_dirs() -> None:
    """Releases every run-directory lock this process holds (the end of a script)."""
    for lock in list(_HELD.values()):
        lock.count = 1
        lock.release()


# A temporary file of atomic_write_text (".NAME.XXXXXXXX.tmp") or a
# temporary export directory (".saved_model.XXXXXXXX") left by a killed run.
# .NAME.XXXXXXXX.tmp (atomic_write_text), .NAME.XXXXXXXX.EXT where NAME ends in .EXT (an atomic file written
# by a library that wants its suffix, e.g. model.keras), .NAME.XXXXXXXX (an atomic export's folder).
_TEMPORARY = re.compile(r"^\.(?P<name>[^/]+)\.[A-Za-z0-9_]{8}(?P<ext>\.[A-Za-z0-9]+)?$")


def remove_stale_temporaries(directory: str | os.PathLike, names: Iterable[str] | None = None) -> list[str]:
    """Deletes the temporary files and folders a killed write left in ``directory``; returns their names.

    Only nas_tf's own temporaries are touched: ``.NAME.XXXXXXXX.tmp`` files of
    :func:`atomic_write_text`, ``.NAME.XXXXXXXX.EXT`` files of an atomic
    write that keeps the suffix ``.EXT`` of ``NAME`` (``model.keras``), and
    ``.NAME.XXXXXXXX`` folders of an atomic export, where ``NAME`` is one of
    ``names`` (default: any), and only while this process holds the
    directory's lock (nobody else is writing).
    """
    import shutil

    directory = os.fspath(directory)
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry)
        if entry == LOCK_FILE or match is None:
            continue
        stem, ext = match.group("name"), match.group("ext")
        if ext not in (None, ".tmp") and not stem.endswith(ext):
            continue  # not a name nas_tf writes
        if names is not None and stem not in names:
            continue
        full = os.path.join(directory, entry)
        if os.path.isdir(full) and ext is None:
            shutil.rmtree(full, ignore_errors=True)
        elif os.path.isfile(full) and ext is not None:
            os.unlink(full)
        else:
            continue
        removed.append(entry)
    return removed


def disk_full_reason(error: BaseException) -> str | None:
    """"no space left on device" (or the like) if ``error`` or its causes is a full disk; else None.

    Recognises ``OSError`` s with ``ENOSPC``, ``EDQUOT`` or ``EFBIG`` (a
    file-size limit) and TensorFlow errors whose message carries them.
    """
    reasons = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file too large (the file-size limit, ulimit -f)",
    }
    texts = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT, "File too large": errno.EFBIG}
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in reasons:
            return reasons[error.errno]
        message = str(getattr(error, "message", "") or error)
        for text, code in texts.items():
            if text in message:
                return reasons[code]
        error = error.__cause__ or error.__context__
    return None
