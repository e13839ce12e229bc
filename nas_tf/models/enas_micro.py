"""The ENAS micro supernet: every cell of the space, shared weights selected by index.

The supernet computes what :func:`~nas_tf.models.nasnet.build_nasnet`
computes for the arch given as an int token tensor (the ENAS micro space's
decision layout), on the CIFAR skeleton: stem 3x3 conv (3F) -> N normal cells
-> reduction -> N normal -> reduction -> N normal -> ReLU -> global pool ->
dropout -> dense. Copying the selected weights into the NASNet child gives
the same outputs (tested), so the derived arch is trained from scratch by the
NASNet builder (``scripts/train_final.py``) with nothing lost in translation.

**Sharing** follows the authors' code (PAPERS.md 3.4.3): every (cell
position, node, input slot, op) owns weights for each input node it may
read, and the sampled input index selects them. They are stored as a few
banks per cell position -- one per op, a row per (node, slot, input) holding
that op's kernels, batch-norm scales and offsets flattened -- so a step
gathers one block of rows per bank and position (``tf.gather``), and the
train step updates some 65 variables instead of some 900: with one variable
per (node, slot, op, unit, kind), the optimizer update, weight decay and
gradient clip alone were three quarters of the 38 000 nodes of the default
search's train step.

**Op selection** (``op_selection``):

* ``"switch"`` (default): only the chosen op runs. A cell's states are kept
  in a ``TensorList`` (:class:`_StateList`), and a node input reads the chosen
  one by its index (no copy, and the gradient reaches that state only, with
  no zeros for the others), then calls a graph function per cell kind and
  filter count (:class:`_NodeOps`) whose ``tf.switch_case`` runs the chosen
  op. The function is traced and differentiated once per (kind, filters)
  instead of once per node and slot, and the train step's graph never holds
  every branch of every node (a lowered ``switch_case`` stays in a function
  that is not inlined), so the first train step of the default search takes
  seconds of tracing and graph optimisation instead of minutes (``scripts/bench_enas.py`` measures both,
  docs/benchmarks.md). How the ``switch_case`` runs is chosen per cell by
  size (``switch_branches``): on small states (the 8x8 digits of the default
  search) the chosen op runs as a branch function of its own, with
  TensorFlow's Eigen kernels and no other branch visited; on larger ones the
  ``switch_case`` is lowered into the node function, whose ops get oneDNN's
  kernels (:mod:`nas_tf.utils.control_flow`). On the digits that made the
  step 0.86-1.15x its static child instead of 1.28-1.48x; at 32x32 the Eigen
  kernels made it 1.48-1.79x instead of 1.04-1.11x.
* ``"merged"``: the separable convs share one code path whose weights are
  those of the chosen op (a 3x3 depthwise kernel zero-padded to 5x5 gives the
  same SAME-padded result), so one separable conv runs whatever the choice;
  the pools and identity are computed too and a one-hot sum keeps the chosen
  output. Plain dataflow, but each step computes more.
* ``"all"``: every candidate computed and one picked, as the authors' code
  does (for the benchmark).

**Cell output.** A cell concatenates its unused states, as the child does:
their number depends on the arch, so the output's channel count is known at
run time only (a ``TensorList`` gather of the unused states, in a graph
function of its own, :func:`_cell_output_fn`). Every layer that reads a cell
output (the next cells' 1x1 convs and factorized reductions, the classifier)
has a kernel over the full width of all ``B + 2`` states, and reads it with
the rows of the channels the output holds (a gather): the child's kernel is
those rows, so it is the same function, and the convs cost what the child's
do. (Concatenating all states with zeros in place of the used ones -- a fixed
width -- made those convs read 7 states instead of the child's 2-3: the
32x32 step was 1.14-1.41x its child instead of 1.00-1.14x.) When the child
reads a previous cell's output without adjusting it (exactly one unused state
with the cell's filter count) the supernet takes the output directly (a
``tf.cond``).

**Batch norm** always uses the statistics of the current batch (as the
authors' search): moving averages would mix the statistics of every sampled
architecture, and a reward is measured with the statistics of its own
validation batch. The chosen ops' batch norm is the fused op.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from nas_tf.layers.branch_pool import branch_max_pool
from nas_tf.layers.cell_ops import FactorizedReduction, ReLUConvBN
from nas_tf.models.nasnet import build_nasnet
from nas_tf.models.registry import from_space_config
from nas_tf.spaces.enas_micro import EnasMicroSpace
from nas_tf.spaces.nasnet import CELL_TYPES, NASNetArch
from nas_tf.utils.control_flow import switch_case

_SEP_SIZES = {"sep_conv_3x3": 3, "sep_conv_5x5": 5}


def build_enas_micro_child(
    arch: NASNetArch,
    input_shape: tuple,
    num_classes: int,
    *,
    filters: int = 20,
    num_cells: int = 2,
    weight_decay: float = 1e-4,
    dropout: float = 0.0,
    **options,
) -> keras.Model:
    """The standalone network of an ENAS micro arch: the NASNet builder, CIFAR skeleton.

    As in the ENAS code, the first cell adjusts the stem it reads as
    ``h_{i-1}`` to its filter count (``adjust_first_prev``), so every state of
    every cell has the cell's filters and the shared weights of all input
    indices have one shape.

    Args:
        arch: the cells (a NASNet arch).
        input_shape: ``(H, W, C)``.
        num_classes: logits size.
        filters: F, channels of the first stage's cells.
        num_cells: N, normal cells per stage.
        weight_decay: L2 penalty on kernels.
        dropout: dropout before the classifier.
        **options: further :func:`~nas_tf.models.nasnet.build_nasnet` options.
    """
    return build_nasnet(
        arch,
        input_shape,
        num_classes,
        num_cells=num_cells,
        num_conv_filters=filters,
        skeleton="cifar",
        stem_multiplier=3.0,
        weight_decay=weight_decay,
        dropout=dropout,
        adjust_first_prev=True,
        **options,
    )


class _FactorizedReduction(FactorizedReduction):
    """:class:`~nas_tf.layers.cell_ops.FactorizedReduction` (same weights) computed without strided slices.

    The gradient kernel of a strided slice is slow on CPU (a fifth of the
    supernet step at 32x32, on the full-width cell outputs): a stride-2 1x1
    conv samples the pixels, and the one-pixel shift is a pad and a plain
    slice.
    """

    def call(self, inputs, training=None):
        if self.strides == 1:
            return super().call(inputs, training=training)
        return self.on_channels(inputs, None, training=training)

    def on_channels(self, inputs, channels, training=None):
        """The layer on ``inputs``, which hold only the input channels ``channels`` (None: all of them)."""
        x = tf.nn.relu(inputs) if self.relu else inputs
        path1 = tf.nn.conv2d(x, _kernel_rows(self.conv_1.kernel, channels), 2, "VALID")
        size = tf.shape(x)
        shifted = tf.slice(tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]), [0, 1, 1, 0], [-1, size[1], size[2], -1])
        path2 = tf.nn.conv2d(shifted, _kernel_rows(self.conv_2.kernel, channels), 2, "VALID")
        return self.bn(tf.concat([path1, path2], axis=-1), training=training)


def _kernel_rows(kernel, channels):
    """The rows of a 1x1 conv kernel for the input channels ``channels`` (None: the whole kernel)."""
    return kernel if channels is None else tf.gather(kernel, channels, axis=2)


def _relu_conv_bn_on_channels(layer: ReLUConvBN, inputs, channels, training=None):
    """A 1x1, stride-1 :class:`ReLUConvBN` on ``inputs``, which hold only the input channels ``channels``."""
    if channels is None:
        return layer(inputs, training=training)
    x = tf.nn.conv2d(tf.nn.relu(inputs), _kernel_rows(layer.conv.kernel, channels), 1, "SAME")
    return layer.bn(x, training=training)


class _Position:
    """Static description of one cell position of the network."""

    def __init__(self, index, name, kind, filters, x_src, prev_src, prev_larger):
        self.index = index
        self.name = name
        self.kind = kind  # "normal" | "reduction"
        self.filters = filters
        self.x_src = x_src  # producer of h_i: -1 = stem, else a position index
        self.prev_src = prev_src  # producer of h_{i-1}
        self.prev_larger = prev_larger


def _bn_train(x, gamma, beta, epsilon):
    """Batch norm with the current batch's statistics (one fused op and one for its gradient)."""
    return tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon, is_training=True)[0]


