"""The ENAS recurrent-cell search space (Pham et al. 2018, 2.1; corrected ``enas_lm`` code).

A cell maps ``(x_t, h_{t-1})`` to ``h_t`` through a chain of highway nodes:

* node 0 is fixed: ``[c, h] = x_t W_x + h_{t-1} W_h``,
  ``s_0 = h_{t-1} + sigmoid(c) * (tanh(h) - h_{t-1})``;
* every later node ``l = 1 .. L`` reads one earlier node ``p_l < l`` and applies
  an activation ``f_l`` among ``tanh``, ``relu``, ``sigmoid``, ``identity``:
  ``[c, h] = s_{p_l} W_l``, ``s_l = s_{p_l} + sigmoid(c) * (f_l(h) - s_{p_l})``;
* the output ``h_t`` is the **mean of the nodes 1 .. L** (``"output": "mean"``,
  the corrected code), or the mean of the loose ends -- the nodes no other
  node reads (``"output": "loose_ends"``, the paper's wording).

**Corrected versus old official code** (PAPERS.md 3.5.2-3.5.3). The authors
declared their first PTB implementation wrong; this space follows the
corrected ``enas_lm`` code: node 0 is a fixed tanh highway (no sampled
activation), activations are numbered 0 tanh, 1 relu, 2 sigmoid, 3 identity
(the old code had 2 identity, 3 sigmoid, and its controller could only sample
the first two of the four), there is no batch norm on the nodes or on the
output, and the output averages all sampled nodes. The paper's loose-end
average stays available as a setting. The paper's N = 12 nodes are node 0 plus
``num_nodes = 11``; ``enas_lm`` searches 9 and published an 8-node cell, so
the default is 8 (the published cell is an arch of the default space).

Arch JSON (``"space": "enas_rnn"``), node ``l`` of the list is node ``l + 1``::

    {"space": "enas_rnn",
     "nodes": [{"input": 0, "activation": "sigmoid"},
               {"input": 1, "activation": "tanh"}, ...],
     "output": "mean"}

Decisions (controller order): an anchor step for node 0 (its stored value is
zeros, as the ``enas_lm`` controller's attention reads ``[zeros, anchors...]``),
then for every node ``l``: the input (:class:`~nas_tf.spaces.decisions.Select`
among nodes ``0 .. l-1``), the activation (softmax head ``"activation"``), and
an anchor step recording node ``l``. Tokens: ``[p_1, f_1, p_2, f_2, ...]`` --
the authors' arc string, when the activations keep their default order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nas_tf.spaces.arch import Arch, ArchReader, register_arch, register_named_arch
from nas_tf.spaces.base import SearchSpace, register_space
from nas_tf.spaces.decisions import Anchor, Categorical, DecisionList, Select

# The corrected code's activation order (enas_lm): the token of an arc string.
RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
OUTPUT_MODES = ("mean", "loose_ends")
# The most nodes a cell may have (the paper's cell has 8).
MAX_NODES = 64


@dataclasses.dataclass(frozen=True)
class EnasRnnNode:
    """One sampled node: the earlier node it reads and its activation."""

    input: int
    activation: str

    def to_dict(self) -> dict:
        return {"input": self.input, "activation": self.activation}


def output_nodes(nodes: tuple[EnasRnnNode, ...], output: str) -> tuple[int, ...]:
    """The nodes (numbered 1 .. L) whose mean is the cell output.

    Example:

    >>> nodes = (EnasRnnNode(0, "tanh"), EnasRnnNode(1, "relu"), EnasRnnNode(1, "tanh"))
    >>> output_nodes(nodes, "mean"), output_nodes(nodes, "loose_ends")
    ((1, 2, 3), (2, 3))
    """
    every = tuple(range(1, len(nodes) + 1))
    if output == "mean":
        return every
    read = {n.input for n in nodes}
    return tuple(k for k in every if k not in read)


@register_arch
@dataclasses.dataclass(frozen=True)
class EnasRnnArch(Arch):
    """A recurrent cell of the ENAS space.

    Args:
        nodes: the sampled nodes 1 .. L in order (node 0 is the fixed tanh
            highway of ``x_t`` and ``h_{t-1}``).
        output: ``"mean"`` (mean of nodes 1 .. L, the corrected code) or
            ``"loose_ends"`` (mean of the nodes no other node reads).

    Example:

    >>> arch = nas_tf.load_arch("enas_rnn")
    >>> arch.num_nodes, arch.nodes[0]
    (8, EnasRnnNode(input=0, activation='sigmoid'))
    """

    space = "enas_rnn"
    nodes: tuple[EnasRnnNode, ...]
    output: str = "mean"

    def __post_init__(self):
        EnasRnnArch.from_dict(self.to_dict(), source="<EnasRnnArch>")

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def output_nodes(self) -> tuple[int, ...]:
        """Nodes (1 .. L) averaged into ``h_t``."""
        return output_nodes(self.nodes, self.output)

    def to_dict(self) -> dict:
        return {"space": self.space, "nodes": [n.to_dict() for n in self.nodes], "output": self.output}

    def to_arc(self) -> str:
        """The authors' arc string: ``prev f`` per node (f: 0 tanh, 1 relu, 2 sigmoid, 3 identity)."""
        return " ".join(f"{n.input} {RNN_ACTIVATIONS.index(n.activation)}" for n in self.nodes)

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> EnasRnnArch:
        r = ArchReader(data, source=source)
        r.check_keys(("space", "nodes", "output"))
        readers = r.list("nodes")
        if not readers:
            raise r.error("nodes", "must contain at least one node")
        if len(readers) > MAX_NODES:
            raise r.error("nodes", f"{len(readers)} nodes; nas_tf builds cells of up to {MAX_NODES}")
        nodes = []
        for k, nr in enumerate(readers):
            nr.check_keys(("input", "activation"))
            # List entry k is node k + 1: it reads node 0 .. k.
            nodes.append(EnasRnnNode(nr.int("input", min=0, max=k), nr.choice("activation", RNN_ACTIVATIONS)))
        arch = object.__new__(cls)
        object.__setattr__(arch, "nodes", tuple(nodes))
        object.__setattr__(arch, "output", r.choice("output", OUTPUT_MODES, default="mean"))
        return arch


