"""Drawers of whole networks: the NAS macro CNN and the ENAS macro network.

Drawn top to bottom as ``keras.utils.plot_model`` draws a model: the image,
one node per layer (op, filter size, filters, stride), the classifier. Edges
from the previous layer are solid; skip connections are dashed and grey.
"""

from __future__ import annotations

import graphviz

from nas_tf.spaces.enas_macro import EnasMacroArch
from nas_tf.spaces.nas_cnn import NASCNNArch
from nas_tf.viz.drawers import register_drawer
from nas_tf.viz.render import INPUT, OUTPUT, REDUCE, SKIP_COLOR, new_graph

_SKIP = {"style": "dashed", "color": SKIP_COLOR}


@register_drawer("nas_cnn")
def draw_nas_cnn(arch: NASCNNArch) -> graphviz.Digraph:
    """A NAS macro CNN: every conv layer (filter size, filters, stride) and its inputs.

    A layer with several inputs concatenates them (zero-padding to the largest
    size); a layer without inputs reads the image; the layers no later layer
    reads are concatenated into the classifier (the paper's three rules).
    """
    graph = new_graph("nas_cnn", rankdir="TB")
    graph.node("image", label="image", fillcolor=INPUT)
    for i, layer in enumerate(arch.layers):
        lines = [
            f"layer {i}: conv {layer.filter_height}x{layer.filter_width}",
            f"{layer.num_filters} filters, stride {layer.stride_height}x{layer.stride_width}",
        ]
        if len(layer.inputs) > 1:
            lines.insert(0, f"concat of {len(layer.inputs)} inputs")
        pooled = i in arch.max_pool_after
        if pooled:
            lines.append("then max pool 2x2, stride 2")
        graph.node(f"layer{i}", label="\n".join(lines), fillcolor=REDUCE if pooled else None)
        if not layer.inputs:
            graph.edge("image", f"layer{i}", **({} if i == 0 else _SKIP))
        for j in layer.inputs:
            graph.edge(f"layer{j}", f"layer{i}", **({"weight": "10"} if j == i - 1 else _SKIP))
    final = arch.unconsumed_layers()
    head = "classifier\nglobal avg pool, softmax"
    if len(final) > 1:
        head = f"concat of {len(final)} layers\n" + head
    graph.node("classifier", label=head, fillcolor=OUTPUT)
    last = len(arch.layers) - 1
    for i in final:
        graph.edge(f"layer{i}", "classifier", **({} if i == last else _SKIP))
    return graph


@register_drawer("enas_macro")
def draw_enas_macro(arch: EnasMacroArch) -> graphviz.Digraph:
    """An ENAS macro network: the stem (node 0), every layer's op, its skips (added), the reductions."""
    graph = new_graph("enas_macro", rankdir="TB")
    graph.node("image", label="image", fillcolor=INPUT)
    graph.node("node0", label="stem (node 0)\nconv 3x3")
    graph.edge("image", "node0")
    for k, layer in enumerate(arch.layers):
        lines = [f"layer {k} (node {k + 1})", layer.op]
        if layer.skips:
            lines.append(f"+ {len(layer.skips)} skip{'s' if len(layer.skips) > 1 else ''}")
        reduced = k in arch.reduce_after
        if reduced:
            lines.append("then reduce every node (stride 2)")
        graph.node(f"node{k + 1}", label="\n".join(lines), fillcolor=REDUCE if reduced else None)
        graph.edge(f"node{k}", f"node{k + 1}", weight="10")
        for j in layer.skips:
            # Skips do not rank the nodes: the chain of layers stays straight.
            graph.edge(f"node{j}", f"node{k + 1}", constraint="false", **_SKIP)
    graph.node("classifier", label="classifier\nglobal avg pool, softmax", fillcolor=OUTPUT)
    graph.edge(f"node{len(arch.layers)}", "classifier")
    return graph
