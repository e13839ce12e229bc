"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020).

A cell is a densely connected DAG of 4 nodes: node 0 is the cell input and
node ``j`` (1, 2, 3) is the sum over ``i < j`` of ``op(i -> j)(node i)``;
node 3 is the cell output. Each of the 6 edges carries one of five
operations: ``none`` (zero), ``skip_connect``, ``nor_conv_1x1``,
``nor_conv_3x3`` (ReLU-conv-BN) and ``avg_pool_3x3``: 5^6 = 15,625 cells,
every one trained and recorded by the benchmark (:mod:`nas_tf.benchmarks`).

A cell is written as the benchmark writes it, one ``|op~i|`` per edge into
node ``j``, nodes separated by ``+``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|

so cells from papers paste directly into an arch file::

    {"space": "nb201", "cell": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"}

The controller sees six categorical decisions (one softmax head, type
``"op"``) in the order of the string: ``1<-0``, ``2<-0``, ``2<-1``, ``3<-0``,
``3<-1``, ``3<-2``. Token ``k`` of a decision means ``NB201_OPS[k]``, the
benchmark's own op order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nas_tf.spaces.arch import Arch, ArchReader, register_arch, register_named_arch
from nas_tf.spaces.base import SearchSpace, register_space
from nas_tf.spaces.decisions import Categorical, DecisionList

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
# (target node, input node) of every edge, in the order of the cell string.
EDGES = tuple((j, i) for j in range(1, NUM_NODES) for i in range(j))


def edge_name(j: int, i: int) -> str:
    """The name of the edge ``i -> j`` (also its decision name), e.g. ``"3<-1"``."""
    return f"{j}<-{i}"


def parse_cell(cell: Any, reader: ArchReader | None = None, key: str = "cell") -> tuple[str, ...]:
    """Parses a NAS-Bench-201 cell string into its six ops (in :data:`EDGES` order).

    Args:
        cell: the string, e.g. ``"|nor_conv_3x3~0|+|none~0|...|"``.
        reader: where the string came from, for error messages.
        key: the field holding it.

    Returns:
        The op of every edge, ``1<-0`` first.

    Raises:
        ArchError: the message names the node, the edge and the bad text.

    Example:

    >>> parse_cell("|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|")[-1]
    'nor_conv_1x1'
    """
    reader = reader or ArchReader({key: cell})
    if not isinstance(cell, str):
        raise reader.bad(key, cell, "a NAS-Bench-201 cell string such as '|nor_conv_3x3~0|+|...|'")
    nodes = cell.split("+")
    if len(nodes) != NUM_NODES - 1:
        raise reader.error(
            key, f"expected {NUM_NODES - 1} nodes separated by '+', got {len(nodes)} in {cell!r}"
        )
    ops = []
    for j, node in enumerate(nodes, start=1):
        if len(node) < 2 or not node.startswith("|") or not node.endswith("|"):
            raise reader.error(key, f"node {j}: expected '|op~i|...|', got {node!r}")
        edges = node[1:-1].split("|")
        if len(edges) != j:
            raise reader.error(
                key, f"node {j}: expected {j} edges (from nodes 0..{j - 1}), got {len(edges)} in {node!r}"
            )
        for i, edge in enumerate(edges):
            op, sep, source = edge.partition("~")
            if not sep or source != str(i):
                raise reader.error(key, f"node {j}, edge {edge_name(j, i)}: expected 'op~{i}', got {edge!r}")
            if op not in NB201_OPS:
                raise reader.error(
                    key, f"node {j}, edge {edge_name(j, i)}: unknown op {op!r} (ops: {', '.join(NB201_OPS)})"
                )
            ops.append(op)
    return tuple(ops)


def format_cell(ops: tuple[str, ...]) -> str:
    """The cell string of six ops in :data:`EDGES` order (inverse of :func:`parse_cell`)."""
    groups, k = [], 0
    for j in range(1, NUM_NODES):
        groups.append("|" + "|".join(f"{ops[k + i]}~{i}" for i in range(j)) + "|")
        k += j
    return "+".join(groups)


@register_arch
@dataclasses.dataclass(frozen=True)
class NB201Arch(Arch):
    """A NAS-Bench-201 cell.

    Args:
        ops: the op of every edge, in :data:`EDGES` order (``1<-0``,
            ``2<-0``, ``2<-1``, ``3<-0``, ``3<-1``, ``3<-2``).

    Example:

    >>> arch = NB201Arch.from_string("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    >>> arch.op(3, 0)
    'skip_connect'
    >>> arch.to_dict()["space"]
    'nb201'
    """

    space = "nb201"
    ops: tuple[str, ...]

    def __post_init__(self):
        ops = tuple(self.ops)
        if len(ops) != len(EDGES):
            raise ArchReader({}, source="<NB201Arch>").error("ops", f"expected {len(EDGES)} ops, got {len(ops)}")
        object.__setattr__(self, "ops", parse_cell(format_cell(ops), ArchReader({}, source="<NB201Arch>"), "ops"))

    @classmethod
    def from_string(cls, cell: str) -> NB201Arch:
        """The arch of a benchmark cell string (validated)."""
        return cls(parse_cell(cell))

    @property
    def cell(self) -> str:
        """The benchmark's cell string."""
        return format_cell(self.ops)

    def op(self, j: int, i: int) -> str:
        """The op of edge ``i -> j``."""
        return self.ops[EDGES.index((j, i))]

    def to_dict(self) -> dict:
        return {"space": self.space, "cell": self.cell}

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> NB201Arch:
        r = ArchReader(data, source=source)
        r.check_keys(("space", "cell"))
        return cls(parse_cell(r.get("cell"), r, "cell"))


@register_space
@dataclasses.dataclass(frozen=True)
class NB201Space(SearchSpace):
    """The NAS-Bench-201 space: six categorical decisions, one per edge.

    Args:
        ops: the op choices (the benchmark's five; a subset gives a smaller
            space whose cells are still in the benchmark's table).

    Example:

    >>> space = NB201Space()
    >>> space.decisions.size()
    15625
    >>> space.from_tokens([3, 3, 3, 1, 3, 3]).cell
    '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'
    """

    name = "nb201"
    ops: tuple = NB201_OPS

    def __post_init__(self):
        ops = tuple(self.ops)
        bad = [o for o in ops if o not in NB201_OPS]
        if not ops or bad or len(set(ops)) != len(ops):
            raise ValueError(f"ops must be distinct names among {list(NB201_OPS)}, got {list(ops)}")
        object.__setattr__(self, "ops", ops)

    def build_decisions(self) -> DecisionList:
        return DecisionList([Categorical(edge_name(j, i), "op", self.ops) for j, i in EDGES])

    def from_values(self, values: dict[str, Any]) -> NB201Arch:
        return NB201Arch(tuple(values[edge_name(j, i)] for j, i in EDGES))

    def to_values(self, arch: Arch) -> dict[str, Any]:
        if not isinstance(arch, NB201Arch):
            raise ValueError(f"expected an nb201 arch, got space {arch.space!r}")
        return {edge_name(j, i): op for (j, i), op in zip(EDGES, arch.ops)}


# The ResNet-like cell of the NAS-Bench-201 paper: node 3 = node 0 + conv3x3(conv3x3(node 0)).
NB201_RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"

register_named_arch("nb201_resnet", lambda: NB201Arch.from_string(NB201_RESNET))
