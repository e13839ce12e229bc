"""The ENAS micro search space: normal and reduction cells (Pham et al. 2018, 2.4).

A cell has two inputs and ``num_nodes`` computed nodes (B = 5 in the paper's
code). Each node picks two earlier nodes of its cell (repeats allowed) and an
operation for each among ``sep_conv_3x3``, ``sep_conv_5x5``, ``avg_pool_3x3``,
``max_pool_3x3``, ``identity``; the two results are added. Nodes that no
other node reads are concatenated into the cell output.

This is the NASNet cell space with ENAS's op list and the add combiner, so an
ENAS micro architecture **is** a NASNet arch: ``from_tokens`` returns a
:class:`~nas_tf.spaces.nasnet.NASNetArch` (JSON ``"space": "nasnet"``), which
the NASNet builder trains and exports. Only the decisions differ: ENAS's
controller picks a node's inputs with attention over the anchors of the
nodes of the current cell (:class:`~nas_tf.spaces.decisions.Select`), in the
authors' order -- for every node input 1, input 2, op 1, op 2, then an anchor
step; the two cell inputs are anchor steps whose stored values are zeros.

States are numbered as in the NASNet space: 0 = ``h_i`` (previous cell), 1 =
``h_{i-1}`` (the cell before), ``2 + b`` = node ``b``. The authors' arc
strings number the two inputs the other way round (0 = two cells back);
:func:`micro_arch_from_arc` converts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nas_tf.spaces.arch import Arch, register_named_arch
from nas_tf.spaces.base import SearchSpace, register_space
from nas_tf.spaces.decisions import Anchor, Categorical, DecisionList, Select
from nas_tf.spaces.nasnet import CELL_TYPES, MAX_BLOCKS, NASNetArch, NASNetBlock, NASNetCell, unused_states

MICRO_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")


@register_space
@dataclasses.dataclass(frozen=True)
class EnasMicroSpace(SearchSpace):
    """ENAS micro cells (written as NASNet archs).

    Args:
        num_nodes: computed nodes per cell (B).
        ops: operation choices (ENAS's five by default).

    Example:

    >>> space = EnasMicroSpace()
    >>> space.decisions.num_tokens  # 2 cells x 5 nodes x (2 inputs + 2 ops)
    40
    """

    name = "enas_micro"
    num_nodes: int = 5
    ops: tuple = MICRO_OPS

    def __post_init__(self):
        if isinstance(self.num_nodes, bool) or not isinstance(self.num_nodes, int) or self.num_nodes < 1:
            raise ValueError(f"num_nodes must be a positive integer, got {self.num_nodes!r}")
        if self.num_nodes > MAX_BLOCKS:
            raise ValueError(f"num_nodes: {self.num_nodes} is larger than {MAX_BLOCKS}, the most nas_tf builds")
        ops = tuple(self.ops)
        bad = [o for o in ops if o not in MICRO_OPS]
        if not ops or bad or len(set(ops)) != len(ops):
            raise ValueError(f"ops must be distinct names among {list(MICRO_OPS)}, got {list(ops)}")
        object.__setattr__(self, "ops", ops)

    def build_decisions(self) -> DecisionList:
        out = []
        for c, kind in enumerate(CELL_TYPES):
            base = c * (self.num_nodes + 2)
            out.append(Anchor(f"{kind}.input0", anchor=base, zero_value=True))
            out.append(Anchor(f"{kind}.input1", anchor=base + 1, zero_value=True))
            for b in range(self.num_nodes):
                p = f"{kind}.blocks[{b}]."
                out.append(Select(p + "inputs[0]", num_candidates=b + 2, first_candidate=base))
                out.append(Select(p + "inputs[1]", num_candidates=b + 2, first_candidate=base))
                out.append(Categorical(p + "ops[0]", "op", self.ops))
                out.append(Categorical(p + "ops[1]", "op", self.ops))
                out.append(Anchor(p + "node", anchor=base + 2 + b))
        return DecisionList(out)

    def token_layout(self) -> dict[str, list[list[int]]]:
        """Token offsets ``[cell][node] -> [input 0, input 1, op 0, op 1]``."""
        d = self.decisions
        offsets = dict(zip((x.name for x in d.decisions), d.offsets))
        return {
            kind: [
                [offsets[f"{kind}.blocks[{b}].{f}"] for f in ("inputs[0]", "inputs[1]", "ops[0]", "ops[1]")]
                for b in range(self.num_nodes)
            ]
            for kind in CELL_TYPES
        }

    def from_values(self, values: dict[str, Any]) -> NASNetArch:
        cells = {}
        for kind in CELL_TYPES:
            blocks = tuple(
                NASNetBlock(
                    inputs=(values[f"{kind}.blocks[{b}].inputs[0]"], values[f"{kind}.blocks[{b}].inputs[1]"]),
                    ops=(values[f"{kind}.blocks[{b}].ops[0]"], values[f"{kind}.blocks[{b}].ops[1]"]),
                    combine="add",
                )
                for b in range(self.num_nodes)
            )
            cells[kind] = NASNetCell(blocks=blocks)
        return NASNetArch(**cells)

    def to_values(self, arch: Arch) -> dict[str, Any]:
        if not isinstance(arch, NASNetArch):
            raise ValueError(f"expected a nasnet arch (ENAS micro cells are NASNet cells), got {arch.space!r}")
        values: dict[str, Any] = {}
        for kind in CELL_TYPES:
            cell = arch.cell(kind)
            if cell.num_blocks != self.num_nodes:
                raise ValueError(f"{kind}.blocks: the arch has {cell.num_blocks} nodes, this space has {self.num_nodes}")
            if cell.concat != unused_states(cell.blocks):
                raise ValueError(f"{kind}.concat: ENAS cells concatenate the unused nodes {list(unused_states(cell.blocks))}")
            for b, block in enumerate(cell.blocks):
                p = f"{kind}.blocks[{b}]."
                if block.combine != "add":
                    raise ValueError(f"{p}combine: ENAS nodes add their two inputs, got {block.combine!r}")
                for k in range(2):
                    if block.ops[k] not in self.ops:
                        raise ValueError(f"{p}ops[{k}]: {block.ops[k]!r} is not an op of this space {list(self.ops)}")
                    values[p + f"inputs[{k}]"] = block.inputs[k]
                    values[p + f"ops[{k}]"] = block.ops[k]
        return values


def _cell_from_arc(arc: list[int], ops: tuple) -> NASNetCell:
    if len(arc) % 4:
        raise ValueError(f"a cell arc has 4 numbers per node (input, op, input, op), got {len(arc)} numbers")
    blocks = []
    swap = {0: 1, 1: 0}  # the authors' node 0 is h_{i-1}, node 1 is h_i
    for b in range(len(arc) // 4):
        i1, o1, i2, o2 = arc[4 * b : 4 * b + 4]
        for i in (i1, i2):
            if not 0 <= i <= b + 1:
                raise ValueError(f"arc node {b + 2}: input {i} is not an earlier node")
        for o in (o1, o2):
            if not 0 <= o < len(ops):
                raise ValueError(f"arc node {b + 2}: op {o} out of range for {len(ops)} ops")
        blocks.append(NASNetBlock(inputs=(swap.get(i1, i1), swap.get(i2, i2)), ops=(ops[o1], ops[o2]), combine="add"))
    return NASNetCell(blocks=tuple(blocks))


def micro_arch_from_arc(normal: str | list[int], reduction: str | list[int], ops: tuple = MICRO_OPS) -> NASNetArch:
    """Decodes the authors' micro arc strings (4 numbers per node: input, op, input, op).

    Example:

    >>> arch = micro_arch_from_arc("0 2 0 0", "1 0 1 0")
    >>> arch.normal.blocks[0].inputs, arch.normal.blocks[0].ops
    ((1, 1), ('avg_pool_3x3', 'sep_conv_3x3'))
    """

    def ints(a):
        return [int(v) for v in (a.split() if isinstance(a, str) else a)]

    return NASNetArch(normal=_cell_from_arc(ints(normal), ops), reduction=_cell_from_arc(ints(reduction), ops))


# The cells of the ENAS paper (the authors' cifar10_micro_final.sh; PAPERS.md 3.9.1).
ENAS_MICRO_NORMAL_ARC = "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1"
ENAS_MICRO_REDUCTION_ARC = "1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"


def enas_micro_published() -> NASNetArch:
    """The ENAS micro cells of the paper, built from the published arc strings."""
    return micro_arch_from_arc(ENAS_MICRO_NORMAL_ARC, ENAS_MICRO_REDUCTION_ARC)


register_named_arch("enas_micro", enas_micro_published)
