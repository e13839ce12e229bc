"""Typed architectures, their JSON form, validation and the space registry.

An architecture is data: a frozen dataclass per search space (subclass of
:class:`Arch`) whose JSON form uses words and numbers a person can read and
edit, with a ``"space"`` field naming its search space::

    {"space": "nas_cnn", "layers": [{"filter_height": 3, ...}, ...]}

:func:`load_arch` reads any registered space's JSON (a path or the text
itself) and validates it; a bad file fails with one :class:`ArchError` that
names the file, the field and the bad value. Whatever the input -- any JSON
type in any field, bytes that are not UTF-8, numbers of any size, deep
nesting, a huge file, a directory -- the result is an arch or an
:class:`ArchError`, never another exception: files are read up to
:data:`MAX_ARCH_BYTES`, documents nest up to :data:`MAX_NESTING` levels, and
each space caps the sizes it can build (``nas_tf.spaces.nas_cnn.MAX_FILTER_SIZE``,
...), stating the cap in the error. An arch that loads builds.
"""

from __future__ import annotations

import abc
import json
import math
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from nas_tf.utils.io import atomic_write_text, format_json


class ArchError(ValueError):
    """An architecture (file or dict) is invalid; the message names field and value."""


# The largest arch file (or JSON text) read: real archs take a few KiB.
MAX_ARCH_BYTES = 1 << 20
# The deepest nesting of objects and lists in an arch document (real archs: 5).
MAX_NESTING = 32
# Longest message text quoted from a document.
_MAX_MESSAGE = 300


_MISSING = object()


def _describe(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, list, dict, type(None))) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ArchReader:
    """Reads fields of a JSON object with precise error messages.

    Args:
        data: the (sub-)object to read.
        path: its location in the document, e.g. ``"layers[2]"``.
        source: the file or text the document came from, for messages.

    Example:

    >>> r = ArchReader({"filters": "many"}, source="a.json")
    >>> r.int("filters")
    Traceback (most recent call last):
    ...
    nas_tf.spaces.arch.ArchError: a.json: field 'filters': expected an integer, got "many"
    """

    def __init__(self, data: Any, path: str = "", source: str | None = None):
        self.data = data
        self.path = path
        self.source = source

    def _field(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | int | None, message: str) -> ArchError:
        where = f"{self.source}: " if self.source else ""
        field = self._field(key) if key is not None else (self.path or "<root>")
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        return ArchError(f"{where}field '{field}': {message}")

    def bad(self, key: str | int, value: Any, expected: str) -> ArchError:
        return self.error(key, f"expected {expected}, got {_describe(value)}")

    def require_object(self) -> None:
        if not isinstance(self.data, dict):
            raise self.error(None, f"expected a JSON object, got {_describe(self.data)}")

    def check_keys(self, allowed: Iterable[str]) -> None:
        """Fails on keys outside ``allowed`` (catches misspelt fields)."""
        self.require_object()
        allowed = set(allowed)
        for key in self.data:
            if not isinstance(key, str) or key not in allowed:
                raise self.error(_describe(key) if not isinstance(key, str) else key,
                                 f"unknown field (allowed: {', '.join(sorted(allowed))})")

    def get(self, key: str, default: Any = _MISSING) -> Any:
        self.require_object()
        if key not in self.data:
            if default is _MISSING:
                raise self.error(key, "missing")
            return default
        return self.data[key]

    def int(self, key: str, *, min: int | None = None, max: int | None = None, default: Any = _MISSING) -> int:
        value = self.get(key, default)
        return self._check_int(key, value, min, max)

    def _check_int(self, key, value, min, max) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(key, value, "an integer")
        if min is not None and value < min:
            raise self.bad(key, value, f"an integer >= {min}")
        if max is not None and value > max:
            raise self.bad(key, value, f"an integer <= {max}")
        return value

    def number(self, key: str, *, min: float | None = None, default: Any = _MISSING) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.bad(key, value, "a number")
        if not math.isfinite(value) or abs(value) > 1e300:
            raise self.bad(key, value, "a finite number")
        if min is not None and value < min:
            raise self.bad(key, value, f"a number >= {min}")
        return float(value)

    def choice(self, key: str, choices: Sequence[Any], default: Any = _MISSING) -> Any:
        value = self.get(key, default)
        if not isinstance(value, (str, int, float, type(None))) or isinstance(value, bool) or value not in choices:
            raise self.bad(key, value, "one of " + ", ".join(_describe(c) for c in choices))
        return value

    def list(self, key: str, default: Any = _MISSING) -> list[ArchReader]:
        value = self.get(key, default)
        if not isinstance(value, list):
            raise self.bad(key, value, "a list")
        sub = self._field(key)
        return [ArchReader(v, f"{sub}[{i}]", self.source) for i, v in enumerate(value)]

    def int_list(
        self, key: str, *, min: int | None = None, max: int | None = None, default: Any = _MISSING
    ) -> list[int]:
        value = self.get(key, default)
        if not isinstance(value, list):
            raise self.bad(key, value, "a list of integers")
        sub = ArchReader(value, self._field(key), self.source)
        return [sub._check_int(i, v, min, max) for i, v in enumerate(value)]

    def object(self, key: str, default: Any = _MISSING) -> ArchReader:
        value = self.get(key, default)
        reader = ArchReader(value, self._field(key), self.source)
        reader.require_object()
        return reader


