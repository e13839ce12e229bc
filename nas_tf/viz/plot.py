"""Pictures of architectures: one drawer per search space, behind one function.

:func:`plot_arch` draws any arch of any registered space and writes it as SVG,
PNG, PDF or DOT (chosen by the file extension)::

    import nas_tf
    from nas_tf.viz import plot_arch

    plot_arch(nas_tf.load_arch("nasnet_a"), "nasnet_a.svg")

A drawer turns an arch into a ``graphviz.Digraph``; :func:`register_drawer`
adds one for a new space in one place. The built-in drawers (NAS CNN, NAS
recurrent tree, NASNet / ENAS micro cells, ENAS macro, ENAS recurrent,
NAS-Bench-201 cells) live in :mod:`nas_tf.viz.networks`,
:mod:`nas_tf.viz.recurrent` and :mod:`nas_tf.viz.cells`.

This module imports no TensorFlow: drawing is fast.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from typing import Any

import graphviz

from nas_tf.spaces.arch import Arch, ArchError, arch_types, load_arch
from nas_tf.viz.drawers import _DRAWERS, Drawer, register_drawer  # noqa: F401  (the registry's face here)
from nas_tf.viz.render import GraphvizNotFoundError, render, write_graph

log = logging.getLogger("nas_tf.viz")

def _import_builtin_drawers() -> None:
    from nas_tf.viz import cells, networks, recurrent  # noqa: F401  (they register their drawers)


def drawable_spaces() -> list[str]:
    """The spaces with a drawer."""
    _import_builtin_drawers()
    return sorted(_DRAWERS)


def _json_of(arch: Any) -> Any:
    """The parsed JSON of JSON text or a JSON file, or None (load_arch reports what is wrong)."""
    if not isinstance(arch, (str, os.PathLike)):
        return None
    text = os.fspath(arch)
    try:
        if not text.lstrip().startswith("{"):
            if not os.path.isfile(text):
                return None
            with open(text, encoding="utf-8") as f:
                text = f.read()
        return json.loads(text)
    except (OSError, ValueError):
        return None


def _resolve(arch: Any) -> tuple[str, Any]:
    """(space name, what the drawer takes) for an Arch, a dict, JSON text, a file, a name or a cell string."""
    _import_builtin_drawers()
    if isinstance(arch, Arch):
        return arch.space, arch
    if isinstance(arch, str) and arch.startswith("|"):  # a NAS-Bench-201 cell string
        return "nb201", arch
    data = arch if isinstance(arch, dict) else _json_of(arch)
    if isinstance(data, dict):
        space = data.get("space")
        # A space that can be drawn before its arch type is registered (the drawer reads the dict).
        if space in _DRAWERS and space not in arch_types():
            return space, data
    typed = load_arch(arch)
    return typed.space, typed


def arch_graph(arch: Arch | dict | str | os.PathLike) -> graphviz.Digraph:
    """The Graphviz graph of an architecture (displayed inline in Jupyter).

    Args:
        arch: an :class:`~nas_tf.spaces.Arch`, its JSON dict or text, an arch
            file, a published arch name (``"nasnet_a"``, ``"nascell"``, ...) or
            a NAS-Bench-201 cell string.

    Returns:
        A ``graphviz.Digraph``; ``.source`` is its DOT text.

    Raises:
        ArchError: the arch cannot be read, or its space has no drawer.
    """
    space, value = _resolve(arch)
    if space not in _DRAWERS:
        raise ArchError(f"no drawer for search space {space!r}; drawable spaces: {', '.join(sorted(_DRAWERS))}")
    return _DRAWERS[space](value)


def render_arch(arch: Arch | dict | str | os.PathLike, fmt: str = "svg") -> bytes:
    """The picture of ``arch`` as bytes in Graphviz format ``fmt`` (``"svg"``, ``"png"``, ``"pdf"``, ``"dot"``)."""
    return render(arch_graph(arch), fmt)


def plot_arch(arch: Arch | dict | str | os.PathLike, path: str | os.PathLike) -> str:
    """Draws an architecture of any search space into a picture file.

    Cells (NASNet, ENAS micro, NAS-Bench-201) show their inputs ``h_i`` and
    ``h_{i-1}``, one node per block with its combiner, edges labelled with
    their op, and the output; NASNet archs show the normal and the reduction
    cell side by side. Recurrent cells show ``x_t``, ``h_{t-1}`` (and
    ``c_{t-1}``), one node per tree node or cell node, and ``h_t``. Networks
    (NAS CNN, ENAS macro) show every layer with its op, filter size, stride
    and filters, and the skip connections.

    Args:
        arch: an arch, its JSON dict or text, a file, a published name or a
            NAS-Bench-201 cell string.
        path: the picture file; its extension picks the format (``.svg``,
            ``.png``, ``.pdf``, ``.dot``/``.gv``). Written atomically.

    Returns:
        ``path``.

    Raises:
        GraphvizNotFoundError: the Graphviz program ``dot`` is missing (the
            message says how to install it).
        ValueError: unknown extension (ArchError, a ValueError, for a bad arch).

    Example:

    >>> plot_arch("nascell", "/tmp/nascell.svg")  # doctest: +SKIP
    '/tmp/nascell.svg'
    """
    return write_graph(arch_graph(arch), path)


def save_arch_pictures(
    arch: Arch | dict,
    stem: str | os.PathLike,
    formats: Iterable[str] = ("svg", "png"),
    missing_dot: str = "warn",
) -> list[str]:
    """Writes ``stem.svg``, ``stem.png``, ... (e.g. ``best_arch.svg`` beside ``best_arch.json``).

    Meant for search loops: with ``missing_dot="warn"`` a machine without
    Graphviz logs one warning and the search goes on without pictures.

    Args:
        arch: the arch.
        stem: the path without extension.
        formats: the formats to write.
        missing_dot: ``"warn"`` (log once, write nothing) or ``"raise"``.

    Returns:
        The paths written.
    """
    if missing_dot not in ("warn", "raise"):
        raise ValueError(f"missing_dot must be 'warn' or 'raise', got {missing_dot!r}")
    graph = arch_graph(arch)
    written = []
    try:
        for fmt in formats:
            written.append(write_graph(graph, f"{os.fspath(stem)}.{fmt}"))
    except GraphvizNotFoundError as e:
        if missing_dot == "raise":
            raise
        global _warned_missing_dot
        if not _warned_missing_dot:
            log.warning("no arch pictures: %s", e)
            _warned_missing_dot = True
    return written


_warned_missing_dot = False
