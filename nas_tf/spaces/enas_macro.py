"""The ENAS macro search space (Pham et al. 2018, section 2.3).

A network of ``num_layers`` layers. Layer ``k`` reads the previous layer
(node ``k``), applies one operation chosen among ``ops`` (conv 3x3, sep conv
3x3, conv 5x5, sep conv 5x5, avg pool 3x3, max pool 3x3 by default), and adds
the outputs of any subset of the earlier nodes ``0 .. k-1`` (skip
connections). Node 0 is the stem, node ``i >= 1`` the output of layer
``i - 1`` -- the convention of the authors' code, so their arc strings read
directly. After the layers listed in ``reduce_after`` every node is reduced
(factorized reduction, stride 2).

Per layer the controller decides the op (one softmax head) and the skips (one
anchor-point step: ``k`` independent choices among the earlier anchors).

Arch JSON (``"space": "enas_macro"``)::

    {"space": "enas_macro",
     "layers": [{"op": "conv_3x3", "skips": []},
                {"op": "sep_conv_5x5", "skips": [0]}, ...],
     "reduce_after": [3, 7]}
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nas_tf.spaces.arch import Arch, ArchReader, register_arch, register_named_arch
from nas_tf.spaces.base import SearchSpace, register_space
from nas_tf.spaces.decisions import Categorical, DecisionList, Skip

MACRO_OPS = ("conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3")
# The most layers a network may have (the paper's final network has 24).
MAX_LAYERS = 256


def default_reductions(num_layers: int) -> tuple[int, ...]:
    """The authors' pooling positions: after layers L//3 - 1 and 2L//3 - 1."""
    return tuple(sorted({p for p in (num_layers // 3 - 1, 2 * num_layers // 3 - 1) if 0 <= p < num_layers - 1}))


@dataclasses.dataclass(frozen=True)
class MacroLayer:
    """One layer: its operation and the earlier nodes added to its output."""

    op: str
    skips: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"op": self.op, "skips": list(self.skips)}


@register_arch
@dataclasses.dataclass(frozen=True)
class EnasMacroArch(Arch):
    """A network of the ENAS macro space.

    Args:
        layers: the layers in order.
        reduce_after: layers after which every node is reduced (stride 2,
            channels doubled).

    Example:

    >>> arch = EnasMacroArch(layers=(MacroLayer("conv_3x3"), MacroLayer("max_pool_3x3", (0,))), reduce_after=())
    >>> arch.to_dict()["layers"][1]
    {'op': 'max_pool_3x3', 'skips': [0]}
    """

    space = "enas_macro"
    layers: tuple[MacroLayer, ...]
    reduce_after: tuple[int, ...] = ()

    def __post_init__(self):
        EnasMacroArch.from_dict(self.to_dict(), source="<EnasMacroArch>")

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def to_dict(self) -> dict:
        return {
            "space": self.space,
            "layers": [layer.to_dict() for layer in self.layers],
            "reduce_after": list(self.reduce_after),
        }

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> EnasMacroArch:
        r = ArchReader(data, source=source)
        r.check_keys(("space", "layers", "reduce_after"))
        readers = r.list("layers")
        if not readers:
            raise r.error("layers", "must contain at least one layer")
        if len(readers) > MAX_LAYERS:
            raise r.error("layers", f"{len(readers)} layers; nas_tf builds up to {MAX_LAYERS}")
        layers = []
        for k, lr in enumerate(readers):
            lr.check_keys(("op", "skips"))
            op = lr.choice("op", MACRO_OPS)
            skips = lr.int_list("skips", min=0, default=[])
            for i, j in enumerate(skips):
                if j >= k:
                    raise ArchReader(skips, lr._field("skips"), source).bad(
                        i, j, f"an earlier node in [0, {k - 1}] (node 0 is the stem)" if k else "no skip at layer 0"
                    )
            if len(set(skips)) != len(skips):
                raise lr.bad("skips", skips, "distinct node indices")
            layers.append(MacroLayer(op, tuple(sorted(skips))))
        reduce_after = r.int_list("reduce_after", min=0, max=len(layers) - 1, default=[])
        if len(set(reduce_after)) != len(reduce_after):
            raise r.bad("reduce_after", reduce_after, "distinct layer indices")
        arch = object.__new__(cls)
        object.__setattr__(arch, "layers", tuple(layers))
        object.__setattr__(arch, "reduce_after", tuple(sorted(reduce_after)))
        return arch


@register_space
@dataclasses.dataclass(frozen=True)
class EnasMacroSpace(SearchSpace):
    """The ENAS macro space.

    Args:
        num_layers: layers (12 in the paper's search, 24 in its final network).
        ops: the operation choices.
        reduce_after: reduction positions (default: after layers L//3 - 1 and
            2L//3 - 1, as in the authors' code).

    Example:

    >>> EnasMacroSpace(num_layers=12).decisions.num_tokens  # 12 ops + 66 skip bits
    78
    """

    name = "enas_macro"
    num_layers: int = 12
    ops: tuple = MACRO_OPS
    reduce_after: tuple | None = None

    def __post_init__(self):
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f"num_layers must be a positive integer, got {self.num_layers!r}")
        if self.num_layers > MAX_LAYERS:
            raise ValueError(f"num_layers: {self.num_layers} is larger than {MAX_LAYERS}, the most nas_tf builds")
        ops = tuple(self.ops)
        bad = [o for o in ops if o not in MACRO_OPS]
        if not ops or bad or len(set(ops)) != len(ops):
            raise ValueError(f"ops must be distinct names among {list(MACRO_OPS)}, got {list(ops)}")
        object.__setattr__(self, "ops", ops)
        if self.reduce_after is None:
            object.__setattr__(self, "reduce_after", default_reductions(self.num_layers))
        red = tuple(sorted(self.reduce_after))
        if any(not isinstance(p, int) or not 0 <= p < self.num_layers for p in red) or len(set(red)) != len(red):
            raise ValueError(f"reduce_after must list distinct layers in [0, {self.num_layers}), got {list(red)}")
        object.__setattr__(self, "reduce_after", red)

    def build_decisions(self) -> DecisionList:
        out = []
        for k in range(self.num_layers):
            out.append(Categorical(f"layers[{k}].op", "op", self.ops))
            out.append(Skip(f"layers[{k}].skips", anchor=k, num_candidates=k))
        return DecisionList(out)

    def op_offsets(self) -> list[int]:
        """Token offset of every layer's op decision."""
        d = self.decisions
        return [d.offsets[2 * k] for k in range(self.num_layers)]

    def skip_offsets(self) -> list[int]:
        """Token offset of every layer's first skip bit (layer k has k bits)."""
        d = self.decisions
        return [d.offsets[2 * k + 1] for k in range(self.num_layers)]

    def from_values(self, values: dict[str, Any]) -> EnasMacroArch:
        layers = tuple(
            MacroLayer(values[f"layers[{k}].op"], tuple(values[f"layers[{k}].skips"])) for k in range(self.num_layers)
        )
        return EnasMacroArch(layers=layers, reduce_after=self.reduce_after)

    def to_values(self, arch: Arch) -> dict[str, Any]:
        if not isinstance(arch, EnasMacroArch):
            raise ValueError(f"expected an enas_macro arch, got space {arch.space!r}")
        if arch.num_layers != self.num_layers:
            raise ValueError(f"layers: the arch has {arch.num_layers} layers, this space has {self.num_layers}")
        if arch.reduce_after != self.reduce_after:
            raise ValueError(f"reduce_after: the arch reduces after {list(arch.reduce_after)}, the space after {list(self.reduce_after)}")
        values: dict[str, Any] = {}
        for k, layer in enumerate(arch.layers):
            values[f"layers[{k}].op"] = layer.op
            values[f"layers[{k}].skips"] = layer.skips
        return values


def macro_arch_from_arc(arc: str | list[int], ops: tuple = MACRO_OPS, reduce_after: tuple | None = None) -> EnasMacroArch:
    """Decodes an arc string of the authors' code: per layer ``op s_0 .. s_{k-1}``.

    Example:

    >>> macro_arch_from_arc("0  1 0  2 1 1").layers[2]
    MacroLayer(op='conv_5x5', skips=(0, 1))
    """
    values = [int(v) for v in (arc.split() if isinstance(arc, str) else arc)]
    layers, pos, k = [], 0, 0
    while pos < len(values):
        if values[pos] >= len(ops):
            raise ValueError(f"arc position {pos}: op {values[pos]} out of range for {len(ops)} ops")
        bits = values[pos + 1 : pos + 1 + k]
        if len(bits) != k:
            raise ValueError(f"arc ends inside layer {k}: expected {k} skip bits")
        layers.append(MacroLayer(ops[values[pos]], tuple(j for j, b in enumerate(bits) if b)))
        pos += 1 + k
        k += 1
    red = default_reductions(len(layers)) if reduce_after is None else tuple(reduce_after)
    return EnasMacroArch(layers=tuple(layers), reduce_after=red)


# The published final macro network (24 layers; PAPERS.md 3.9.2).
_PUBLISHED_MACRO = [
    ("conv_3x3", ()), ("sep_conv_5x5", ()), ("conv_3x3", (0,)), ("conv_5x5", (2,)), ("conv_5x5", ()),
    ("sep_conv_5x5", (0, 1, 3)), ("conv_5x5", (5,)), ("conv_5x5", (1, 2, 4, 5, 6)), ("sep_conv_3x3", (1, 2, 3, 5, 7)),
    ("conv_3x3", ()), ("conv_5x5", (5,)), ("conv_3x3", (0, 3, 4, 9, 10)), ("conv_5x5", (1, 7, 9, 10)),
    ("sep_conv_3x3", (2, 6, 7, 8, 10, 12)), ("conv_3x3", (0, 1, 3, 5, 11)), ("conv_5x5", (2, 10, 12, 14)),
    ("conv_5x5", (1, 5, 8, 9, 10, 11, 14)), ("conv_5x5", (4, 6, 8, 11, 13, 16)), ("sep_conv_5x5", (1, 2, 4, 10, 12, 14)),
    ("sep_conv_5x5", (1, 2, 12, 13, 18)), ("conv_3x3", (0, 3, 5, 6, 10, 16, 17)),
    ("sep_conv_5x5", (1, 3, 4, 7, 9, 10, 12, 13, 15, 18)), ("conv_3x3", (0, 2, 4, 13, 15, 18)),
    ("conv_3x3", (0, 1, 5, 6, 7, 9, 13, 15, 18, 19)),
]


def enas_macro_published() -> EnasMacroArch:
    """The final macro network of the ENAS paper (24 layers, 98 skips)."""
    return EnasMacroArch(layers=tuple(MacroLayer(o, s) for o, s in _PUBLISHED_MACRO), reduce_after=(7, 15))


register_named_arch("enas_macro", enas_macro_published)