# ------------------------------------------------------------------ banks
#
# A bank holds one op's weights for every (node, slot, input) of a cell
# position, one flat row each; a layout names the pieces of a row.


def _sep_layout(size: int, f: int) -> list[tuple[str, tuple]]:
    """The pieces of a separable-conv row: two units of depthwise, pointwise, gamma, beta."""
    unit = [("depthwise", (size, size, f, 1)), ("pointwise", (f, f)), ("gamma", (f,)), ("beta", (f,))]
    return [(f"{u}_{name}", shape) for u in range(2) for name, shape in unit]


def _identity_layout(f: int) -> list[tuple[str, tuple]]:
    """The pieces of a reduction identity row: 1x1 conv, gamma, beta."""
    return [("conv", (f, f)), ("gamma", (f,)), ("beta", (f,))]


def _width(layout) -> int:
    return int(sum(np.prod(shape) for _, shape in layout))


def _is_kernel(name: str) -> bool:
    return not name.endswith(("gamma", "beta"))


def _unpack(row, layout) -> list:
    """The weights of one row (a tensor or a NumPy array), shaped as ``layout`` says."""
    sizes = [int(np.prod(shape)) for _, shape in layout]
    if isinstance(row, np.ndarray):
        parts = np.split(row, np.cumsum(sizes)[:-1])
        return [p.reshape(shape) for p, (_, shape) in zip(parts, layout)]
    return [tf.reshape(p, shape) for p, (_, shape) in zip(tf.split(row, sizes), layout)]


class _BankInitializer:
    """He-normal kernels (fan-in of one row's kernel, as Keras computes it), ones for gamma, zeros for beta."""

    def __init__(self, layout):
        self.layout = layout

    def __call__(self, shape, dtype=None):
        rows, parts = shape[0], []
        for name, piece in self.layout:
            size = int(np.prod(piece))
            if name.endswith("gamma"):
                parts.append(keras.ops.ones((rows, size), dtype))
            elif name.endswith("beta"):
                parts.append(keras.ops.zeros((rows, size), dtype))
            else:
                fan_in = int(np.prod(piece[:-1]))
                stddev = np.sqrt(2.0 / fan_in) / 0.87962566103423978  # keras.initializers.HeNormal
                parts.append(keras.random.truncated_normal((rows, size), stddev=stddev, dtype=dtype))
        return keras.ops.concatenate(parts, axis=1)


