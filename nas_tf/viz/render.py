"""Graphviz plumbing: the house style of arch pictures, rendering, file formats.

The pictures are Graphviz graphs (the ``graphviz`` Python package writes the
DOT text; the ``dot`` program lays it out), as ``keras.utils.plot_model``
does. The style follows the cell figures of DARTS and ENAS: inputs in green,
computed nodes in blue, the output in yellow, edges labelled with their op.

This module imports no TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import graphviz

#: File extensions :func:`write_graph` understands, and the Graphviz format of each.
FORMATS: dict[str, str] = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}

INSTALL_HINT = (
    "install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), `conda install graphviz`, "
    "or `brew install graphviz` (macOS)"
)

# Fill colours of the three kinds of node (the DARTS cell figures use the same three).
INPUT = "darkseagreen2"
NODE = "lightblue"
OUTPUT = "palegoldenrod"
OTHER = "gray92"
REDUCE = "lightpink"
SKIP_COLOR = "gray40"


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz program ``dot`` is not installed (or not on PATH)."""


def new_graph(name: str, rankdir: str = "TB", **graph_attr: str) -> graphviz.Digraph:
    """An empty directed graph with the house style for nodes and edges."""
    return graphviz.Digraph(
        name,
        graph_attr={"rankdir": rankdir, "nodesep": "0.3", "ranksep": "0.35", "fontname": "Helvetica", **graph_attr},
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fillcolor": NODE,
            "fontname": "Helvetica",
            "fontsize": "12",
            "penwidth": "1.2",
            "margin": "0.12,0.06",
        },
        edge_attr={"fontname": "Helvetica", "fontsize": "10", "arrowsize": "0.7"},
    )


def sub(base: str, index: str) -> str:
    """An HTML-like Graphviz label with a subscript: ``sub("h", "i-1")`` draws h with subscript i-1."""
    return f"<{base}<SUB>{index}</SUB>>"


def check_dot() -> str:
    """The path of the ``dot`` program; raises :class:`GraphvizNotFoundError` (with how to install it) if absent."""
    path = shutil.which("dot")
    if path is None:
        raise GraphvizNotFoundError(f"drawing an arch needs the Graphviz program `dot`, which is not on PATH: {INSTALL_HINT}")
    return path


def format_of(path: str | os.PathLike) -> str:
    """The Graphviz output format for ``path``'s extension; a ValueError names the path otherwise."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(
            f"{os.fspath(path)}: unknown picture format {ext or '(no extension)'!r}; use one of {', '.join(FORMATS)}"
        )
    return FORMATS[ext]


def render(graph: graphviz.Digraph, fmt: str) -> bytes:
    """Lays out ``graph`` with ``dot`` and returns the picture in format ``fmt`` (``"svg"``, ``"png"``, ...)."""
    if fmt == "dot":
        return graph.source.encode("utf-8")
    check_dot()
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:  # dot vanished between the check and the call
        raise GraphvizNotFoundError(f"the Graphviz program `dot` could not be run: {INSTALL_HINT}") from None


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (a temporary file in the same directory, then a rename)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a picture is for reading
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_graph(graph: graphviz.Digraph, path: str | os.PathLike) -> str:
    """Renders ``graph`` in the format of ``path``'s extension and writes it there atomically; returns the path."""
    data = render(graph, format_of(path))
    write_bytes_atomic(path, data)
    return os.fspath(path)
