"""The registry of arch drawers: one ``fn(arch) -> graphviz.Digraph`` per search space.

The built-in drawers (:mod:`nas_tf.viz.cells`, :mod:`nas_tf.viz.networks`,
:mod:`nas_tf.viz.recurrent`) register here; :mod:`nas_tf.viz.plot` looks
drawers up here. Imports no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import graphviz

Drawer = Callable[[Any], graphviz.Digraph]

_DRAWERS: dict[str, Drawer] = {}


def register_drawer(space: str) -> Callable[[Drawer], Drawer]:
    """Decorator: makes ``fn(arch) -> graphviz.Digraph`` the drawer of ``space``.

    Example:

    >>> @register_drawer("my_space")  # doctest: +SKIP
    ... def draw_my_space(arch):
    ...     g = new_graph("my_space")
    ...     ...
    ...     return g
    """

    def decorator(fn: Drawer) -> Drawer:
        _DRAWERS[space] = fn
        return fn

    return decorator