class Arch(abc.ABC):
    """Base class of the typed architectures of every search space.

    Subclasses are frozen dataclasses registered with :func:`register_arch`;
    they set ``space`` and implement ``to_dict`` and ``from_dict``.
    """

    space: ClassVar[str]

    @abc.abstractmethod
    def to_dict(self) -> dict:
        """The JSON-able form, including the ``"space"`` field."""

    @classmethod
    @abc.abstractmethod
    def from_dict(cls, data: dict, source: str | None = None) -> Arch:
        """Validates and builds the arch; raises :class:`ArchError`."""

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Returns the JSON text; with ``path`` also writes it there atomically."""
        text = format_json(self.to_dict()) + "\n"
        if path is not None:
            atomic_write_text(path, text)
        return text

    def __str__(self) -> str:
        return json.dumps(self.to_dict())


_ARCH_TYPES: dict[str, type[Arch]] = {}
_NAMED_ARCHS: dict[str, Callable[[], Arch]] = {}


def register_arch(cls: type[Arch]) -> type[Arch]:
    """Class decorator: makes ``cls`` loadable by :func:`load_arch` under ``cls.space``."""
    _ARCH_TYPES[cls.space] = cls
    return cls


def register_named_arch(name: str, factory: Callable[[], Arch]) -> None:
    """Registers a published architecture so ``load_arch(name)`` returns it."""
    _NAMED_ARCHS[name] = factory


def named_archs() -> list[str]:
    """Names accepted by :func:`load_arch` besides files and JSON text."""
    _import_builtin_spaces()
    return sorted(_NAMED_ARCHS)


def arch_types() -> dict[str, type[Arch]]:
    """The registered spaces' arch classes, by space name."""
    _import_builtin_spaces()
    return dict(_ARCH_TYPES)


def _import_builtin_spaces() -> None:
    # Importing the package registers every built-in space.
    import nas_tf.spaces  # noqa: F401


