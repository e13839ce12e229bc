"""Drawers of convolutional cells: NASNet (and ENAS micro, which writes NASNet archs), NAS-Bench-201.

A NASNet arch is drawn as its normal and reduction cells side by side. Each
cell shows its inputs ``h_i`` (state 0, the previous cell) and ``h_{i-1}``
(state 1, the cell before), one node per block labelled with its combiner
(``add`` or ``concat``), one edge per block input labelled with its op, and
the cell output ``h_{i+1}``, the concatenation of the cell's ``concat``
states.

A NAS-Bench-201 cell (``"|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|...|"``)
is drawn as in the benchmark's paper: node 0 (the input) to node 3 (the
output), one edge per op, ``none`` edges left out.
"""

from __future__ import annotations

from typing import Any

import graphviz

from nas_tf.spaces.arch import Arch, ArchError
from nas_tf.spaces.nasnet import NASNetArch, NASNetCell
from nas_tf.viz.drawers import register_drawer
from nas_tf.viz.render import INPUT, OUTPUT, new_graph, sub

_STATE_NAMES = {0: ("h", "i"), 1: ("h", "i-1")}


def _state_node(prefix: str, state: int) -> str:
    return f"{prefix}_in{state}" if state < 2 else f"{prefix}_block{state - 2}"


def _draw_cell(graph: graphviz.Digraph, cell: NASNetCell, prefix: str, title: str) -> None:
    with graph.subgraph(name=f"cluster_{prefix}") as c:
        c.attr(label=title, labelloc="t", fontsize="14", style="rounded,dashed", color="gray50")
        with c.subgraph() as inputs:
            inputs.attr(rank="same")
            for state in (1, 0):
                inputs.node(_state_node(prefix, state), label=sub(*_STATE_NAMES[state]), fillcolor=INPUT)
        for b, block in enumerate(cell.blocks):
            c.node(_state_node(prefix, b + 2), label=f"block {b}\n{block.combine}")
        for b, block in enumerate(cell.blocks):
            for state, op in zip(block.inputs, block.ops):
                c.edge(_state_node(prefix, state), _state_node(prefix, b + 2), label=op)
        out = f"{prefix}_out"
        c.node(out, label=f"<h<SUB>i+1</SUB> = concat({len(cell.concat)})>", fillcolor=OUTPUT)
        for state in cell.concat:
            c.edge(_state_node(prefix, state), out, style="dashed", color="gray40")


@register_drawer("nasnet")
def draw_nasnet(arch: NASNetArch) -> graphviz.Digraph:
    """The normal and the reduction cell of a NASNet (or ENAS micro) arch, side by side."""
    graph = new_graph("nasnet", rankdir="TB")
    _draw_cell(graph, arch.normal, "normal", "normal cell")
    _draw_cell(graph, arch.reduction, "reduction", "reduction cell (ops on h_i, h_i-1 use stride 2)")
    return graph


# ------------------------------------------------------------- NAS-Bench-201


def parse_nb201(cell: str) -> list[list[tuple[str, int]]]:
    """Parses a NAS-Bench-201 cell string into, for every node 1 .. N, its ``(op, input node)`` edges.

    Example:

    >>> parse_nb201("|nor_conv_3x3~0|+|skip_connect~0|none~1|")
    [[('nor_conv_3x3', 0)], [('skip_connect', 0), ('none', 1)]]
    """
    if not isinstance(cell, str) or not cell.startswith("|") or not cell.endswith("|"):
        raise ArchError(f"field 'cell': expected a NAS-Bench-201 cell string like '|op~0|+|op~0|op~1|', got {cell!r}")
    nodes = []
    for j, group in enumerate(cell.split("+"), start=1):
        items = [item for item in group.strip("|").split("|")]
        edges = []
        for item in items:
            op, sep, source = item.partition("~")
            if not sep or not op or not source.isdigit():
                raise ArchError(f"field 'cell': node {j}: expected 'op~input', got {item!r}")
            edges.append((op, int(source)))
        if sorted(s for _, s in edges) != list(range(j)):
            raise ArchError(f"field 'cell': node {j} must read nodes 0..{j - 1} once each, got {group!r}")
        nodes.append(sorted(edges, key=lambda e: e[1]))
    return nodes


def _nb201_string(arch: Any) -> str:
    if isinstance(arch, str):
        return arch
    data = arch.to_dict() if isinstance(arch, Arch) else arch
    if isinstance(data, dict) and isinstance(data.get("cell"), str):
        return data["cell"]
    raise ArchError(f"field 'cell': a NAS-Bench-201 arch holds its cell string in 'cell', got {data!r}")


@register_drawer("nb201")
def draw_nb201(arch: Any) -> graphviz.Digraph:
    """A NAS-Bench-201 cell (from its arch, its JSON dict, or the cell string alone)."""
    nodes = parse_nb201(_nb201_string(arch))
    last = len(nodes)
    graph = new_graph("nb201", rankdir="LR")
    graph.node("n0", label="0: input", fillcolor=INPUT)
    for j in range(1, last + 1):
        graph.node(f"n{j}", label=f"{j}: output" if j == last else str(j), fillcolor=OUTPUT if j == last else None)
    for j, edges in enumerate(nodes, start=1):
        for op, source in edges:
            if op != "none":
                graph.edge(f"n{source}", f"n{j}", label=op)
    return graph
