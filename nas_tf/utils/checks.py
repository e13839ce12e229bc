"""Argument checks shared by layers, models and configs: each error names the argument and the bad value."""

from __future__ import annotations

import numbers
from typing import Any


def positive_int(name: str, value: Any, allow_none: bool = False, owner: str | None = None) -> int | None:
    """``value`` as an int if it is a positive integer (not a bool), else a ``ValueError`` naming ``name``.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        allow_none: let None through (returned as None).
        owner: prefix of the message (e.g. the layer's name).

    Example:

    >>> positive_int("units", 8)
    8
    >>> positive_int("units", 0)
    Traceback (most recent call last):
    ...
    ValueError: units must be a positive integer, got 0
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        prefix = f"{owner}: " if owner else ""
        raise ValueError(f"{prefix}{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def rate(name: str, value: Any) -> float:
    """``value`` as a float if it is a number in [0, 1) (a dropout rate), else a ``ValueError`` naming ``name``.

    Example:

    >>> rate("dropout", 0.25)
    0.25
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)
