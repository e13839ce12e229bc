"""The NAS macro-CNN search space of Zoph & Le (2017), section 3.1-3.3.

Per convolutional layer the controller decides filter height, filter width and
number of filters, optionally the stride height and width
(``predict_strides``), then takes an anchor-point step that selects the
layer's inputs among all earlier layers (skip connections). Max-pooling
layers can be placed by hand after given layers (``max_pool_after``).

Arch JSON (``"space": "nas_cnn"``)::

    {
      "space": "nas_cnn",
      "layers": [
        {"filter_height": 3, "filter_width": 3, "num_filters": 36,
         "stride_height": 1, "stride_width": 1, "inputs": []},
        {"filter_height": 5, "filter_width": 3, "num_filters": 48,
         "stride_height": 1, "stride_width": 1, "inputs": [0]}
      ],
      "max_pool_after": []
    }

``inputs`` lists earlier layer indices; an empty list means the image (rule 1
of the paper). Omitted, it defaults to the previous layer. Strides default to 1
and ``max_pool_after`` to none.

Sizes are capped where nas_tf builds and trains networks: filters up to
:data:`MAX_FILTER_SIZE` high and wide (far larger ones abort TensorFlow's
oneDNN convolution: a 1007-high filter did), :data:`MAX_FILTERS` filters,
:data:`MAX_STRIDE` strides, :data:`MAX_LAYERS` layers, and
:data:`MAX_WEIGHTS` convolution weights in all (1 GiB of float32).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from nas_tf.spaces.arch import Arch, ArchReader, register_arch
from nas_tf.spaces.base import SearchSpace, register_space
from nas_tf.spaces.decisions import Categorical, DecisionList, Skip

_LAYER_FIELDS = ("filter_height", "filter_width", "num_filters", "stride_height", "stride_width", "inputs")

# The sizes an arch of this space may have (stated in the load errors).
MAX_FILTER_SIZE = 64
MAX_FILTERS = 4096
MAX_STRIDE = 64
MAX_LAYERS = 256
MAX_WEIGHTS = 1 << 28
# Channels assumed for the image when counting weights (RGB).
_IMAGE_CHANNELS = 3


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One conv + batch-norm + ReLU layer of a NAS CNN.

    Args:
        filter_height: kernel height.
        filter_width: kernel width.
        num_filters: output channels.
        stride_height: vertical stride.
        stride_width: horizontal stride.
        inputs: indices of the earlier layers concatenated as this layer's
            input; empty means the image.
    """

    filter_height: int
    filter_width: int
    num_filters: int
    stride_height: int = 1
    stride_width: int = 1
    inputs: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {
            "filter_height": self.filter_height,
            "filter_width": self.filter_width,
            "num_filters": self.num_filters,
            "stride_height": self.stride_height,
            "stride_width": self.stride_width,
            "inputs": list(self.inputs),
        }


