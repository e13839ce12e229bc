"""Typed architectures, their JSON form, validation and the space registry.

An architecture is data: a frozen dataclass per search space (subclass of
:class:`Arch`) whose JSON form uses words and numbers a person can read and
edit, with a ``"space"`` field naming its search space::

    {"space": "nas_cnn", "layers": [{"filter_height": 3, ...}, ...]}

:func:`load_arch` reads any registered space's JSON (a path or the text
itself) and validates it; a bad file fails with one :class:`ArchError` that
names the file, the field and the bad value.
"""

from __future__ import annotations

import abc
import json
import os
from typing import Any, Callable, ClassVar, Iterable, Sequence

from nas_tf.utils.io import atomic_write_text, format_json


class ArchError(ValueError):
    """An architecture (file or dict) is invalid; the message names field and value."""


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
            if key not in allowed:
                raise self.error(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")

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
        if min is not None and value < min:
            raise self.bad(key, value, f"a number >= {min}")
        return float(value)

    def choice(self, key: str, choices: Sequence[Any], default: Any = _MISSING) -> Any:
        value = self.get(key, default)
        if value not in choices:
            raise self.bad(key, value, "one of " + ", ".join(_describe(c) for c in choices))
        return value

    def list(self, key: str, default: Any = _MISSING) -> "list[ArchReader]":
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

    def object(self, key: str, default: Any = _MISSING) -> "ArchReader":
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
    def from_dict(cls, data: dict, source: str | None = None) -> "Arch":
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


def arch_from_dict(data: Any, source: str | None = None) -> Arch:
    """Builds the typed arch of whatever space ``data["space"]`` names."""
    _import_builtin_spaces()
    reader = ArchReader(data, source=source)
    reader.require_object()
    space = reader.get("space")
    if space not in _ARCH_TYPES:
        raise reader.bad("space", space, "one of " + ", ".join(repr(s) for s in sorted(_ARCH_TYPES)))
    return _ARCH_TYPES[space].from_dict(data, source=source)


def load_arch(path_or_text: str | os.PathLike | dict | Arch) -> Arch:
    """Loads a typed architecture of any registered search space.

    Args:
        path_or_text: a path to an arch JSON file, the JSON text itself, an
            already parsed dict, an :class:`Arch` (returned as is), or the name
            of a published architecture (see :func:`named_archs`).

    Returns:
        The typed, validated arch.

    Raises:
        ArchError: the file is missing, not JSON, or has a bad field; the
            message names the file, the field and the value.

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
    text = os.fspath(path_or_text)
    if text.lstrip().startswith("{"):
        source, content = "<json text>", text
    elif text in _NAMED_ARCHS:
        return _NAMED_ARCHS[text]()
    else:
        source = text
        if not os.path.exists(text):
            hint = f" (named architectures: {', '.join(sorted(_NAMED_ARCHS))})" if _NAMED_ARCHS else ""
            raise ArchError(f"{text}: no such arch file{hint}")
        with open(text, "r", encoding="utf-8") as f:
            content = f.read()
    try:
        data = json.loads(content)
    except json.JSONDecodeError as e:
        raise ArchError(f"{source}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return arch_from_dict(data, source=source)