def _check_nesting(data: Any, source: str | None) -> None:
    """Refuses documents nested deeper than :data:`MAX_NESTING` (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth > MAX_NESTING:
            where = f"{source}: " if source else ""
            raise ArchError(f"{where}nested more than {MAX_NESTING} levels deep (arch documents nest at most {MAX_NESTING})")
        stack.extend((child, depth + 1) for child in children)


def arch_from_dict(data: Any, source: str | None = None) -> Arch:
    """Builds the typed arch of whatever space ``data["space"]`` names.

    Raises:
        ArchError: for any malformed ``data`` (never another exception).
    """
    _import_builtin_spaces()
    _check_nesting(data, source)
    reader = ArchReader(data, source=source)
    reader.require_object()
    space = reader.get("space")
    if not isinstance(space, str) or space not in _ARCH_TYPES:
        raise reader.bad("space", space, "one of " + ", ".join(repr(s) for s in sorted(_ARCH_TYPES)))
    try:
        return _ARCH_TYPES[space].from_dict(data, source=source)
    except RecursionError:
        raise ArchError(f"{source + ': ' if source else ''}nested too deeply to read") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _read_arch_file(path: str) -> str:
    """The text of an arch file, or an :class:`ArchError` saying why it cannot be read."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        hint = f" (named architectures: {', '.join(sorted(_NAMED_ARCHS))})" if _NAMED_ARCHS else ""
        raise ArchError(f"{path}: no such arch file{hint}") from None
    except OSError as e:
        raise ArchError(f"{path}: cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ArchError(f"{path}: is a directory, not an arch file")
    if not stat.S_ISREG(info.st_mode):
        raise ArchError(f"{path}: is not a regular file (an arch file is a JSON file)")
    if info.st_size > MAX_ARCH_BYTES:
        raise ArchError(f"{path}: {info.st_size} bytes; arch files are read up to {MAX_ARCH_BYTES} bytes")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ARCH_BYTES + 1)
    except OSError as e:
        raise ArchError(f"{path}: cannot be read ({e.strerror})") from None
    if len(data) > MAX_ARCH_BYTES:
        raise ArchError(f"{path}: more than {MAX_ARCH_BYTES} bytes; arch files are read up to {MAX_ARCH_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ArchError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at line {line} column {column})"
        ) from None


def load_arch(path_or_text: str | os.PathLike | dict | Arch) -> Arch:
    """Loads a typed architecture of any registered search space.

    Args:
        path_or_text: a path to an arch JSON file, the JSON text itself, an
            already parsed dict, an :class:`Arch` (returned as is), or the name
            of a published architecture (see :func:`named_archs`).

    Returns:
        The typed, validated arch.

    Raises:
        ArchError: the file is missing, unreadable, not UTF-8, too large, not
            JSON, nested too deeply, or has a bad field; the message names the
            file, the field and the value. No other exception comes out.

    Example:

    >>> arch = load_arch('{"space": "nas_cnn", "layers": [{"filter_height": 3, '
    ...                  '"filter_width": 3, "num_filters": 24, "inputs": []}]}')
    >>> arch.layers[0].num_filters
    24
    """
    _import_builtin_spaces()
    if isinstance(path_or_text, Arch):
        return path_or_text
    if isinstance(path_or_text, dict):
        return arch_from_dict(path_or_text, source="<dict>")
    if not isinstance(path_or_text, (str, os.PathLike)):
        raise ArchError(f"expected an arch file, JSON text, a dict or an Arch, got {type(path_or_text).__name__}")
    text = os.fspath(path_or_text)
    if not isinstance(text, str):
        raise ArchError(f"expected an arch file, JSON text, a dict or an Arch, got {_describe(text)}")
    if text.lstrip().startswith("{"):
        source, content = "<json text>", text
        if len(content.encode("utf-8", "replace")) > MAX_ARCH_BYTES:
            raise ArchError(f"{source}: more than {MAX_ARCH_BYTES} bytes; arch documents are read up to {MAX_ARCH_BYTES} bytes")
    elif text in _NAMED_ARCHS:
        return _NAMED_ARCHS[text]()
    elif not text or "\0" in text:
        raise ArchError(f"{text!r}: not an arch file name")
    else:
        source = text
        content = _read_arch_file(text)
    try:
        data = json.loads(content, parse_constant=_reject_constant, parse_float=_parse_float)
    except json.JSONDecodeError as e:
        raise ArchError(f"{source}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise ArchError(f"{source}: nested too deeply (arch documents nest at most {MAX_NESTING} levels)") from None
    except ValueError as e:  # NaN, Infinity, 1e999, an integer of thousands of digits
        raise ArchError(f"{source}: not valid JSON: {str(e)[:120]}") from None
    return arch_from_dict(data, source=source)
