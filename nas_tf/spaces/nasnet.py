"""The NASNet cell search space (Zoph, Vasudevan, Shlens & Le 2018, section 3).

One controller designs two cells: a *normal* cell, which keeps the height and
width of its input, and a *reduction* cell, which halves them (the ops that
read the cell's own inputs use stride 2). A cell has ``num_blocks`` blocks
(B = 5 in the paper); each block is five decisions:

1. its first input, 2. its second input -- each one of the cell's two inputs
   or the output of an earlier block of the cell;
3. the op applied to the first input, 4. the op applied to the second input;
5. how the two results are combined: element-wise ``add`` or ``concat``
   along the channels.

The controller emits the 5B decisions of the normal cell, then the 5B of the
reduction cell (2 x 5B in all).

**Hidden states** are numbered as in the authors' released code (TF-slim
``nasnet_utils.py``): state 0 is ``h_i``, the output of the previous cell;
state 1 is ``h_{i-1}``, the output of the cell before that; state ``2 + b`` is
the output of block ``b``.

**Cell output.** The states listed in the cell's ``concat`` are concatenated
along the channels. Sampled cells concatenate the states that no block of
the cell reads (the paper's rule). An arch may list them explicitly: the
released NASNet-A does not follow the rule -- its normal cell concatenates
``h_{i-1}`` although blocks read it, and its reduction cell concatenates
state 3 although block 3 reads it -- so the shipped ``"nasnet_a"`` arch lists
its ``concat`` states ([1, 2, 3, 4, 5, 6] and [3, 4, 5, 6]).

Arch JSON (``"space": "nasnet"``)::

    {
      "space": "nasnet",
      "normal": {
        "blocks": [
          {"inputs": [0, 1], "ops": ["sep_conv_5x5", "sep_conv_3x3"], "combine": "add"},
          ...
        ],
        "concat": [1, 2, 3, 4, 5, 6]
      },
      "reduction": {"blocks": [...], "concat": [3, 4, 5, 6]}
    }

``concat`` may be left out (then: the states no block reads).

**Ops.** The 13 ops of the paper (:data:`NASNET_OPS`) and the 8-op subset
that later work on this space kept (:data:`REDUCED_OPS`, ``op_set="reduced"``).
How each op is built is documented in :mod:`nas_tf.layers.cell_ops`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nas_tf.spaces.arch import Arch, ArchReader, register_arch, register_named_arch
from nas_tf.spaces.base import SearchSpace, register_space
from nas_tf.spaces.decisions import Categorical, DecisionList

#: The 13 operations of the NASNet paper, in the paper's order.
NASNET_OPS: tuple[str, ...] = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)

#: The 8 ops kept by later work on the NASNet space (PNAS, AmoebaNet): the
#: paper's list without 1x3-3x1 conv, 5x5 and 7x7 max pooling, 1x1 and 3x3 conv.
REDUCED_OPS: tuple[str, ...] = (
    "identity",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)

#: Named op sets (the ``--op_set`` flag).
OP_SETS: dict[str, tuple[str, ...]] = {"full": NASNET_OPS, "reduced": REDUCED_OPS}

#: How the two results of a block are combined.
COMBINERS: tuple[str, ...] = ("add", "concat")
# The most blocks a cell may have (the paper's cells have 5).
MAX_BLOCKS = 32

CELL_TYPES: tuple[str, ...] = ("normal", "reduction")


def _describe_list(values) -> str:
    return ", ".join(f'"{v}"' for v in values)


@dataclasses.dataclass(frozen=True)
class NASNetBlock:
    """One block of a cell: two (input, op) pairs and a combiner.

    Args:
        inputs: the two hidden states read (0 = ``h_i``, 1 = ``h_{i-1}``,
            ``2 + b`` = block ``b``).
        ops: the op applied to each input (names of :data:`NASNET_OPS`).
        combine: ``"add"`` or ``"concat"``.
    """

    inputs: tuple[int, int]
    ops: tuple[str, str]
    combine: str = "add"

    def to_dict(self) -> dict:
        return {"inputs": list(self.inputs), "ops": list(self.ops), "combine": self.combine}


def unused_states(blocks: tuple[NASNetBlock, ...]) -> tuple[int, ...]:
    """The hidden states that no block reads (the paper's cell-output rule)."""
    used = {i for block in blocks for i in block.inputs}
    return tuple(s for s in range(len(blocks) + 2) if s not in used)


@dataclasses.dataclass(frozen=True)
class NASNetCell:
    """A normal or reduction cell.

    Args:
        blocks: the blocks, in order (block ``b`` writes state ``2 + b``).
        concat: the states concatenated into the cell output (default: the
            states no block reads).
    """

    blocks: tuple[NASNetBlock, ...]
    concat: tuple[int, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if self.concat is None:
            object.__setattr__(self, "concat", unused_states(self.blocks))
        else:
            object.__setattr__(self, "concat", tuple(sorted(self.concat)))

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_states(self) -> int:
        return len(self.blocks) + 2

    def ops(self) -> set[str]:
        return {op for block in self.blocks for op in block.ops}

    def to_dict(self) -> dict:
        return {"blocks": [b.to_dict() for b in self.blocks], "concat": list(self.concat)}

    @classmethod
    def read(cls, reader: ArchReader) -> NASNetCell:
        reader.check_keys(("blocks", "concat"))
        block_readers = reader.list("blocks")
        if not block_readers:
            raise reader.error("blocks", "must contain at least one block")
        if len(block_readers) > MAX_BLOCKS:
            raise reader.error("blocks", f"{len(block_readers)} blocks; nas_tf builds cells of up to {MAX_BLOCKS}")
        blocks = []
        for b, br in enumerate(block_readers):
            br.check_keys(("inputs", "ops", "combine"))
            inputs = br.int_list("inputs", min=0)
            if len(inputs) != 2:
                raise br.bad("inputs", inputs, "two hidden-state indices")
            for k, s in enumerate(inputs):
                if s > b + 1:
                    raise ArchReader(inputs, br._field("inputs"), reader.source).bad(
                        k, s, f"a hidden state in [0, {b + 1}] (0 = h_i, 1 = h_i-1, 2.. = earlier blocks)"
                    )
            ops = br.get("ops")
            if not isinstance(ops, list) or len(ops) != 2:
                raise br.bad("ops", ops, "a list of two op names")
            ops_reader = ArchReader(ops, br._field("ops"), reader.source)
            for k, op in enumerate(ops):
                if op not in NASNET_OPS:
                    raise ops_reader.bad(k, op, "one of " + _describe_list(NASNET_OPS))
            combine = br.choice("combine", COMBINERS, default="add")
            blocks.append(NASNetBlock(inputs=tuple(inputs), ops=tuple(ops), combine=combine))
        num_states = len(blocks) + 2
        concat = reader.get("concat", None)
        if concat is not None:
            concat = reader.int_list("concat", min=0, max=num_states - 1)
            if not concat:
                raise reader.bad("concat", concat, "at least one hidden state")
            if len(set(concat)) != len(concat):
                raise reader.bad("concat", concat, "distinct hidden states")
        return cls(blocks=tuple(blocks), concat=None if concat is None else tuple(concat))


@register_arch
@dataclasses.dataclass(frozen=True)
class NASNetArch(Arch):
    """A NASNet arch: a normal and a reduction cell.

    Args:
        normal: the normal cell (keeps the spatial size).
        reduction: the reduction cell (halves it).

    Example:

    >>> import nas_tf
    >>> arch = nas_tf.load_arch("nasnet_a")
    >>> arch.normal.concat, arch.reduction.concat
    ((1, 2, 3, 4, 5, 6), (3, 4, 5, 6))
    """

    space = "nasnet"
    normal: NASNetCell
    reduction: NASNetCell

    def __post_init__(self):
        # Validate programmatic construction the same way as JSON loading.
        NASNetArch.from_dict(self.to_dict(), source="<NASNetArch>")

    def cell(self, kind: str) -> NASNetCell:
        if kind not in CELL_TYPES:
            raise ValueError(f"cell kind must be one of {CELL_TYPES}, got {kind!r}")
        return getattr(self, kind)

    def to_dict(self) -> dict:
        return {"space": self.space, "normal": self.normal.to_dict(), "reduction": self.reduction.to_dict()}

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> NASNetArch:
        r = ArchReader(data, source=source)
        r.check_keys(("space",) + CELL_TYPES)
        normal = NASNetCell.read(r.object("normal"))
        reduction = NASNetCell.read(r.object("reduction"))
        arch = object.__new__(cls)
        object.__setattr__(arch, "normal", normal)
        object.__setattr__(arch, "reduction", reduction)
        return arch


@register_space
@dataclasses.dataclass(frozen=True)
class NASNetSpace(SearchSpace):
    """The NASNet cell space: normal and reduction cells of ``num_blocks`` blocks.

    Args:
        num_blocks: blocks per cell (B; 5 in the paper).
        ops: the op choices (default: the paper's 13, :data:`NASNET_OPS`;
            :data:`REDUCED_OPS` is the 8-op subset).
        combiners: the combiner choices (``("add", "concat")`` in the paper;
            with one value the combiner is not a decision).

    Example:

    >>> space = NASNetSpace()
    >>> len(space.decisions), space.decisions.num_tokens  # 2 cells x 5 blocks x 5 decisions
    (50, 50)
    """

    name = "nasnet"
    num_blocks: int = 5
    ops: tuple = NASNET_OPS
    combiners: tuple = COMBINERS

    def __post_init__(self):
        if isinstance(self.num_blocks, bool) or not isinstance(self.num_blocks, int) or self.num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive integer, got {self.num_blocks!r}")
        if self.num_blocks > MAX_BLOCKS:
            raise ValueError(f"num_blocks: {self.num_blocks} is larger than {MAX_BLOCKS}, the most nas_tf builds")
        ops = tuple(self.ops)
        if not ops:
            raise ValueError("ops must not be empty")
        unknown = [op for op in ops if op not in NASNET_OPS]
        if unknown:
            raise ValueError(f"ops: unknown op(s) {unknown}; known: {list(NASNET_OPS)}")
        if len(set(ops)) != len(ops):
            raise ValueError(f"ops must not repeat values, got {list(ops)}")
        combiners = tuple(self.combiners)
        if not combiners or any(c not in COMBINERS for c in combiners) or len(set(combiners)) != len(combiners):
            raise ValueError(f"combiners must be distinct values of {list(COMBINERS)}, got {list(combiners)}")
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "combiners", combiners)

    @classmethod
    def with_op_set(cls, op_set: str, **settings: Any) -> NASNetSpace:
        """The space with a named op set (``"full"``: 13 ops, ``"reduced"``: 8)."""
        if op_set not in OP_SETS:
            raise ValueError(f"unknown op set {op_set!r}; known: {', '.join(OP_SETS)}")
        return cls(ops=OP_SETS[op_set], **settings)

    def build_decisions(self) -> DecisionList:
        out = []
        for kind in CELL_TYPES:
            for b in range(self.num_blocks):
                p = f"{kind}.blocks[{b}]."
                # Block b chooses among the 2 cell inputs and the b earlier blocks;
                # one softmax head per block position, shared by both cells.
                states = tuple(range(b + 2))
                out.append(Categorical(p + "inputs[0]", f"block{b}_input", states))
                out.append(Categorical(p + "inputs[1]", f"block{b}_input", states))
                out.append(Categorical(p + "ops[0]", "op", self.ops))
                out.append(Categorical(p + "ops[1]", "op", self.ops))
                if len(self.combiners) > 1:
                    out.append(Categorical(p + "combine", "combine", self.combiners))
        return DecisionList(out)

    def from_values(self, values: dict[str, Any]) -> NASNetArch:
        cells = {}
        for kind in CELL_TYPES:
            blocks = []
            for b in range(self.num_blocks):
                p = f"{kind}.blocks[{b}]."
                blocks.append(
                    NASNetBlock(
                        inputs=(values[p + "inputs[0]"], values[p + "inputs[1]"]),
                        ops=(values[p + "ops[0]"], values[p + "ops[1]"]),
                        combine=values.get(p + "combine", self.combiners[0]),
                    )
                )
            cells[kind] = NASNetCell(blocks=tuple(blocks))
        return NASNetArch(**cells)

    def to_values(self, arch: Arch) -> dict[str, Any]:
        if not isinstance(arch, NASNetArch):
            raise ValueError(f"expected a nasnet arch, got space {arch.space!r}")
        values: dict[str, Any] = {}
        for kind in CELL_TYPES:
            cell = arch.cell(kind)
            if cell.num_blocks != self.num_blocks:
                raise ValueError(f"{kind}.blocks: the arch has {cell.num_blocks} blocks, this space has {self.num_blocks}")
            if cell.concat != unused_states(cell.blocks):
                raise ValueError(
                    f"{kind}.concat: the arch concatenates states {list(cell.concat)}; cells of this space "
                    f"concatenate the states no block reads, {list(unused_states(cell.blocks))}"
                )
            for b, block in enumerate(cell.blocks):
                p = f"{kind}.blocks[{b}]."
                for k in range(2):
                    if block.ops[k] not in self.ops:
                        raise ValueError(f"{p}ops[{k}]: {block.ops[k]!r} is not an op of this space {list(self.ops)}")
                    values[p + f"inputs[{k}]"] = block.inputs[k]
                    values[p + f"ops[{k}]"] = block.ops[k]
                if len(self.combiners) > 1:
                    values[p + "combine"] = block.combine
                elif block.combine != self.combiners[0]:
                    raise ValueError(f"{p}combine: this space only combines with {self.combiners[0]!r}")
        return values


# ----------------------------------------------------------------- NASNet-A


def _cell_from_slim(operations, hiddenstate_indices, used_hiddenstates) -> NASNetCell:
    """A cell from the released code's description (slim ``nasnet_utils.py``)."""
    names = {
        "separable_3x3_2": "sep_conv_3x3",
        "separable_5x5_2": "sep_conv_5x5",
        "separable_7x7_2": "sep_conv_7x7",
        "avg_pool_3x3": "avg_pool_3x3",
        "max_pool_3x3": "max_pool_3x3",
        "none": "identity",
    }
    blocks = tuple(
        NASNetBlock(
            inputs=(hiddenstate_indices[2 * b], hiddenstate_indices[2 * b + 1]),
            ops=(names[operations[2 * b]], names[operations[2 * b + 1]]),
            combine="add",
        )
        for b in range(len(operations) // 2)
    )
    concat = tuple(i for i, used in enumerate(used_hiddenstates) if not used)
    return NASNetCell(blocks=blocks, concat=concat)


def nasnet_a() -> NASNetArch:
    """NASNet-A, the cells of the paper's best CIFAR-10 search (exact genotypes of the released code).

    Normal cell (``h_i`` = state 0, ``h_{i-1}`` = state 1)::

        s2 = sep5x5(h_i) + sep3x3(h_i-1)      s3 = sep5x5(h_i-1) + sep3x3(h_i-1)
        s4 = avg3x3(h_i) + h_i-1              s5 = avg3x3(h_i-1) + avg3x3(h_i-1)
        s6 = sep3x3(h_i) + h_i                output = concat(h_i-1, s2, s3, s4, s5, s6)

    Reduction cell (ops on ``h_i`` and ``h_{i-1}`` use stride 2)::

        s2 = sep5x5(h_i) + sep7x7(h_i-1)      s3 = max3x3(h_i) + sep7x7(h_i-1)
        s4 = avg3x3(h_i) + sep5x5(h_i-1)      s5 = s3 + avg3x3(s2)
        s6 = sep3x3(s2) + max3x3(h_i)         output = concat(s3, s4, s5, s6)
    """
    normal = _cell_from_slim(
        ["separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2", "avg_pool_3x3",
         "none", "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2", "none"],
        [0, 1, 1, 1, 0, 1, 1, 1, 0, 0],
        [1, 0, 0, 0, 0, 0, 0],
    )
    reduction = _cell_from_slim(
        ["separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2", "avg_pool_3x3",
         "separable_5x5_2", "none", "avg_pool_3x3", "separable_3x3_2", "max_pool_3x3"],
        [0, 1, 0, 1, 0, 1, 3, 2, 2, 0],
        [1, 1, 1, 0, 0, 0, 0],
    )
    return NASNetArch(normal=normal, reduction=reduction)


register_named_arch("nasnet_a", nasnet_a)
