"""The NAS recurrent-cell search space of Zoph & Le (2017), section 3.4.

A cell computes ``(h_t, c_t) = f(x_t, h_{t-1}, c_{t-1})`` as a binary tree.
Its ``base`` N leaves read the input and the previous output; the levels above
combine pairs of nodes, down to one root whose output is ``h_t``. For every
node the controller picks a **combination** (``add`` or ``elem_mult``) and an
**activation** (``identity``, ``tanh``, ``sigmoid``, ``relu``)::

    leaf k:      pre_k = (W_k x_t) (+ or *) (U_k h_{t-1} + b_k)   out_k = act_k(pre_k)
    internal k:  pre_k = out_left (+ or *) out_right              out_k = act_k(pre_k)

Two more pairs of decisions give the cell an LSTM-like memory ``c``:

* the **cell inject** -- a combination and an activation that merge
  ``c_{t-1}`` into the output of one node:
  ``out_j <- inject_act(out_j (+ or *) c_{t-1})``;
* the two **cell indices** -- ``cell_output_node`` (the paper's "index 1"), the
  node whose *pre-activation* value becomes ``c_t``, and ``cell_inject_node``
  (the paper's "index 2"), the node ``j`` into which ``c_{t-1}`` is injected.

Nodes are numbered level by level: leaves ``0 .. N-1``, then the N/2 nodes of
the next level (node ``N + k`` combines nodes ``2k`` and ``2k + 1``), and so on;
the root is node ``2N - 2``. The paper's worked example with N = 2 (leaves 0
and 1, root 2) is, as an arch::

    {
      "space": "nas_rnn",
      "base": 2,
      "nodes": [
        {"combination": "add", "activation": "tanh"},
        {"combination": "elem_mult", "activation": "relu"},
        {"combination": "elem_mult", "activation": "sigmoid"}
      ],
      "cell_inject": {"combination": "add", "activation": "relu"},
      "cell_output_node": 1,
      "cell_inject_node": 0
    }

i.e. ``a0 = tanh(W1 x + W2 h)``, ``a1 = relu(W3 x * W4 h)``,
``a0 <- relu(a0 + c_{t-1})``, ``h_t = sigmoid(a0 * a1)``, ``c_t = W3 x * W4 h``.

The published NAS cell (``tf.contrib.rnn.NASCell``, ``tfa.rnn.NASCell``) is
the base-8 arch shipped as ``load_arch("nascell")`` (:func:`nascell_arch`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nas_tf.spaces.arch import Arch, ArchReader, register_arch, register_named_arch
from nas_tf.spaces.base import SearchSpace, register_space
from nas_tf.spaces.decisions import Categorical, DecisionList

COMBINATIONS = ("add", "elem_mult")
# The most leaves a cell's tree may have (the NAS cell has 8).
MAX_BASE = 64
ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu")


def _is_power_of_two(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 2 and n & (n - 1) == 0


def tree_children(base: int) -> list[tuple[int, int] | None]:
    """For every node of a base-``base`` tree: its two children, or None for a leaf.

    Example:

    >>> tree_children(4)
    [None, None, None, None, (0, 1), (2, 3), (4, 5)]
    """
    if not _is_power_of_two(base):
        raise ValueError(f"base must be a power of two >= 2, got {base!r}")
    children: list[tuple[int, int] | None] = [None] * base
    level_start, level_size = 0, base
    while level_size > 1:
        next_start = level_start + level_size
        for k in range(level_size // 2):
            children.append((level_start + 2 * k, level_start + 2 * k + 1))
        level_start, level_size = next_start, level_size // 2
    return children


@dataclasses.dataclass(frozen=True)
class TreeNode:
    """The two decisions of one tree node (or of the cell inject).

    Args:
        combination: ``"add"`` or ``"elem_mult"``.
        activation: ``"identity"``, ``"tanh"``, ``"sigmoid"`` or ``"relu"``.
    """

    combination: str
    activation: str

    def to_dict(self) -> dict:
        return {"combination": self.combination, "activation": self.activation}


def _read_node(reader: ArchReader) -> TreeNode:
    reader.check_keys(("combination", "activation"))
    return TreeNode(reader.choice("combination", COMBINATIONS), reader.choice("activation", ACTIVATIONS))


@register_arch
@dataclasses.dataclass(frozen=True)
class NASRNNArch(Arch):
    """A recurrent cell of the NAS tree space.

    Args:
        base: number of leaves N (a power of two).
        nodes: the ``2N - 1`` nodes in level order (leaves first, root last).
        cell_inject: how ``c_{t-1}`` is merged into node ``cell_inject_node``.
        cell_output_node: the node whose pre-activation value becomes ``c_t``.
        cell_inject_node: the node whose output ``c_{t-1}`` is merged into.

    Example:

    >>> arch = nascell_arch()
    >>> arch.base, arch.num_nodes, arch.root
    (8, 15, 14)
    """

    space = "nas_rnn"
    base: int
    nodes: tuple[TreeNode, ...]
    cell_inject: TreeNode
    cell_output_node: int
    cell_inject_node: int

    def __post_init__(self):
        NASRNNArch.from_dict(self.to_dict(), source="<NASRNNArch>")

    @property
    def num_nodes(self) -> int:
        return 2 * self.base - 1

    @property
    def root(self) -> int:
        return 2 * self.base - 2

    def children(self) -> list[tuple[int, int] | None]:
        """The two children of every node (None for leaves)."""
        return tree_children(self.base)

    def to_dict(self) -> dict:
        return {
            "space": self.space,
            "base": self.base,
            "nodes": [n.to_dict() for n in self.nodes],
            "cell_inject": self.cell_inject.to_dict(),
            "cell_output_node": self.cell_output_node,
            "cell_inject_node": self.cell_inject_node,
        }

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> NASRNNArch:
        r = ArchReader(data, source=source)
        r.check_keys(("space", "base", "nodes", "cell_inject", "cell_output_node", "cell_inject_node"))
        base = r.int("base", min=2, max=MAX_BASE)
        if not _is_power_of_two(base):
            raise r.bad("base", base, "a power of two (the number of leaves of a binary tree)")
        node_readers = r.list("nodes")
        if len(node_readers) != 2 * base - 1:
            raise r.error("nodes", f"a base-{base} tree has {2 * base - 1} nodes, got {len(node_readers)}")
        nodes = tuple(_read_node(nr) for nr in node_readers)
        inject = _read_node(r.object("cell_inject"))
        last = 2 * base - 2
        arch = object.__new__(cls)
        object.__setattr__(arch, "base", base)
        object.__setattr__(arch, "nodes", nodes)
        object.__setattr__(arch, "cell_inject", inject)
        object.__setattr__(arch, "cell_output_node", r.int("cell_output_node", min=0, max=last))
        object.__setattr__(arch, "cell_inject_node", r.int("cell_inject_node", min=0, max=last))
        return arch


def nascell_arch() -> NASRNNArch:
    """The published NAS cell (base 8), as in ``tf.contrib.rnn.NASCell`` / ``tfa.rnn.NASCell``.

    Leaves 0-7 are the eight column blocks of the fused kernels (block ``k`` =
    columns ``k*units .. (k+1)*units - 1``); nodes 8-11 combine pairs of
    leaves, 12 and 13 pairs of those, 14 is the root. ``c_{t-1}`` is added to
    the output of node 8 under a tanh, and ``c_t`` is the (identity-activated)
    node 12.
    """
    n = TreeNode
    nodes = (
        n("add", "sigmoid"), n("add", "relu"), n("add", "sigmoid"), n("elem_mult", "relu"),
        n("add", "tanh"), n("add", "sigmoid"), n("add", "tanh"), n("add", "sigmoid"),
        n("elem_mult", "tanh"), n("add", "tanh"), n("elem_mult", "tanh"), n("add", "sigmoid"),
        n("elem_mult", "identity"), n("add", "tanh"),
        n("elem_mult", "tanh"),
    )  # fmt: skip
    return NASRNNArch(
        base=8, nodes=nodes, cell_inject=n("add", "tanh"), cell_output_node=12, cell_inject_node=8
    )


register_named_arch("nascell", nascell_arch)


def _names(name: str, values: tuple, known: tuple) -> tuple:
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    for v in values:
        if v not in known:
            raise ValueError(f"{name}: unknown value {v!r}; known: {', '.join(known)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat values, got {list(values)}")
    return values


@register_space
@dataclasses.dataclass(frozen=True)
class NASRNNSpace(SearchSpace):
    """The NAS recurrent-cell (tree) space.

    Decisions, in controller order: for each node ``0 .. 2N-2`` its
    combination then its activation; the cell inject's combination and
    activation; then ``cell_output_node`` and ``cell_inject_node``, each one of
    the ``2N - 1`` nodes. Every token vector is a distinct arch, so the size
    of the space is the product of the number of choices of every decision::

        size = (C * A) ** (2N - 1)      # the tree nodes
             * (C * A)                  # the cell inject
             * (2N - 1) ** 2            # the two cell indices

    with C = 2 combinations and A = 4 activations. For N = 8 this is
    ``8**15 * 8 * 15**2 = 2**48 * 225 = 6.33e16`` -- the "about 6 x 10^16" of
    the paper. (The paper does not spell out its count; forbidding the two
    indices to be equal would give ``2**48 * 15 * 14 = 5.91e16``, also "about
    6 x 10^16". Here they may be equal: ``c_t`` is then the node's value
    before its activation and before the injection.)

    Args:
        base: number of leaves N (a power of two; 8 in the paper).
        combinations: the combination choices.
        activations: the activation choices.

    Example:

    >>> f"{NASRNNSpace(base=8).size():.3g}"
    '6.33e+16'
    >>> NASRNNSpace(base=2).decisions.num_tokens  # 3 nodes x 2 + 2 + 2
    10
    """

    name = "nas_rnn"
    base: int = 8
    combinations: tuple = COMBINATIONS
    activations: tuple = ACTIVATIONS

    def __post_init__(self):
        if not _is_power_of_two(self.base):
            raise ValueError(f"base must be a power of two >= 2, got {self.base!r}")
        if self.base > MAX_BASE:
            raise ValueError(f"base: {self.base} is larger than {MAX_BASE}, the most nas_tf builds")
        object.__setattr__(self, "combinations", _names("combinations", self.combinations, COMBINATIONS))
        object.__setattr__(self, "activations", _names("activations", self.activations, ACTIVATIONS))

    @property
    def num_nodes(self) -> int:
        return 2 * self.base - 1

    def size(self) -> int:
        """Number of architectures (distinct token vectors) of the space."""
        return self.decisions.size()

    def size_formula(self) -> int:
        """The same count from the closed formula of the class docstring."""
        per_node = len(self.combinations) * len(self.activations)
        return per_node ** self.num_nodes * per_node * self.num_nodes**2

    def build_decisions(self) -> DecisionList:
        out = []
        for k in range(self.num_nodes):
            out.append(Categorical(f"nodes[{k}].combination", "combination", self.combinations))
            out.append(Categorical(f"nodes[{k}].activation", "activation", self.activations))
        out.append(Categorical("cell_inject.combination", "combination", self.combinations))
        out.append(Categorical("cell_inject.activation", "activation", self.activations))
        node_ids = tuple(range(self.num_nodes))
        out.append(Categorical("cell_output_node", "cell_node", node_ids))
        out.append(Categorical("cell_inject_node", "cell_node", node_ids))
        return DecisionList(out)

    def from_values(self, values: dict[str, Any]) -> NASRNNArch:
        nodes = tuple(
            TreeNode(values[f"nodes[{k}].combination"], values[f"nodes[{k}].activation"])
            for k in range(self.num_nodes)
        )
        return NASRNNArch(
            base=self.base,
            nodes=nodes,
            cell_inject=TreeNode(values["cell_inject.combination"], values["cell_inject.activation"]),
            cell_output_node=values["cell_output_node"],
            cell_inject_node=values["cell_inject_node"],
        )

    def to_values(self, arch: Arch) -> dict[str, Any]:
        if not isinstance(arch, NASRNNArch):
            raise ValueError(f"expected a nas_rnn arch, got space {arch.space!r}")
        if arch.base != self.base:
            raise ValueError(f"base: the arch has base {arch.base}, this space has base {self.base}")
        values: dict[str, Any] = {}
        for k, node in enumerate(arch.nodes):
            values[f"nodes[{k}].combination"] = node.combination
            values[f"nodes[{k}].activation"] = node.activation
        values["cell_inject.combination"] = arch.cell_inject.combination
        values["cell_inject.activation"] = arch.cell_inject.activation
        values["cell_output_node"] = arch.cell_output_node
        values["cell_inject_node"] = arch.cell_inject_node
        # Categorical.encode names the decision and the value outside the space.
        self.decisions.encode(values)
        return values


__all__ = ["ACTIVATIONS", "COMBINATIONS", "NASRNNArch", "NASRNNSpace", "TreeNode", "nascell_arch", "tree_children"]