@register_arch
@dataclasses.dataclass(frozen=True)
class NASCNNArch(Arch):
    """A network of the NAS macro-CNN space.

    Args:
        layers: the conv layers, in order.
        max_pool_after: indices of layers followed by a 2x2, stride-2 max
            pooling (the hand-placed pooling of the paper's "v3" networks).

    Example:

    >>> arch = NASCNNArch(layers=(ConvLayer(3, 3, 24), ConvLayer(5, 5, 36, inputs=(0,))))
    >>> arch.to_dict()["layers"][1]["inputs"]
    [0]
    """

    space = "nas_cnn"
    layers: tuple[ConvLayer, ...]
    max_pool_after: tuple[int, ...] = ()

    def __post_init__(self):
        # Validate programmatic construction the same way as JSON loading.
        NASCNNArch.from_dict(self.to_dict(), source="<NASCNNArch>")

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def unconsumed_layers(self) -> list[int]:
        """Layers whose output no later layer uses (rule 2: they feed the classifier)."""
        used = {j for layer in self.layers for j in layer.inputs}
        return [i for i in range(len(self.layers)) if i not in used or i == len(self.layers) - 1]

    def to_dict(self) -> dict:
        return {
            "space": self.space,
            "layers": [layer.to_dict() for layer in self.layers],
            "max_pool_after": list(self.max_pool_after),
        }

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> NASCNNArch:
        r = ArchReader(data, source=source)
        r.check_keys(("space", "layers", "max_pool_after"))
        layer_readers = r.list("layers")
        if not layer_readers:
            raise r.error("layers", "must contain at least one layer")
        if len(layer_readers) > MAX_LAYERS:
            raise r.error("layers", f"{len(layer_readers)} layers; nas_tf builds up to {MAX_LAYERS}")
        layers = []
        for i, lr in enumerate(layer_readers):
            lr.check_keys(_LAYER_FIELDS)
            inputs = lr.int_list("inputs", min=0, default=[i - 1] if i > 0 else [])
            for k, j in enumerate(inputs):
                if j >= i:
                    raise ArchReader(inputs, lr._field("inputs"), source).bad(
                        k, j, f"an earlier layer index in [0, {i - 1}]" if i else "no input (layer 0 reads the image)"
                    )
            if len(set(inputs)) != len(inputs):
                raise lr.bad("inputs", inputs, "distinct layer indices")
            layers.append(
                ConvLayer(
                    filter_height=lr.int("filter_height", min=1, max=MAX_FILTER_SIZE),
                    filter_width=lr.int("filter_width", min=1, max=MAX_FILTER_SIZE),
                    num_filters=lr.int("num_filters", min=1, max=MAX_FILTERS),
                    stride_height=lr.int("stride_height", min=1, max=MAX_STRIDE, default=1),
                    stride_width=lr.int("stride_width", min=1, max=MAX_STRIDE, default=1),
                    inputs=tuple(sorted(inputs)),
                )
            )
        weights = conv_weights(layers)
        if weights > MAX_WEIGHTS:
            raise r.error(
                "layers", f"about {weights:,} convolution weights; nas_tf builds archs of up to {MAX_WEIGHTS:,} "
                "(1 GiB of float32)"
            )
        pools = r.int_list("max_pool_after", min=0, max=len(layers) - 1, default=[])
        if len(set(pools)) != len(pools):
            raise r.bad("max_pool_after", pools, "distinct layer indices")
        arch = object.__new__(cls)
        object.__setattr__(arch, "layers", tuple(layers))
        object.__setattr__(arch, "max_pool_after", tuple(sorted(pools)))
        return arch


def conv_weights(layers: Sequence[ConvLayer], image_channels: int = _IMAGE_CHANNELS) -> int:
    """The convolution weights of a network's layers (inputs concatenated; the image has ``image_channels``)."""
    total = 0
    for layer in layers:
        channels = sum(layers[j].num_filters for j in layer.inputs) if layer.inputs else image_channels
        total += layer.filter_height * layer.filter_width * channels * layer.num_filters
    return total


