"""ENAS macro networks: the shared-weight supernet and the standalone child.

Both are built from the same pieces (:func:`macro_branch`,
:class:`~nas_tf.layers.cell_ops.FactorizedReduction`), so a child built from
an arch computes exactly what the supernet computes for that arch when the
selected weights are copied over (tested).

Network (search and final alike, documented divergences from the authors'
code in the docstring of :func:`build_enas_macro`):

    stem: conv 3x3 (C) + BN                        -> node 0
    layer k: y = branch_k[op_k](node k)            (conv / sep conv / pool branch)
             y = BN(y + sum of the chosen earlier nodes)   -> node k + 1
    after a reduction layer: every node -> factorized reduction (stride 2, 2x channels)
    head: global average pooling, dropout, dense (logits)

In the supernet the arch is an int32 token tensor (the space's decision
layout): the op of layer ``k`` is picked with ``tf.switch_case`` so only the
chosen branch runs, and skips are 0/1 multipliers. The train step is traced
once, whatever architectures it sees.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from nas_tf.layers.branch_pool import BranchMaxPooling2D
from nas_tf.layers.cell_ops import FactorizedReduction
from nas_tf.models.registry import from_space_config, register_image_builder
from nas_tf.spaces.enas_macro import EnasMacroArch, EnasMacroSpace


def _bn(name: str, momentum: float, epsilon: float) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name=name)


def macro_branch(
    op: str, filters: int, name: str, *, regularizer=None, momentum: float = 0.9, epsilon: float = 1e-5,
    in_branch: bool = False,
) -> keras.Sequential:
    """One candidate operation of a macro layer (the authors' branch layout).

    conv k x k:     1x1 conv + BN + ReLU, then k x k conv + BN + ReLU
    sep conv k x k: 1x1 conv + BN + ReLU, then separable k x k conv + BN + ReLU
    pool 3x3:       1x1 conv + BN + ReLU, then 3x3 pooling (stride 1)

    ``in_branch``: the branch runs inside ``tf.switch_case`` (the supernet),
    so max pooling is :class:`~nas_tf.layers.branch_pool.BranchMaxPooling2D`
    (the same outputs, a gradient that stays fast there).
    """
    conv = dict(padding="same", use_bias=False, kernel_initializer="he_normal", kernel_regularizer=regularizer)
    layers = [
        keras.layers.Conv2D(filters, 1, name=f"{name}_inconv", **conv),
        _bn(f"{name}_inbn", momentum, epsilon),
        keras.layers.ReLU(name=f"{name}_inrelu"),
    ]
    kind, size = op.rsplit("_", 1)
    k = int(size.split("x")[0])
    if kind == "conv":
        layers += [keras.layers.Conv2D(filters, k, name=f"{name}_conv", **conv)]
    elif kind == "sep_conv":
        layers += [
            keras.layers.SeparableConv2D(
                filters,
                k,
                padding="same",
                use_bias=False,
                depthwise_initializer="he_normal",
                pointwise_initializer="he_normal",
                depthwise_regularizer=regularizer,
                pointwise_regularizer=regularizer,
                name=f"{name}_sepconv",
            )
        ]
    elif kind == "avg_pool":
        layers += [keras.layers.AveragePooling2D(k, 1, padding="same", name=f"{name}_pool")]
    elif kind == "max_pool":
        pool = BranchMaxPooling2D if in_branch else keras.layers.MaxPooling2D
        layers += [pool(k, 1, padding="same", name=f"{name}_pool")]
    else:  # pragma: no cover - the space validates op names
        raise ValueError(f"unknown macro op {op!r}")
    if kind in ("conv", "sep_conv"):
        layers += [_bn(f"{name}_bn", momentum, epsilon), keras.layers.ReLU(name=f"{name}_relu")]
    return keras.Sequential(layers, name=name)


def _channels(filters: int, arch_reduce_after, k: int) -> int:
    """Channels of the nodes that layer ``k`` reads (doubled at every reduction before it)."""
    return filters * 2 ** sum(1 for r in arch_reduce_after if r < k)


class _MacroPieces:
    """The layers shared by the supernet and the child (names match)."""

    def __init__(self, num_layers, reduce_after, filters, regularizer, momentum, epsilon):
        conv = dict(padding="same", use_bias=False, kernel_initializer="he_normal", kernel_regularizer=regularizer)
        self.stem = keras.Sequential(
            [keras.layers.Conv2D(filters, 3, name="stem_conv", **conv), _bn("stem_bn", momentum, epsilon)], name="stem"
        )
        self.out_bn = [_bn(f"layer{k}_outbn", momentum, epsilon) for k in range(num_layers)]
        self.reductions = {
            k: [
                FactorizedReduction(
                    2 * _channels(filters, reduce_after, k),
                    kernel_regularizer=regularizer,
                    batch_norm_momentum=momentum,
                    batch_norm_epsilon=epsilon,
                    name=f"reduce{k}_node{i}",
                )
                for i in range(k + 2)
            ]
            for k in reduce_after
        }


def build_enas_macro(
    arch: EnasMacroArch,
    input_shape: tuple,
    num_classes: int,
    *,
    filters: int = 36,
    weight_decay: float = 1e-4,
    dropout: float = 0.0,
    batch_norm_momentum: float = 0.9,
    batch_norm_epsilon: float = 1e-5,
    name: str = "enas_macro",
) -> keras.Model:
    """Builds the standalone network of an ENAS macro arch.

    Divergences from the authors' final (fixed-arc) network, on purpose: the
    same network is used in search and final training (the authors' code
    concatenates skips and adds a 1x1 conv only in its final network, builds
    separable ops as plain convs there and does not implement pooling ops --
    PAPERS.md 3.3.4, 3.10); channels double at every reduction in both.

    Args:
        arch: the architecture.
        input_shape: ``(H, W, C)``.
        num_classes: logits size.
        filters: channels of the first stage (doubled at every reduction).
        weight_decay: L2 penalty on kernels (gradient ``weight_decay * w``).
        dropout: dropout before the classifier.
        batch_norm_momentum: batch-norm momentum.
        batch_norm_epsilon: batch-norm epsilon.
        name: model name.

    Returns:
        A ``keras.Model`` from images to logits.
    """
    if not isinstance(arch, EnasMacroArch):
        raise TypeError(f"build_enas_macro needs an enas_macro arch, got {type(arch).__name__}")
    reg = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
    pieces = _MacroPieces(arch.num_layers, arch.reduce_after, filters, reg, batch_norm_momentum, batch_norm_epsilon)
    images = keras.Input(tuple(input_shape), name="images")
    nodes = [pieces.stem(images)]
    for k, layer in enumerate(arch.layers):
        c = _channels(filters, arch.reduce_after, k)
        y = macro_branch(layer.op, c, f"layer{k}_{layer.op}", regularizer=reg, momentum=batch_norm_momentum,
                             epsilon=batch_norm_epsilon)(nodes[-1])
        if layer.skips:
            y = keras.layers.Add(name=f"layer{k}_skips")([y] + [nodes[j] for j in layer.skips])
        nodes.append(pieces.out_bn[k](y))
        if k in pieces.reductions:
            nodes = [fr(n) for fr, n in zip(pieces.reductions[k], nodes)]
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(nodes[-1])
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=reg, name="logits")(x)
    return keras.Model(images, logits, name=name)


register_image_builder("enas_macro", build_enas_macro)


@keras.saving.register_keras_serializable(package="nas_tf")
class EnasMacroSupernet(keras.Model):
    """All macro architectures of a space in one model with shared weights.

    Call it as ``supernet(images, arch_tokens, training=...)`` with the arch as
    an int32 token vector of ``space.decisions``. Batch norm always uses the
    batch statistics (the authors' search does the same): moving averages would
    mix the statistics of every sampled architecture, so rewards are computed
    with the statistics of the validation batch itself.

    Args:
        space: the macro space (number of layers, ops, reductions).
        num_classes: logits size.
        filters: channels of the first stage.
        weight_decay: L2 penalty on kernels.
        dropout: dropout before the classifier (training only).
        batch_norm_momentum: batch-norm momentum (only affects the moving
            averages, which the search does not use).
        batch_norm_epsilon: batch-norm epsilon.
        op_selection: ``"switch"`` runs only the chosen op (``tf.switch_case``);
            ``"all"`` runs every candidate and picks one output, as the
            authors' micro code does (kept to measure what selection saves).
    """

    def __init__(
        self,
        space: EnasMacroSpace,
        num_classes: int,
        *,
        filters: int = 36,
        weight_decay: float = 1e-4,
        dropout: float = 0.0,
        batch_norm_momentum: float = 0.9,
        batch_norm_epsilon: float = 1e-5,
        op_selection: str = "switch",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if op_selection not in ("switch", "all"):
            raise ValueError(f"op_selection must be 'switch' or 'all', got {op_selection!r}")
        self.op_selection = op_selection
        if filters < 1 or num_classes < 1:
            raise ValueError(f"filters and num_classes must be >= 1, got {filters}, {num_classes}")
        self.space = space
        self.num_classes = num_classes
        self.filters = filters
        self.weight_decay, self.dropout = weight_decay, dropout
        self.batch_norm_momentum, self.batch_norm_epsilon = batch_norm_momentum, batch_norm_epsilon
        reg = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
        self.pieces = _MacroPieces(space.num_layers, space.reduce_after, filters, reg, batch_norm_momentum, batch_norm_epsilon)
        self.stem = self.pieces.stem
        self.out_bn = self.pieces.out_bn
        self.reductions = [fr for k in sorted(self.pieces.reductions) for fr in self.pieces.reductions[k]]
        self.branches = [
            [
                macro_branch(op, _channels(filters, space.reduce_after, k), f"layer{k}_{op}", regularizer=reg,
                             momentum=batch_norm_momentum, epsilon=batch_norm_epsilon, in_branch=op_selection == "switch")
                for op in space.ops
            ]
            for k in range(space.num_layers)
        ]
        self.pool = keras.layers.GlobalAveragePooling2D(name="global_pool")
        self.drop = keras.layers.Dropout(dropout, name="dropout") if dropout else None
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=reg, name="logits")
        self._op_offsets = space.op_offsets()
        self._skip_offsets = space.skip_offsets()

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "space": self.space.config(),
            "num_classes": self.num_classes,
            "filters": self.filters,
            "weight_decay": self.weight_decay,
            "dropout": self.dropout,
            "batch_norm_momentum": self.batch_norm_momentum,
            "batch_norm_epsilon": self.batch_norm_epsilon,
            "op_selection": self.op_selection,
        }

    @classmethod
    def from_config(cls, config):
        return from_space_config(cls, config, "enas_macro")

    def build(self, input_shape):
        """Builds every candidate (variables must exist before ``switch_case`` is traced)."""
        shape = (None,) + tuple(input_shape[1:])
        self.stem.build(shape)
        shape = self.stem.compute_output_shape(shape)
        for k in range(self.space.num_layers):
            for branch in self.branches[k]:
                branch.build(shape)
            self.out_bn[k].build(shape)
            if k in self.pieces.reductions:
                for fr in self.pieces.reductions[k]:
                    fr.build(shape)
                shape = self.pieces.reductions[k][0].compute_output_shape(shape)
        self.classifier.build((None, shape[-1]))
        self.built = True

    def call(self, images, arch, training=None):
        arch = tf.convert_to_tensor(arch, tf.int32)
        nodes = [self.stem(images, training=True)]
        for k in range(self.space.num_layers):
            x = nodes[-1]
            if self.op_selection == "switch":
                branches = [lambda b=b, x=x: b(x, training=True) for b in self.branches[k]]
                y = tf.switch_case(arch[self._op_offsets[k]], branches)
            else:
                y = tf.gather(tf.stack([b(x, training=True) for b in self.branches[k]]), arch[self._op_offsets[k]])
            if k > 0:
                bits = tf.cast(arch[self._skip_offsets[k] : self._skip_offsets[k] + k], y.dtype)
                for j in range(k):
                    y = y + bits[j] * nodes[j]
            nodes.append(self.out_bn[k](y, training=True))
            if k in self.pieces.reductions:
                nodes = [fr(n, training=True) for fr, n in zip(self.pieces.reductions[k], nodes)]
        x = self.pool(nodes[-1])
        if self.drop is not None:
            x = self.drop(x, training=training)
        return self.classifier(x)

    def control_flow_layers(self) -> list[keras.layers.Layer]:
        """The layers called inside ``tf.switch_case`` (the candidate ops, with ``op_selection="switch"``).

        Their batch norm cannot use cross-replica statistics under a
        ``tf.distribute`` strategy (TensorFlow's cross-replica all-reduce
        needs a ``merge_call``, which a branch function does not allow), so a
        data-parallel step leaves them on per-replica statistics.
        """
        return [b for layer in self.branches for b in layer] if self.op_selection == "switch" else []

    def child_weights(self, arch: EnasMacroArch) -> dict[str, list]:
        """The supernet's weights of ``arch`` by layer name of :func:`build_enas_macro`."""
        out = {}
        for layer in [self.stem, *self.out_bn, *self.reductions, self.classifier]:
            out[layer.name] = layer.get_weights()
        for k, layer in enumerate(arch.layers):
            branch = self.branches[k][self.space.ops.index(layer.op)]
            out[branch.name] = branch.get_weights()
        return out

    def copy_to_child(self, arch: EnasMacroArch, child: keras.Model) -> None:
        """Copies the weights of ``arch`` into a child built by :func:`build_enas_macro`.

        Reductions of nodes that the child never reads are not in the child.
        """
        weights = self.child_weights(arch)
        for layer in child.layers:
            if layer.weights:
                if layer.name not in weights:
                    raise ValueError(f"the supernet has no weights for child layer {layer.name!r}")
                layer.set_weights(weights[layer.name])