def rnn_arch_from_arc(arc: str | list[int], output: str = "mean") -> EnasRnnArch:
    """Decodes an arc string of the corrected code: ``prev f`` per node.

    Example:

    >>> rnn_arch_from_arc("0 2 1 0").nodes
    (EnasRnnNode(input=0, activation='sigmoid'), EnasRnnNode(input=1, activation='tanh'))
    """
    values = [int(v) for v in (arc.split() if isinstance(arc, str) else arc)]
    if not values or len(values) % 2:
        raise ValueError(f"an ENAS RNN arc has 2 numbers per node (prev, f), got {len(values)} numbers")
    nodes = []
    for k in range(len(values) // 2):
        prev, f = values[2 * k], values[2 * k + 1]
        if not 0 <= prev <= k:
            raise ValueError(f"arc node {k + 1}: input {prev} is not an earlier node in [0, {k}]")
        if not 0 <= f < len(RNN_ACTIVATIONS):
            raise ValueError(f"arc node {k + 1}: activation {f} out of range [0, {len(RNN_ACTIVATIONS)})")
        nodes.append(EnasRnnNode(prev, RNN_ACTIVATIONS[f]))
    return EnasRnnArch(nodes=tuple(nodes), output=output)


@register_space
@dataclasses.dataclass(frozen=True)
class EnasRnnSpace(SearchSpace):
    """The ENAS recurrent-cell space.

    Size: ``prod_{l=1..L} (l * A) = L! * A^L`` (``A`` activations); for the
    paper's ``L = 11`` (N = 12 with node 0) and ``A = 4`` about ``1.7e14``;
    the paper's ``4^N * N! ~ 10^15`` counts node 0 as a choice too.

    Args:
        num_nodes: sampled nodes L after the fixed node 0 (paper 11, enas_lm
            search 9, published cell 8; default 8).
        activations: activation choices, in token order.
        output: ``"mean"`` or ``"loose_ends"`` (see the module docstring).

    Example:

    >>> EnasRnnSpace(num_nodes=8).decisions.num_tokens
    16
    """

    name = "enas_rnn"
    num_nodes: int = 8
    activations: tuple = RNN_ACTIVATIONS
    output: str = "mean"

    def __post_init__(self):
        if isinstance(self.num_nodes, bool) or not isinstance(self.num_nodes, int) or self.num_nodes < 1:
            raise ValueError(f"num_nodes must be a positive integer, got {self.num_nodes!r}")
        if self.num_nodes > MAX_NODES:
            raise ValueError(f"num_nodes: {self.num_nodes} is larger than {MAX_NODES}, the most nas_tf builds")
        acts = tuple(self.activations)
        bad = [a for a in acts if a not in RNN_ACTIVATIONS]
        if not acts or bad or len(set(acts)) != len(acts):
            raise ValueError(f"activations must be distinct names among {list(RNN_ACTIVATIONS)}, got {list(acts)}")
        object.__setattr__(self, "activations", acts)
        if self.output not in OUTPUT_MODES:
            raise ValueError(f"output must be one of {list(OUTPUT_MODES)}, got {self.output!r}")

    def build_decisions(self) -> DecisionList:
        out: list = [Anchor("nodes[0]", anchor=0, zero_value=True)]
        for k in range(1, self.num_nodes + 1):
            out.append(Select(f"nodes[{k}].input", num_candidates=k))
            out.append(Categorical(f"nodes[{k}].activation", "activation", self.activations))
            out.append(Anchor(f"nodes[{k}]", anchor=k))
        return DecisionList(out)

    def token_layout(self) -> list[tuple[int, int]]:
        """Token offsets ``(input, activation)`` of nodes 1 .. L."""
        d = self.decisions
        offsets = dict(zip((x.name for x in d.decisions), d.offsets))
        return [(offsets[f"nodes[{k}].input"], offsets[f"nodes[{k}].activation"]) for k in range(1, self.num_nodes + 1)]

    def size(self) -> int:
        return self.decisions.size()

    def from_values(self, values: dict[str, Any]) -> EnasRnnArch:
        nodes = tuple(
            EnasRnnNode(values[f"nodes[{k}].input"], values[f"nodes[{k}].activation"])
            for k in range(1, self.num_nodes + 1)
        )
        return EnasRnnArch(nodes=nodes, output=self.output)

    def to_values(self, arch: Arch) -> dict[str, Any]:
        if not isinstance(arch, EnasRnnArch):
            raise ValueError(f"expected an enas_rnn arch, got space {arch.space!r}")
        if arch.num_nodes != self.num_nodes:
            raise ValueError(f"nodes: the arch has {arch.num_nodes} nodes, this space has {self.num_nodes}")
        if arch.output != self.output:
            raise ValueError(f"output: the arch averages {arch.output!r}, this space {self.output!r}")
        values: dict[str, Any] = {}
        for k, node in enumerate(arch.nodes, start=1):
            values[f"nodes[{k}].input"] = node.input
            values[f"nodes[{k}].activation"] = node.activation
        self.decisions.encode(values)  # names a decision whose value is outside the space
        return values


# The cell published with the corrected code (enas_lm README; PAPERS.md 3.9.3).
ENAS_RNN_ARC = "0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2"
# DARTS (second order) recurrent cell written in the same format by enas_lm.
DARTS_RNN_ARC = "0 2 1 1 1 1 1 3 2 0 5 2 3 0 5 1"


def enas_rnn_published() -> EnasRnnArch:
    """The ENAS PTB cell of the corrected code (8 nodes, output = mean)."""
    return rnn_arch_from_arc(ENAS_RNN_ARC)


def darts_rnn_published() -> EnasRnnArch:
    """The DARTS (second order) recurrent cell, as written in ``enas_lm``'s arc format."""
    return rnn_arch_from_arc(DARTS_RNN_ARC)


register_named_arch("enas_rnn", enas_rnn_published)
register_named_arch("darts_rnn", darts_rnn_published)
