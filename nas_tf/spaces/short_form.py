"""One line that names an architecture, for logs, tables and summaries.

::

    nas_cnn     3x3x24 5x3x48 1x1x24<0,1           (filter HxW x filters, <inputs when not the previous layer)
    nasnet      N: sep5x5(0)+sep3x3(1) ... | R: ...  (op(input state) per block; + add, & concat)
    enas_macro  conv3x3 sep5x5 conv3x3+[0] ...     (op, +[skips])
    nas_rnn     +sig +relu ... inject +tanh@8 c@12  (combination, activation per node)
    enas_rnn    sigmoid(0) tanh(1) ...               (activation(input node) per node)
    nb201       |nor_conv_3x3~0|+|...|               (the benchmark's own string)

This module imports no TensorFlow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from nas_tf.spaces.arch import Arch, arch_types, load_arch

_FORMS: dict[str, Callable[[Any], str]] = {}


def register_short_form(space: str) -> Callable:
    """Decorator: makes ``fn(arch) -> str`` the short form of ``space``'s archs."""

    def decorator(fn):
        _FORMS[space] = fn
        return fn

    return decorator


def arch_short_form(arch: Arch | dict | str) -> str:
    """A one-line form of ``arch`` (an Arch, its JSON dict or anything :func:`~nas_tf.spaces.load_arch` reads).

    Example:

    >>> arch_short_form("enas_rnn")
    'sigmoid(0) tanh(1) relu(2) sigmoid(2) tanh(4) tanh(5) sigmoid(3) sigmoid(6)'
    """
    if isinstance(arch, dict) and arch.get("space") in _FORMS and arch.get("space") not in arch_types():
        return _FORMS[arch["space"]](arch)
    if isinstance(arch, str) and arch.startswith("|"):
        return arch
    typed = load_arch(arch)
    form = _FORMS.get(typed.space)
    return form(typed) if form else json.dumps(typed.to_dict(), separators=(",", ":"))


def short_op(op: str) -> str:
    """``sep_conv_5x5`` -> ``sep5x5``, ``avg_pool_3x3`` -> ``avg3x3``, ``identity`` -> ``id``."""
    if op == "identity":
        return "id"
    op = re.sub(r"^(sep|dil)_conv_", r"\1", op)
    op = re.sub(r"^(avg|max)_pool_", r"\1", op)
    return op.replace("conv_", "conv")


@register_short_form("nas_cnn")
def _nas_cnn(arch) -> str:
    parts = []
    for i, layer in enumerate(arch.layers):
        text = f"{layer.filter_height}x{layer.filter_width}x{layer.num_filters}"
        if (layer.stride_height, layer.stride_width) != (1, 1):
            text += f"/{layer.stride_height}x{layer.stride_width}"
        if layer.inputs != ((i - 1,) if i else ()):
            text += "<" + (",".join(map(str, layer.inputs)) or "image")
        if i in arch.max_pool_after:
            text += "+pool"
        parts.append(text)
    return " ".join(parts)


@register_short_form("nasnet")
def _nasnet(arch) -> str:
    def cell(c) -> str:
        return " ".join(
            ("+" if b.combine == "add" else "&").join(f"{short_op(op)}({s})" for s, op in zip(b.inputs, b.ops))
            for b in c.blocks
        )

    return f"N: {cell(arch.normal)} | R: {cell(arch.reduction)}"


@register_short_form("enas_macro")
def _enas_macro(arch) -> str:
    return " ".join(
        short_op(layer.op) + (f"+[{','.join(map(str, layer.skips))}]" if layer.skips else "") for layer in arch.layers
    )


_COMBINE = {"add": "+", "elem_mult": "*"}
_ACT = {"identity": "id", "tanh": "tanh", "sigmoid": "sig", "relu": "relu"}


@register_short_form("nas_rnn")
def _nas_rnn(arch) -> str:
    nodes = " ".join(_COMBINE[n.combination] + _ACT[n.activation] for n in arch.nodes)
    inject = _COMBINE[arch.cell_inject.combination] + _ACT[arch.cell_inject.activation]
    return f"{nodes} inject {inject}@{arch.cell_inject_node} c@{arch.cell_output_node}"


@register_short_form("enas_rnn")
def _enas_rnn(arch) -> str:
    text = " ".join(f"{n.activation}({n.input})" for n in arch.nodes)
    return text if arch.output == "mean" else f"{text} out={arch.output}"


@register_short_form("nb201")
def _nb201(arch) -> str:
    data = arch.to_dict() if isinstance(arch, Arch) else arch
    return data["cell"]