class _BankL2:
    """L2 penalty on the kernel pieces of a bank (not on batch-norm gamma and beta)."""

    def __init__(self, layout, l2: float):
        self.l2 = l2
        self.mask = np.concatenate([np.full(int(np.prod(s)), float(_is_kernel(n)), np.float32) for n, s in layout])

    def __call__(self, w):
        return self.l2 * tf.reduce_sum(tf.square(w) * self.mask)


# ----------------------------------------------------------------- the ops


def _sep_apply(x, units, strides, epsilon):
    """ReLU -> depthwise -> pointwise -> batch norm, once per unit ``(dw, pw, gamma, beta)``."""
    for u, (dw, pw, gamma, beta) in enumerate(units):
        s = strides if u == 0 else 1
        x = tf.nn.relu(x)
        x = tf.nn.depthwise_conv2d(x, dw, [1, s, s, 1], "SAME")
        x = tf.nn.conv2d(x, pw[None, None], 1, "SAME")
        x = _bn_train(x, gamma, beta, epsilon)
    return x


def _sep_forward(x, row, *, size, strides, epsilon):
    """A separable conv of ``x`` with the weights of one bank row."""
    w = _unpack(row, _sep_layout(size, x.shape[-1]))
    return _sep_apply(x, [w[4 * u : 4 * u + 4] for u in range(2)], strides, epsilon)


def _reduce_identity_forward(x, row, *, size, strides, epsilon):
    """The identity of a reduction cell on a stride-2 input: ReLU -> strided 1x1 conv -> batch norm."""
    conv, gamma, beta = _unpack(row, _identity_layout(x.shape[-1]))
    x = tf.nn.conv2d(tf.nn.relu(x), conv[None, None], strides, "SAME")
    return _bn_train(x, gamma, beta, epsilon)


def _run_op(op, x, rows, strides, epsilon):
    """One candidate op on ``x`` with its weights ``rows[op]`` (a bank row)."""
    if op in _SEP_SIZES:
        return _sep_forward(x, rows[op], size=_SEP_SIZES[op], strides=strides, epsilon=epsilon)
    if op == "avg_pool_3x3":
        return tf.nn.avg_pool2d(x, 3, strides, "SAME")
    if op == "max_pool_3x3":
        return branch_max_pool(x, 3, strides)
    if op == "identity":
        if strides == 1:
            return tf.identity(x)
        return _reduce_identity_forward(x, rows["identity"], size=1, strides=strides, epsilon=epsilon)
    raise ValueError(f"unknown ENAS micro op {op!r}")  # pragma: no cover


def _weighted_ops(ops, kind) -> list[str]:
    """The ops with a bank row, in the order a node function takes them."""
    return [op for op in _SEP_SIZES if op in ops] + (["identity"] if kind == "reduction" and "identity" in ops else [])


class _StateList:
    """A cell's states in a ``TensorList``, read by a run-time index.

    ``TensorListGetItem`` returns the stored tensor itself (no copy), and its
    gradient sets one element of a list gradient, so a state's gradient is
    the sum over the node inputs that read it, with nothing added for those
    that did not. (A ``tf.switch_case`` over the states gives every state a
    node input did not pick a zeros tensor to add: filling and adding them was
    a quarter of the supernet's extra step time at 32x32.)

    Args:
        filters: channels of every state (heights and widths may differ).
        dtype: the states' dtype.
    """

    def __init__(self, filters: int, dtype):
        self.filters, self.dtype = filters, dtype
        self.element_shape = tf.constant([-1, -1, -1, filters], tf.int32)
        self.handle = tf.raw_ops.EmptyTensorList(
            element_shape=self.element_shape, max_num_elements=-1, element_dtype=dtype
        )

    def push(self, state: tf.Tensor) -> None:
        self.handle = tf.raw_ops.TensorListPushBack(input_handle=self.handle, tensor=state)

    def read(self, index: tf.Tensor) -> tf.Tensor:
        state = tf.raw_ops.TensorListGetItem(
            input_handle=self.handle, index=index, element_shape=self.element_shape, element_dtype=self.dtype
        )
        state.set_shape([None, None, None, self.filters])
        return state


def _cell_output_fn(filters: int, num_states: int):
    """``fn(unused, *states) -> (x, channels)``: the unused states concatenated, and their channels in the full width.

    A graph function of its own, never inlined: the channel count depends on
    the arch, and inlined into the train step, grappler's constant folding
    mis-inferred it (TF 2.21) for some archs.
    """

    def body(unused, *states):
        state_list = _StateList(filters, states[0].dtype)
        for state in states:
            state_list.push(state)
        index = tf.cast(tf.reshape(tf.where(unused > 0), [-1]), tf.int32)
        stacked = tf.raw_ops.TensorListGather(
            input_handle=state_list.handle, indices=index, element_shape=state_list.element_shape,
            element_dtype=state_list.dtype,
        )  # [k, B, H, W, F]
        x = tf.transpose(stacked, [1, 2, 3, 0, 4])
        size = tf.shape(x)
        x = tf.reshape(x, [size[0], size[1], size[2], size[3] * filters])
        channels = tf.reshape(index[:, None] * filters + tf.range(filters)[None], [-1])
        return x, channels

    spec = [tf.TensorSpec([num_states])] + [tf.TensorSpec([None, None, None, filters])] * num_states
    return tf.function(body, input_signature=spec, autograph=False, experimental_attributes={"_noinline": True})