def _positive_ints(name: str, values: tuple, cap: int) -> tuple:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name}: must be a non-empty list of positive integers, got {list(values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: must not repeat values, got {list(values)}")
    if max(values) > cap:
        raise ValueError(f"{name}: {max(values)} is larger than {cap}, the largest nas_tf builds")
    return values


@register_space
@dataclasses.dataclass(frozen=True)
class NASCNNSpace(SearchSpace):
    """The NAS macro-CNN space.

    Args:
        num_layers: conv layers per architecture (the depth schedule changes it).
        filter_heights: values of the filter-height decision.
        filter_widths: values of the filter-width decision.
        num_filters: values of the number-of-filters decision.
        predict_strides: also decide stride height and width per layer.
        strides: values of the stride decisions.
        skip_connections: decide each layer's inputs with anchor points; if
            False every layer reads the previous one.
        max_pool_after: layers followed by a hand-placed 2x2 max pooling.

    Example:

    >>> space = NASCNNSpace(num_layers=2)
    >>> space.decisions.num_tokens  # 3 + 3 categorical tokens, 0 + 1 skip bits
    7
    """

    name = "nas_cnn"
    num_layers: int = 3
    filter_heights: tuple = (1, 3, 5, 7)
    filter_widths: tuple = (1, 3, 5, 7)
    num_filters: tuple = (24, 36, 48, 64)
    predict_strides: bool = False
    strides: tuple = (1, 2, 3)
    skip_connections: bool = True
    max_pool_after: tuple = ()

    def __post_init__(self):
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f"num_layers: must be a positive integer, got {self.num_layers!r}")
        if self.num_layers > MAX_LAYERS:
            raise ValueError(f"num_layers: {self.num_layers} is larger than {MAX_LAYERS}, the most nas_tf builds")
        caps = {"filter_heights": MAX_FILTER_SIZE, "filter_widths": MAX_FILTER_SIZE, "num_filters": MAX_FILTERS,
                "strides": MAX_STRIDE}
        for name, cap in caps.items():
            object.__setattr__(self, name, _positive_ints(name, getattr(self, name), cap))
        pools = tuple(self.max_pool_after)
        if any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in pools) or len(set(pools)) != len(pools):
            raise ValueError(f"max_pool_after: must list distinct layer indices >= 0, got {list(pools)}")
        object.__setattr__(self, "max_pool_after", tuple(sorted(pools)))
        largest = self.largest_weights()
        if largest > MAX_WEIGHTS:
            inputs = ", every earlier layer as input" if self.skip_connections else ""
            raise ValueError(
                f"num_filters: the largest network of this space ({self.num_layers} layers of {max(self.num_filters)} "
                f"{max(self.filter_heights)}x{max(self.filter_widths)} filters{inputs}) has {largest:,} convolution "
                f"weights; nas_tf builds up to {MAX_WEIGHTS:,}"
            )

    def largest_weights(self) -> int:
        """The convolution weights of the largest network of this space (every layer at its largest)."""
        widest = ConvLayer(max(self.filter_heights), max(self.filter_widths), max(self.num_filters))
        layers = [
            dataclasses.replace(widest, inputs=tuple(range(i)) if self.skip_connections else ((i - 1,) if i else ()))
            for i in range(self.num_layers)
        ]
        return conv_weights(layers)

    def with_depth(self, depth: int) -> NASCNNSpace:
        return dataclasses.replace(self, num_layers=depth)

    def _pools(self) -> tuple[int, ...]:
        # Pool positions beyond the current depth are ignored (depth schedules).
        return tuple(p for p in self.max_pool_after if p < self.num_layers)

    def build_decisions(self) -> DecisionList:
        out = []
        for i in range(self.num_layers):
            p = f"layers[{i}]."
            out.append(Categorical(p + "filter_height", "filter_height", self.filter_heights))
            out.append(Categorical(p + "filter_width", "filter_width", self.filter_widths))
            out.append(Categorical(p + "num_filters", "num_filters", self.num_filters))
            if self.predict_strides:
                out.append(Categorical(p + "stride_height", "stride_height", self.strides))
                out.append(Categorical(p + "stride_width", "stride_width", self.strides))
            if self.skip_connections:
                out.append(Skip(p + "inputs", anchor=i, num_candidates=i))
        return DecisionList(out)

    def from_values(self, values: dict[str, Any]) -> NASCNNArch:
        layers = []
        for i in range(self.num_layers):
            p = f"layers[{i}]."
            if self.skip_connections:
                inputs = tuple(values[p + "inputs"])
            else:
                inputs = (i - 1,) if i > 0 else ()
            layers.append(
                ConvLayer(
                    filter_height=values[p + "filter_height"],
                    filter_width=values[p + "filter_width"],
                    num_filters=values[p + "num_filters"],
                    stride_height=values.get(p + "stride_height", 1),
                    stride_width=values.get(p + "stride_width", 1),
                    inputs=inputs,
                )
            )
        return NASCNNArch(layers=tuple(layers), max_pool_after=self._pools())

    def to_values(self, arch: Arch) -> dict[str, Any]:
        if not isinstance(arch, NASCNNArch):
            raise ValueError(f"expected a nas_cnn arch, got space {arch.space!r}")
        if arch.num_layers != self.num_layers:
            raise ValueError(f"layers: the arch has {arch.num_layers} layers, this space has {self.num_layers}")
        if arch.max_pool_after != self._pools():
            raise ValueError(
                f"max_pool_after: the arch pools after {list(arch.max_pool_after)}, "
                f"this space after {list(self._pools())}"
            )
        values: dict[str, Any] = {}
        for i, layer in enumerate(arch.layers):
            p = f"layers[{i}]."
            values[p + "filter_height"] = layer.filter_height
            values[p + "filter_width"] = layer.filter_width
            values[p + "num_filters"] = layer.num_filters
            if self.predict_strides:
                values[p + "stride_height"] = layer.stride_height
                values[p + "stride_width"] = layer.stride_width
            elif (layer.stride_height, layer.stride_width) != (1, 1):
                raise ValueError(f"{p}stride_height/stride_width: strides are not searched in this space (must be 1)")
            if self.skip_connections:
                values[p + "inputs"] = layer.inputs
            elif layer.inputs != ((i - 1,) if i else ()):
                raise ValueError(f"{p}inputs: skip connections are off in this space; inputs must be the previous layer")
        return values
