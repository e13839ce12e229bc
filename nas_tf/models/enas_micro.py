"""The ENAS micro supernet: every cell of the space, shared weights selected by index.

The supernet computes what :func:`~nas_tf.models.nasnet.build_nasnet`
computes for the arch given as an int token tensor (the ENAS micro space's
decision layout), on the CIFAR skeleton: stem 3x3 conv (3F) -> N normal cells
-> reduction -> N normal -> reduction -> N normal -> ReLU -> global pool ->
dropout -> dense. Copying the selected weights into the NASNet child gives
the same outputs (tested), so the derived arch is trained from scratch by the
NASNet builder (``scripts/train_final.py``) with nothing lost in translation.

**Sharing** follows the authors' code (PAPERS.md 3.4.3): every (cell
position, node, input slot, op) owns weights with a leading axis over the
input node it may read, and the sampled input index selects the row
(``nas_tf.ops.gather_matmul`` for the pointwise convs of the ``switch`` mode,
reading the row in place; ``tf.gather`` elsewhere). The input tensor is picked by a one-hot weighted sum of the
candidate states (a few elementwise ops, no branch function).

**Op selection** (``op_selection``):

* ``"switch"`` (default): only the chosen op runs (``tf.switch_case``): the
  fewest FLOPs and the fastest step (1.1-2.1x the static child at 32x32,
  docs/benchmarks.md), but TensorFlow builds branch functions and their
  gradients for every (position, node, slot): about 2 minutes of tracing and
  graph optimisation on 2 CPU cores, once per search.
* ``"merged"``: the separable convs share one code path whose weights are
  those of the chosen op (a 3x3 depthwise kernel zero-padded to 5x5 gives the
  same SAME-padded result), so one separable conv runs whatever the choice;
  the pools and identity are computed too and a one-hot sum keeps the chosen
  output. Plain dataflow: it traces in half the time, but each step is
  2.7-3.7x the child (the 5x5 depthwise and the pool gradients): for short
  runs on small images.
* ``"all"``: every candidate computed and one picked, as the authors' code
  does (for the benchmark).

**Cell output.** A cell concatenates its unused nodes: their number depends
on the arch, so the supernet concatenates *all* ``B + 2`` states, each
multiplied by its 0/1 "unused" mask -- a fixed width. Every layer that reads a
cell output (the next cells' 1x1 convs and factorized reductions, the
classifier) has a kernel over that full width; the child's kernel is its rows
for the unused states, which is the same function. When the child reads a
previous cell's output without adjusting it (exactly one unused state with
the cell's filter count) the supernet takes that state directly (a
``tf.cond``).

**Batch norm** always uses the statistics of the current batch (as the
authors' search): moving averages would mix the statistics of every sampled
architecture, and a reward is measured with the statistics of its own
validation batch.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from nas_tf.layers.cell_ops import FactorizedReduction, ReLUConvBN
from nas_tf.models.nasnet import build_nasnet
from nas_tf.ops import gather_matmul
from nas_tf.spaces.enas_micro import EnasMicroSpace
from nas_tf.spaces.nasnet import CELL_TYPES, NASNetArch

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


def _pointwise(x, bank, idx):
    """1x1 conv of NHWC ``x`` with ``bank[idx]`` ([F_in, F_out]), read in place by nas_tf.ops.gather_matmul."""
    shape = tf.shape(x)
    y = gather_matmul(tf.reshape(x, [-1, x.shape[-1]]), bank, idx)
    return tf.reshape(y, tf.concat([shape[:-1], [bank.shape[-1]]], 0))


def _bn_train(x, gamma, beta, epsilon):
    mean, var = tf.nn.moments(x, axes=[0, 1, 2])
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, epsilon)


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
    """

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
        **kwargs,
    ):
        super().__init__(**kwargs)
        if op_selection not in ("switch", "merged", "all"):
            raise ValueError(f"op_selection must be 'switch', 'merged' or 'all', got {op_selection!r}")
        if filters < 2 or num_cells < 1 or num_classes < 1:
            raise ValueError(f"need filters >= 2, num_cells >= 1, num_classes >= 1; got {filters}, {num_cells}, {num_classes}")
        self.space = space
        self.num_classes = num_classes
        self.filters = filters
        self.num_cells = num_cells
        self.op_selection = op_selection
        self.epsilon = batch_norm_epsilon
        self.weight_decay = weight_decay
        self.num_states = space.num_nodes + 2
        self._layout = space.token_layout()
        self.regularizer = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
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
                self.prev_adjust[p.name] = FactorizedReduction(p.filters, 2, relu=True, name=f"{p.name}_adjust_prev", **settings)
            else:
                self.prev_adjust[p.name] = ReLUConvBN(p.filters, 1, name=f"{p.name}_adjust_prev", **settings)
            if p.kind == "reduction":
                self.state_reductions[p.name] = [
                    FactorizedReduction(p.filters, 2, name=f"{p.name}_reduce_state{i}", **settings) for i in range(2)
                ]
        self.drop = keras.layers.Dropout(dropout, name="dropout") if dropout else None
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=self.regularizer, name="logits")

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

    def _shared(self, shape, name, initializer="he_normal", regularize=True):
        return self.add_weight(
            shape=shape, initializer=initializer, name=name, regularizer=self.regularizer if regularize else None
        )

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        self.stem_conv.build((None, height, width, input_shape[-1]))
        self.stem_bn.build((None, height, width, 3 * self.filters))
        self.sep, self.ident = {}, {}
        levels = {-1: 0}
        for p in self.positions:
            x_level = levels[p.x_src]
            h_shape = (None, height >> x_level if height else None, width >> x_level if width else None)
            self.input_convs[p.name].build(h_shape + (self._width(p.x_src),))
            prev_level = levels[p.prev_src]
            prev_shape = (None, height >> prev_level if height else None, width >> prev_level if width else None)
            self.prev_adjust[p.name].build(prev_shape + (self._width(p.prev_src),))
            if p.kind == "reduction":
                for fr in self.state_reductions[p.name]:
                    fr.build(h_shape + (p.filters,))
            f = p.filters
            for b in range(self.space.num_nodes):
                n_in = b + 2
                for k in range(2):
                    key = (p.name, b, k)
                    for op, size in _SEP_SIZES.items():
                        if op not in self.space.ops:
                            continue
                        units = []
                        for u in range(2):
                            tag = f"{p.name}_n{b}_s{k}_{op}_{u}"
                            units.append(
                                (
                                    self._shared((n_in, size, size, f, 1), tag + "_depthwise"),
                                    self._shared((n_in, f, f), tag + "_pointwise"),
                                    self._shared((n_in, f), tag + "_gamma", "ones", False),
                                    self._shared((n_in, f), tag + "_beta", "zeros", False),
                                )
                            )
                        self.sep[key + (op,)] = units
                    if p.kind == "reduction" and "identity" in self.space.ops:
                        tag = f"{p.name}_n{b}_s{k}_identity"
                        self.ident[key] = (
                            self._shared((2, f, f), tag + "_conv"),
                            self._shared((2, f), tag + "_gamma", "ones", False),
                            self._shared((2, f), tag + "_beta", "zeros", False),
                        )
            levels[p.index] = x_level + (1 if p.kind == "reduction" else 0)
        self.classifier.build((None, self._width(self.positions[-1].index)))
        self.built = True

    # ------------------------------------------------------------------- ops

    def _op(self, op, x, key, idx, strides):
        """One candidate op on input ``x`` (read from state ``idx``) with the row ``idx`` of its weights."""
        if op in _SEP_SIZES:
            for u, (dw, pw, gamma, beta) in enumerate(self.sep[key + (op,)]):
                s = strides if u == 0 else 1
                x = tf.nn.relu(x)
                x = tf.nn.depthwise_conv2d(x, tf.gather(dw, idx), [1, s, s, 1], "SAME")
                x = _pointwise(x, pw, idx)
                x = _bn_train(x, tf.gather(gamma, idx), tf.gather(beta, idx), self.epsilon)
            return x
        if op == "avg_pool_3x3":
            return tf.nn.avg_pool2d(x, 3, strides, "SAME")
        if op == "max_pool_3x3":
            return tf.nn.max_pool2d(x, 3, strides, "SAME")
        if op == "identity":
            if strides == 1:
                return x
            conv, gamma, beta = self.ident[key]
            x = tf.nn.conv2d(tf.nn.relu(x), tf.gather(conv, idx)[None, None], strides, "SAME")
            return _bn_train(x, tf.gather(gamma, idx), tf.gather(beta, idx), self.epsilon)
        raise ValueError(f"unknown ENAS micro op {op!r}")  # pragma: no cover

    def _merged_op(self, x, key, idx, op_id, strides):
        """All candidates as plain dataflow, the separable convs merged into one.

        The chosen separable conv's weights are selected (a 3x3 depthwise
        kernel zero-padded to 5x5 gives the same SAME-padded result), so one
        separable conv runs whatever the choice; the pools and the identity are
        computed too and the chosen output is kept by a one-hot sum. No branch
        functions: the train step traces in seconds instead of minutes.
        """
        ops = self.space.ops
        pick = tf.one_hot(op_id, len(ops), dtype=x.dtype)
        outs = []
        seps = [(i, op) for i, op in enumerate(ops) if op in _SEP_SIZES]
        if seps:
            size = max(_SEP_SIZES[op] for _, op in seps)
            y = x
            for u in range(2):
                s = strides if u == 0 else 1
                dw = pw = gamma = beta = 0.0
                for i, op in seps:
                    d, p, g, b = self.sep[key + (op,)][u]
                    pad = (size - _SEP_SIZES[op]) // 2
                    d = tf.gather(d, idx)
                    if pad:
                        d = tf.pad(d, [[pad, pad], [pad, pad], [0, 0], [0, 0]])
                    dw += pick[i] * d
                    pw += pick[i] * tf.gather(p, idx)
                    gamma += pick[i] * tf.gather(g, idx)
                    beta += pick[i] * tf.gather(b, idx)
                y = tf.nn.relu(y)
                y = tf.nn.depthwise_conv2d(y, dw, [1, s, s, 1], "SAME")
                y = tf.nn.conv2d(y, pw[None, None], 1, "SAME")
                y = _bn_train(y, gamma, beta, self.epsilon)
            outs.append(tf.add_n([pick[i] for i, _ in seps]) * y)
        for i, op in enumerate(ops):
            if op not in _SEP_SIZES:
                outs.append(pick[i] * self._op(op, x, key, idx, strides))
        return tf.add_n(outs)

    def _branch(self, states, key, idx, op_id, strides, offset):
        """The op ``op_id`` on state ``idx`` (states indexed from ``offset``).

        The input is picked by a one-hot weighted sum of the states (plain
        dataflow: a few elementwise ops, no branch functions to trace and
        differentiate), then one switch over the ops runs only the chosen one.
        """
        if len(states) > 1:
            pick = tf.one_hot(idx - offset, len(states), dtype=states[0].dtype)
            x = tf.add_n([s * pick[i] for i, s in enumerate(states)])
        else:
            x = states[0]
        if self.op_selection == "merged":
            return self._merged_op(x, key, idx, op_id, strides)
        branches = [lambda op=op: self._op(op, x, key, idx, strides) for op in self.space.ops]
        if self.op_selection == "switch":
            return tf.switch_case(op_id, branches)
        return tf.gather(tf.stack([f() for f in branches]), op_id)

    def _node_input(self, p, states, key, idx, op_id):
        if p.kind == "normal":
            return self._branch(states, key, idx, op_id, 1, 0)
        # Reduction cell: the cell inputs (states 0, 1) are read with stride 2.
        if len(states) == 2:
            return self._branch(states, key, idx, op_id, 2, 0)
        return tf.cond(
            idx < 2,
            lambda: self._branch(states[:2], key, idx, op_id, 2, 0),
            lambda: self._branch(states[2:], key, idx, op_id, 1, 2),
        )

    def _may_match(self, p) -> bool:
        """Whether some arch gives h_{i-1} exactly the filters of position ``p`` (no adjustment)."""
        f_prev = self.positions[p.prev_src].filters
        return p.filters % f_prev == 0 and 1 <= p.filters // f_prev <= self.num_states

    def _adjust_in_cond(self, p) -> bool:
        """Whether position ``p`` adjusts h_{i-1} inside a ``tf.cond`` (only when some arch skips the adjustment)."""
        return not (p.prev_larger or p.prev_src < 0 or not self._may_match(p))

    def control_flow_layers(self) -> list[keras.layers.Layer]:
        """The Keras layers called inside ``tf.cond`` / ``tf.switch_case`` (some h_{i-1} adjustments).

        Their batch norm cannot use cross-replica statistics under a
        ``tf.distribute`` strategy (TensorFlow's cross-replica all-reduce
        needs a ``merge_call``, which a branch function does not allow), so a
        data-parallel step leaves them on per-replica statistics. The batch
        norm of the chosen ops (separable convs, the reduction identity) is
        computed in place from the current batch and is always per replica.
        """
        return [self.prev_adjust[p.name] for p in self.positions if self._adjust_in_cond(p)]

    def _compact(self, full, mask, width, channels):
        """The unused states of a full-width cell output, concatenated (the child's layout)."""
        keep = tf.repeat(mask > 0, width)
        return tf.ensure_shape(tf.boolean_mask(full, keep, axis=3), [None, None, None, channels])

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
        outputs = {-1: stem}
        for p in self.positions:
            f = p.filters
            h = self.input_convs[p.name](outputs[p.x_src], training=True)
            prev = outputs[p.prev_src]
            adjust = self.prev_adjust[p.name]
            if not self._adjust_in_cond(p):
                prev = adjust(prev, training=True)
            else:
                # The child keeps h_{i-1} as is when its unused states already
                # have the cell's filter count: take them out of the full width.
                src = self.positions[p.prev_src]
                src_mask = masks[src.kind]
                full = prev
                prev = tf.cond(
                    tf.equal(tf.reduce_sum(src_mask) * src.filters, float(f)),
                    lambda: self._compact(full, src_mask, src.filters, f),
                    lambda: adjust(full, training=True),
                )
            states = [h, prev]
            for b, node in enumerate(self._layout[p.kind]):
                parts = []
                for k in range(2):
                    parts.append(self._node_input(p, states, (p.name, b, k), arch[node[k]], arch[node[2 + k]]))
                states.append(parts[0] + parts[1])
            if p.kind == "reduction":
                states[0] = self.state_reductions[p.name][0](states[0], training=True)
                states[1] = self.state_reductions[p.name][1](states[1], training=True)
            mask = masks[p.kind]
            outputs[p.index] = tf.concat([s * mask[i] for i, s in enumerate(states)], axis=-1)
        x = tf.reduce_mean(tf.nn.relu(outputs[self.positions[-1].index]), axis=[1, 2])
        if self.drop is not None:
            x = self.drop(x, training=training)
        return self.classifier(x)

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
            child_conv.kernel.assign(tf.gather(kernel, r, axis=2))

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
                    key = (p.name, b, k)
                    if op in _SEP_SIZES:
                        for u, (dw, pw, gamma, beta) in enumerate(self.sep[key + (op,)]):
                            layer.convs[u].depthwise_kernel.assign(dw[idx])
                            layer.convs[u].pointwise_kernel.assign(pw[idx][None, None])
                            layer.bns[u].gamma.assign(gamma[idx])
                            layer.bns[u].beta.assign(beta[idx])
                    elif op == "identity" and layer.conv is not None:
                        conv, gamma, beta = self.ident[key]
                        layer.conv.kernel.assign(conv[idx][None, None])
                        layer.bn.gamma.assign(gamma[idx])
                        layer.bn.beta.assign(beta[idx])
        dense = child.get_layer("logits")
        dense.kernel.assign(tf.gather(self.classifier.kernel, rows(self.positions[-1].index), axis=0))
        dense.bias.assign(self.classifier.bias)