class _NodeOps:
    """A node input's op as one graph function per cell kind, filters and branch mode.

    ``fn(idx, op_id, x, *rows)``: a ``tf.switch_case`` runs op ``op_id`` on
    ``x`` (state ``idx`` of the cell) with its bank row. A reduction cell runs
    an op with stride 2 on its inputs (states 0 and 1) and with stride 1 on
    its nodes. The shapes are left open, so each function is traced once per
    (cell kind, filters, branch mode), and TensorFlow differentiates it once.

    ``lower`` says whether the ``switch_case`` is lowered into the function
    (oneDNN kernels, every branch visited) or runs the chosen branch as a
    function of its own (Eigen kernels):
    :func:`nas_tf.utils.control_flow.switch_case`. Lowered, the node function
    holds every branch and is never inlined into the train step: it is
    optimised and instantiated once, however many nodes call it (inlined, the
    step's graph held every branch of every node, and its first call took
    minutes). With branch functions it holds one ``Case`` op and is inlined,
    which saves a function call per node input (about 6 % of the digits
    step).
    """

    def __init__(self, ops, epsilon: float):
        self.ops = tuple(ops)
        self.epsilon = epsilon
        self._fns = {}

    def get(self, kind: str, filters: int, lower: bool):
        key = (kind, filters, lower)
        if key not in self._fns:
            weighted = _weighted_ops(self.ops, kind)
            ops, eps = self.ops, self.epsilon

            def body(idx, op_id, x, *row_list):
                rows = dict(zip(weighted, row_list))
                if kind == "normal":
                    branches = [lambda op=op: _run_op(op, x, rows, 1, eps) for op in ops]
                    return switch_case(op_id, branches, lower=lower)
                # Reduction: ops on the cell inputs (stride 2), then ops on the nodes (stride 1).
                branches = [lambda op=op, s=s: _run_op(op, x, rows, s, eps) for s in (2, 1) for op in ops]
                return switch_case(op_id + len(ops) * tf.cast(idx >= 2, tf.int32), branches, lower=lower)

            spec = [tf.TensorSpec([], tf.int32)] * 2 + [tf.TensorSpec([None, None, None, filters])]
            spec += [tf.TensorSpec([None])] * len(weighted)
            self._fns[key] = tf.function(
                body, input_signature=spec, autograph=False, experimental_attributes={"_noinline": lower}
            )
        return self._fns[key]


