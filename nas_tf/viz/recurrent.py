"""Drawers of recurrent cells: the NAS tree cell (``nas_rnn``, incl. ``nascell``) and the ENAS cell.

NAS tree cell, drawn bottom to top like an LSTM diagram: the inputs ``x_t``,
``h_{t-1}`` and ``c_{t-1}``; the ``base`` leaves, each reading ``x_t`` and
``h_{t-1}``; the inner nodes, each combining its two children; every node
labelled with its combination and activation; the cell inject, which merges
``c_{t-1}`` into the output of ``cell_inject_node``; ``c_t``, the
pre-activation value of ``cell_output_node``; and ``h_t``, the root.

ENAS recurrent cell, drawn left to right as the DARTS / ENAS figures draw it:
``x_t`` and ``h_{t-1}`` into node 0 (the fixed highway), one edge per
sampled node labelled with its activation, and ``h_t``, the mean of the
output nodes.
"""

from __future__ import annotations

import graphviz

from nas_tf.spaces.enas_rnn import EnasRnnArch
from nas_tf.spaces.nas_rnn import NASRNNArch
from nas_tf.viz.drawers import register_drawer
from nas_tf.viz.render import INPUT, OTHER, OUTPUT, SKIP_COLOR, new_graph, sub


@register_drawer("nas_rnn")
def draw_nas_rnn(arch: NASRNNArch) -> graphviz.Digraph:
    """The NAS recurrent tree cell (e.g. ``load_arch("nascell")``)."""
    graph = new_graph("nas_rnn", rankdir="BT")
    with graph.subgraph() as inputs:
        inputs.attr(rank="source")
        inputs.node("x", label=sub("x", "t"), fillcolor=INPUT)
        inputs.node("h", label=sub("h", "t-1"), fillcolor=INPUT)
        inputs.node("c", label=sub("c", "t-1"), fillcolor=INPUT)
    children = arch.children()
    for k, node in enumerate(arch.nodes):
        graph.node(f"n{k}", label=f"{k}: {node.combination}\n{node.activation}")
    # The value a node hands to its parent: its own output, or the inject node's.
    out = {k: f"n{k}" for k in range(arch.num_nodes)}
    j = arch.cell_inject_node
    graph.node("inject", label=f"inject: {arch.cell_inject.combination}\n{arch.cell_inject.activation}", fillcolor=OTHER)
    graph.edge(f"n{j}", "inject")
    graph.edge("c", "inject", style="dashed", color=SKIP_COLOR)
    out[j] = "inject"
    for k, pair in enumerate(children):
        if pair is None:
            graph.edge("x", f"n{k}", color=SKIP_COLOR)
            graph.edge("h", f"n{k}", color=SKIP_COLOR)
        else:
            for child in pair:
                graph.edge(out[child], f"n{k}")
    graph.node("h_t", label=sub("h", "t"), fillcolor=OUTPUT)
    graph.edge(out[arch.root], "h_t")
    graph.node("c_t", label=sub("c", "t"), fillcolor=OUTPUT)
    graph.edge(f"n{arch.cell_output_node}", "c_t", label="pre-activation", style="dashed", color=SKIP_COLOR)
    return graph


@register_drawer("enas_rnn")
def draw_enas_rnn(arch: EnasRnnArch) -> graphviz.Digraph:
    """An ENAS recurrent cell (e.g. ``load_arch("enas_rnn")``)."""
    graph = new_graph("enas_rnn", rankdir="LR")
    with graph.subgraph() as inputs:
        inputs.attr(rank="source")
        inputs.node("x", label=sub("x", "t"), fillcolor=INPUT)
        inputs.node("h", label=sub("h", "t-1"), fillcolor=INPUT)
    graph.node("n0", label="0")
    graph.edge("x", "n0", label="highway")
    graph.edge("h", "n0", label="highway")
    for k, node in enumerate(arch.nodes, start=1):
        graph.node(f"n{k}", label=str(k))
        graph.edge(f"n{node.input}", f"n{k}", label=node.activation)
    graph.node("h_t", label=f"<h<SUB>t</SUB> = {arch.output.replace('_', ' ')}>", fillcolor=OUTPUT)
    for k in arch.output_nodes():
        graph.edge(f"n{k}", "h_t", style="dashed", color=SKIP_COLOR)
    return graph