@keras.saving.register_keras_serializable(package="nas_tf")
class EnasMicroSupernet(keras.Model):
    """All ENAS micro architectures in one model with shared weights.

    Call it as ``supernet(images, arch_tokens, training=...)`` with the arch
    as an int32 token vector of ``space.decisions``.

    Args:
        space: the ENAS micro space.
        num_classes: logits size.
        filters: F, channels of the first stage (doubled at each reduction).
        num_cells: N, normal cells per stage (the authors' search: 2).
        weight_decay: L2 penalty on every kernel.
        dropout: dropout before the classifier (training only).
        batch_norm_epsilon: batch-norm epsilon.
        op_selection: ``"switch"`` (default), ``"merged"`` or ``"all"``; see
            the module docstring.
        switch_branches: how ``op_selection="switch"`` runs the chosen op:
            ``"inlined"`` (the ``switch_case`` lowered into its node function:
            oneDNN kernels on x86, every branch visited), ``"function"`` (the
            chosen branch run as a function of its own: TensorFlow's Eigen
            kernels) or ``"auto"`` (default): ``"function"`` in the cells
            whose states hold at most ``SMALL_STATE_VALUES`` values per
            image (H x W x filters), where it is faster, ``"inlined"`` in
            the others and where the image size is unknown. Once built,
            ``switch_branch_modes`` maps each cell position's name to the
            mode it runs.
    """

    #: Per-image size (H x W x filters of a cell's input states) up to which
    #: ``switch_branches="auto"`` runs the chosen op as a function of its own.
    #: ``scripts/bench_enas.py`` times whole supernets both ways
    #: (docs/benchmarks.md): on 2 cores, with every cell's ops as branch
    #: functions, the step took 0.81x the time on 8x8 inputs with 8 filters
    #: (cells of 8x8x8 to 2x2x32), 0.84x with 16 filters, 0.92x with 32, and
    #: 1.16x and 1.26x on 16x16 inputs with 8 and 16 filters.
    SMALL_STATE_VALUES = 1024

    def __init__(
        self,
        space: EnasMicroSpace,
        num_classes: int,
        *,
        filters: int = 20,
        num_cells: int = 2,
        weight_decay: float = 1e-4,
        dropout: float = 0.0,
        batch_norm_epsilon: float = 1e-5,
        op_selection: str = "switch",
        switch_branches: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if op_selection not in ("switch", "merged", "all"):
            raise ValueError(f"op_selection must be 'switch', 'merged' or 'all', got {op_selection!r}")
        if switch_branches not in ("auto", "inlined", "function"):
            raise ValueError(f"switch_branches must be 'auto', 'inlined' or 'function', got {switch_branches!r}")
        if filters < 2 or num_cells < 1 or num_classes < 1:
            raise ValueError(f"need filters >= 2, num_cells >= 1, num_classes >= 1; got {filters}, {num_cells}, {num_classes}")
        self.space = space
        self.num_classes = num_classes
        self.filters = filters
        self.num_cells = num_cells
        self.op_selection = op_selection
        self.switch_branches = switch_branches
        self.epsilon = batch_norm_epsilon
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.num_states = space.num_nodes + 2
        self.max_inputs = space.num_nodes + 1  # inputs of the last node
        self._layout = space.token_layout()
        self.regularizer = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
        self._node_ops = _NodeOps(space.ops, batch_norm_epsilon)
        self._cell_output_fns = {}
        settings = dict(batch_norm_epsilon=batch_norm_epsilon, kernel_regularizer=self.regularizer)
        self.stem_conv = keras.layers.Conv2D(
            3 * filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
            kernel_regularizer=self.regularizer, name="stem_conv",
        )
        self.stem_bn = keras.layers.BatchNormalization(epsilon=batch_norm_epsilon, name="stem_bn")
        # The positions, named as the NASNet builder names its cells.
        self.positions: list[_Position] = []
        scale, normal_index, srcs, levels = 1, 0, [-1, -1], [0, 0]
        for stage in range(3):
            if stage > 0:
                scale *= 2
                self._add_position(f"reduction_cell_{stage - 1}", "reduction", filters * scale, srcs, levels)
            for _ in range(num_cells):
                self._add_position(f"normal_cell_{normal_index}", "normal", filters * scale, srcs, levels)
                normal_index += 1
        self.input_convs, self.prev_adjust, self.state_reductions = {}, {}, {}
        for p in self.positions:
            self.input_convs[p.name] = ReLUConvBN(p.filters, 1, name=f"{p.name}_input", **settings)
            if p.prev_larger:
                self.prev_adjust[p.name] = _FactorizedReduction(p.filters, 2, relu=True, name=f"{p.name}_adjust_prev", **settings)
            else:
                self.prev_adjust[p.name] = ReLUConvBN(p.filters, 1, name=f"{p.name}_adjust_prev", **settings)
            if p.kind == "reduction":
                self.state_reductions[p.name] = [
                    _FactorizedReduction(p.filters, 2, name=f"{p.name}_reduce_state{i}", **settings) for i in range(2)
                ]
        self.drop = keras.layers.Dropout(dropout, name="dropout") if dropout else None
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=self.regularizer, name="logits")

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "space": self.space.config(),
            "num_classes": self.num_classes,
            "filters": self.filters,
            "num_cells": self.num_cells,
            "weight_decay": self.weight_decay,
            "dropout": self.dropout,
            "batch_norm_epsilon": self.epsilon,
            "op_selection": self.op_selection,
            "switch_branches": self.switch_branches,
        }

    @classmethod
    def from_config(cls, config):
        return from_space_config(cls, config, "enas_micro")

    def _add_position(self, name, kind, filters, srcs, levels):
        index = len(self.positions)
        level = levels[-1] + (1 if kind == "reduction" else 0)
        prev_larger = levels[-2] < levels[-1]
        self.positions.append(_Position(index, name, kind, filters, srcs[-1], srcs[-2], prev_larger))
        srcs.append(index)
        levels.append(level)

    def _width(self, src: int) -> int:
        """Channels of the full-width output of a producer (-1: the stem)."""
        if src < 0:
            return 3 * self.filters
        return self.num_states * self.positions[src].filters

    # ------------------------------------------------------------------ build

    def _bank(self, rows, layout, name):
        regularizer = _BankL2(layout, self.weight_decay / 2.0) if self.weight_decay else None
        return self.add_weight(
            shape=(rows, _width(layout)), initializer=_BankInitializer(layout), name=name, regularizer=regularizer
        )

    def _row(self, b, k, idx, inputs=None):
        """Bank row of node ``b``, slot ``k``, input ``idx`` (``inputs``: rows per (node, slot))."""
        return (2 * b + k) * (inputs or self.max_inputs) + idx

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        self.stem_conv.build((None, height, width, input_shape[-1]))
        self.stem_bn.build((None, height, width, 3 * self.filters))
        # One bank per (position, op): a row per (node, slot, input). Node b has
        # b + 2 inputs; the rows past them are never read.
        self.sep_banks, self.ident_banks = {}, {}
        # How each position runs its chosen ops ("inlined" or "function"; see switch_branches).
        self.switch_branch_modes = {}
        rows = 2 * self.space.num_nodes * self.max_inputs
        levels = {-1: 0}
        for p in self.positions:
            x_level = levels[p.x_src]
            h_shape = (None, height >> x_level if height else None, width >> x_level if width else None)
            self.input_convs[p.name].build(h_shape + (self._width(p.x_src),))
            self.switch_branch_modes[p.name] = self._branch_mode(p, h_shape[1], h_shape[2])
            prev_level = levels[p.prev_src]
            prev_shape = (None, height >> prev_level if height else None, width >> prev_level if width else None)
            self.prev_adjust[p.name].build(prev_shape + (self._width(p.prev_src),))
            if p.kind == "reduction":
                for fr in self.state_reductions[p.name]:
                    fr.build(h_shape + (p.filters,))
            for op, size in _SEP_SIZES.items():
                if op in self.space.ops:
                    self.sep_banks[(p.name, op)] = self._bank(rows, _sep_layout(size, p.filters), f"{p.name}_{op}")
            if p.kind == "reduction" and "identity" in self.space.ops:
                # Read with stride 2 from the cell inputs only: a row per (node, slot, input 0 or 1).
                self.ident_banks[p.name] = self._bank(
                    2 * self.space.num_nodes * 2, _identity_layout(p.filters), f"{p.name}_identity"
                )
            levels[p.index] = x_level + (1 if p.kind == "reduction" else 0)
        self.classifier.build((None, self._width(self.positions[-1].index)))
        self.built = True

    # ------------------------------------------------------------------- ops

    def _position_rows(self, p, inputs):
        """Every node input's bank rows at position ``p``: one gather per bank.

        Args:
            p: the cell position.
            inputs: int vector of the input index of every (node, slot).

        Returns:
            One dict per (node, slot): op name -> its weights row.
        """
        sites = 2 * self.space.num_nodes
        rows = [{} for _ in range(sites)]
        for op in _SEP_SIZES:
            if (p.name, op) in self.sep_banks:
                got = tf.gather(self.sep_banks[(p.name, op)], self._row(tf.range(sites) // 2, tf.range(sites) % 2, inputs))
                for site, row in enumerate(tf.unstack(got, sites)):
                    rows[site][op] = row
        if p.name in self.ident_banks:
            index = self._row(tf.range(sites) // 2, tf.range(sites) % 2, tf.minimum(inputs, 1), inputs=2)
            for site, row in enumerate(tf.unstack(tf.gather(self.ident_banks[p.name], index), sites)):
                rows[site]["identity"] = row
        return rows

    def _op(self, op, x, rows, strides):
        """One candidate op on input ``x`` with its weights ``rows[op]``."""
        return _run_op(op, x, rows, strides, self.epsilon)

    def _merged_op(self, x, rows, op_id, strides):
        """All candidates as plain dataflow, the separable convs merged into one.

        The chosen separable conv's weights are selected (a 3x3 depthwise
        kernel zero-padded to 5x5 gives the same SAME-padded result), so one
        separable conv runs whatever the choice; the pools and the identity are
        computed too and the chosen output is kept by a one-hot sum. No branch
        functions.
        """
        ops = self.space.ops
        pick = tf.one_hot(op_id, len(ops), dtype=x.dtype)
        outs = []
        seps = [(i, op) for i, op in enumerate(ops) if op in _SEP_SIZES]
        if seps:
            size = max(_SEP_SIZES[op] for _, op in seps)
            units = [[0.0] * 4 for _ in range(2)]
            for i, op in seps:
                w = _unpack(rows[op], _sep_layout(_SEP_SIZES[op], x.shape[-1]))
                pad = (size - _SEP_SIZES[op]) // 2
                for u in range(2):
                    dw, pw, gamma, beta = w[4 * u : 4 * u + 4]
                    if pad:
                        dw = tf.pad(dw, [[pad, pad], [pad, pad], [0, 0], [0, 0]])
                    for j, v in enumerate((dw, pw, gamma, beta)):
                        units[u][j] += pick[i] * v
            y = _sep_apply(x, units, strides, self.epsilon)
            outs.append(tf.add_n([pick[i] for i, _ in seps]) * y)
        for i, op in enumerate(ops):
            if op not in _SEP_SIZES:
                outs.append(pick[i] * self._op(op, x, rows, strides))
        return tf.add_n(outs)

    @staticmethod
    def _pick(states, idx, offset):
        """State ``idx`` (states indexed from ``offset``) by a one-hot weighted sum.

        Plain dataflow (a few elementwise ops), no branch functions to trace
        and differentiate.
        """
        if len(states) == 1:
            return states[0]
        pick = tf.one_hot(idx - offset, len(states), dtype=states[0].dtype)
        return tf.add_n([s * pick[i] for i, s in enumerate(states)])

    def _branch(self, states, rows, idx, op_id, strides, offset):
        """The op ``op_id`` on state ``idx`` (``merged`` and ``all`` modes)."""
        x = self._pick(states, idx, offset)
        if self.op_selection == "merged":
            return self._merged_op(x, rows, op_id, strides)
        return tf.gather(tf.stack([self._op(op, x, rows, strides) for op in self.space.ops]), op_id)

    @staticmethod
    def _reduced(shape):
        half = [None if d is None else (d + 1) // 2 for d in shape[1:3]]
        return tf.TensorShape([shape[0]] + half + [shape[3]])

    def _node_input(self, p, states, rows, idx, op_id, state_list):
        if self.op_selection == "switch":
            weighted = [rows[op] for op in _weighted_ops(self.space.ops, p.kind)]
            fn = self._node_ops.get(p.kind, p.filters, self.switch_branch_modes[p.name] == "inlined")
            y = fn(idx, op_id, state_list.read(idx), *weighted)
            y.set_shape(states[-1].shape if p.kind == "normal" or len(states) > 2 else self._reduced(states[0].shape))
            return y
        # Reduction cell: the cell inputs (states 0, 1) are read with stride 2, the nodes with stride 1.
        if p.kind == "normal":
            groups = [(states, 0, 1)]
        elif len(states) == 2:
            groups = [(states, 0, 2)]
        else:
            groups = [(states[:2], 0, 2), (states[2:], 2, 1)]
        if len(groups) == 1:
            return self._branch(groups[0][0], rows, idx, op_id, groups[0][2], groups[0][1])
        (big, o_big, s_big), (small, o_small, s_small) = groups
        return tf.cond(
            idx < 2,
            lambda: self._branch(big, rows, idx, op_id, s_big, o_big),
            lambda: self._branch(small, rows, idx, op_id, s_small, o_small),
        )

    def _branch_mode(self, p, height, width) -> str:
        """``switch_branches`` at position ``p``, whose cell inputs are ``height`` x ``width`` (None: unknown)."""
        if self.switch_branches != "auto":
            return self.switch_branches
        small = height is not None and width is not None and height * width * p.filters <= self.SMALL_STATE_VALUES
        return "function" if small else "inlined"

    def _may_match(self, p) -> bool:
        """Whether some arch gives h_{i-1} exactly the filters of position ``p`` (no adjustment)."""
        f_prev = self.positions[p.prev_src].filters
        return p.filters % f_prev == 0 and 1 <= p.filters // f_prev <= self.num_states

    def _adjust_in_cond(self, p) -> bool:
        """Whether position ``p`` adjusts h_{i-1} inside a ``tf.cond`` (only when some arch skips the adjustment)."""
        return not (p.prev_larger or p.prev_src < 0 or not self._may_match(p))

    def control_flow_layers(self) -> list[keras.layers.Layer]:
        """The Keras layers called inside ``tf.cond`` / ``tf.switch_case``.

        Some h_{i-1} adjustments, and the reduction cells' factorized
        reductions of their inputs (run only for an input in the cell output).

        Their batch norm cannot use cross-replica statistics under a
        ``tf.distribute`` strategy (TensorFlow's cross-replica all-reduce
        needs a ``merge_call``, which a branch function does not allow), so a
        data-parallel step leaves them on per-replica statistics. The batch
        norm of the chosen ops (separable convs, the reduction identity) is
        computed in place from the current batch and is always per replica.
        """
        layers = [self.prev_adjust[p.name] for p in self.positions if self._adjust_in_cond(p)]
        return layers + [fr for p in self.positions if p.kind == "reduction" for fr in self.state_reductions[p.name]]

    def _reduced_state(self, p, i, state, unused):
        """Cell input ``i`` of reduction position ``p`` as the cell output holds it.

        Only an unused input is in the output (halved by a factorized
        reduction); a used one is left out of it, so a ``tf.cond`` skips its
        reduction and passes a tiny stand-in that is never read.
        """
        reduce = self.state_reductions[p.name][i]
        return tf.cond(
            unused,
            lambda: reduce(state, training=True),
            lambda: tf.zeros([tf.shape(state)[0], 1, 1, p.filters], state.dtype),
        )

    def _cell_output(self, p, states, unused):
        """The cell output as the child has it, and where its channels sit in the full width.

        Args:
            p: the cell position.
            states: the cell's ``B + 2`` states (a used one may be a stand-in).
            unused: float mask of the states in the output (at least one: the last node's is).

        Returns:
            ``(x, channels)``: the unused states concatenated on channels, and
            the index of each of its channels among the ``(B + 2) * F`` of the
            full width (the rows of the kernels that read it).
        """
        key = (p.filters, len(states))
        if key not in self._cell_output_fns:
            self._cell_output_fns[key] = _cell_output_fn(*key)
        x, channels = self._cell_output_fns[key](unused, *states)
        x.set_shape(states[-1].shape[:3].concatenate([None]))
        return x, channels

    def _adjust_prev(self, p, x, channels):
        layer = self.prev_adjust[p.name]
        if isinstance(layer, _FactorizedReduction):
            return layer.on_channels(x, channels, training=True)
        return _relu_conv_bn_on_channels(layer, x, channels, training=True)

    @staticmethod
    def _unused_mask(arch, layout, num_states):
        used = tf.zeros((num_states,), tf.float32)
        for node in layout:
            used += tf.one_hot(arch[node[0]], num_states) + tf.one_hot(arch[node[1]], num_states)
        return tf.cast(tf.equal(used, 0.0), tf.float32)

    # ------------------------------------------------------------------ call

    def call(self, images, arch, training=None):
        arch = tf.convert_to_tensor(arch, tf.int32)
        masks = {kind: self._unused_mask(arch, self._layout[kind], self.num_states) for kind in CELL_TYPES}
        stem = self.stem_bn(self.stem_conv(images), training=True)
        # A cell output (its unused states) and the channels of the full width it holds (None: all, the stem).
        outputs = {-1: (stem, None)}
        for p in self.positions:
            f = p.filters
            h = _relu_conv_bn_on_channels(self.input_convs[p.name], *outputs[p.x_src], training=True)
            prev, prev_channels = outputs[p.prev_src]
            if not self._adjust_in_cond(p):
                prev = self._adjust_prev(p, prev, prev_channels)
            else:
                # The child keeps h_{i-1} as is when its unused states already
                # have the cell's filter count.
                src = self.positions[p.prev_src]
                prev = tf.cond(
                    tf.equal(tf.reduce_sum(masks[src.kind]) * src.filters, float(f)),
                    lambda x=prev: tf.ensure_shape(x, [None, None, None, f]),
                    lambda x=prev, c=prev_channels: self._adjust_prev(p, x, c),
                )
            states = [h, prev]
            state_list = _StateList(f, h.dtype) if self.op_selection == "switch" else None
            if state_list is not None:
                state_list.push(h)
                state_list.push(prev)
            layout = self._layout[p.kind]
            inputs = tf.gather(arch, [node[k] for node in layout for k in range(2)])
            op_ids = tf.unstack(tf.gather(arch, [node[2 + k] for node in layout for k in range(2)]), len(layout) * 2)
            rows = self._position_rows(p, inputs)
            inputs = tf.unstack(inputs, len(layout) * 2)
            for b in range(len(layout)):
                parts = [
                    self._node_input(p, states, rows[2 * b + k], inputs[2 * b + k], op_ids[2 * b + k], state_list)
                    for k in range(2)
                ]
                states.append(parts[0] + parts[1])
                if state_list is not None:
                    state_list.push(states[-1])
            if p.kind == "reduction":
                for i in range(2):
                    states[i] = self._reduced_state(p, i, states[i], masks[p.kind][i] > 0)
            outputs[p.index] = self._cell_output(p, states, masks[p.kind])
        x, channels = outputs[self.positions[-1].index]
        x = tf.reduce_mean(tf.nn.relu(x), axis=[1, 2])
        if self.drop is not None:
            x = self.drop(x, training=training)
        # The classifier's rows for the channels the output holds.
        return tf.matmul(x, tf.gather(self.classifier.kernel, channels)) + self.classifier.bias

    # ---------------------------------------------------------- weight copy

    def copy_to_child(self, arch: NASNetArch, child: keras.Model) -> None:
        """Copies the weights of ``arch`` into its NASNet child (:func:`build_enas_micro_child`)."""
        self.space.to_tokens(arch)  # fails clearly if the arch is outside the space

        def rows(src):
            """Input-channel rows of the child's layers that read producer ``src``."""
            if src < 0:
                return np.arange(3 * self.filters)
            p = self.positions[src]
            cell = arch.cell(p.kind)
            return np.concatenate([np.arange(s * p.filters, (s + 1) * p.filters) for s in cell.concat])

        def set_conv(child_conv, kernel, r):
            child_conv.kernel.assign(_kernel_rows(kernel, r))

        def set_bn(child_bn, bn):
            for name in ("gamma", "beta", "moving_mean", "moving_variance"):
                getattr(child_bn, name).assign(getattr(bn, name))

        child.get_layer("stem_conv").set_weights(self.stem_conv.get_weights())
        child.get_layer("stem_bn").set_weights(self.stem_bn.get_weights())
        for p in self.positions:
            src = self.input_convs[p.name]
            dst = child.get_layer(f"{p.name}_input")
            set_conv(dst.conv, src.conv.kernel, rows(p.x_src))
            set_bn(dst.bn, src.bn)
            try:
                dst = child.get_layer(f"{p.name}_adjust_prev")
            except ValueError:
                dst = None  # the child reads h_{i-1} unadjusted
            if dst is not None:
                src = self.prev_adjust[p.name]
                r = rows(p.prev_src)
                if p.prev_larger:
                    set_conv(dst.conv_1, src.conv_1.kernel, r)
                    set_conv(dst.conv_2, src.conv_2.kernel, r)
                else:
                    set_conv(dst.conv, src.conv.kernel, r)
                set_bn(dst.bn, src.bn)
            if p.kind == "reduction":
                for i in range(2):
                    try:
                        child.get_layer(f"{p.name}_reduce_state{i}").set_weights(self.state_reductions[p.name][i].get_weights())
                    except ValueError:
                        pass  # state i is not in the cell output
            cell = arch.cell(p.kind)
            for b, block in enumerate(cell.blocks):
                for k, side in enumerate(("left", "right")):
                    op, idx = block.ops[k], block.inputs[k]
                    layer = child.get_layer(f"{p.name}_block{b}_{side}_{op}")
                    if op in _SEP_SIZES:
                        row = self.sep_banks[(p.name, op)].numpy()[self._row(b, k, idx)]
                        w = _unpack(row, _sep_layout(_SEP_SIZES[op], p.filters))
                        for u in range(2):
                            dw, pw, gamma, beta = w[4 * u : 4 * u + 4]
                            layer.convs[u].depthwise_kernel.assign(dw)
                            layer.convs[u].pointwise_kernel.assign(pw[None, None])
                            layer.bns[u].gamma.assign(gamma)
                            layer.bns[u].beta.assign(beta)
                    elif op == "identity" and layer.conv is not None:
                        row = self.ident_banks[p.name].numpy()[self._row(b, k, idx, inputs=2)]
                        conv, gamma, beta = _unpack(row, _identity_layout(p.filters))
                        layer.conv.kernel.assign(conv[None, None])
                        layer.bn.gamma.assign(gamma)
                        layer.bn.beta.assign(beta)
        dense = child.get_layer("logits")
        dense.kernel.assign(tf.gather(self.classifier.kernel, rows(self.positions[-1].index), axis=0))
        dense.bias.assign(self.classifier.bias)
