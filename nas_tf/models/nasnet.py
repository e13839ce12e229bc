"""NASNet networks: cells of a ``nasnet`` arch stacked into CIFAR or ImageNet skeletons.

A network is written ``N @ P``: N normal cells per stage, P filters in the
penultimate layer. As in Keras' NASNet port, P = 24 F where F is the number
of filters of the first stage's cells (exact for NASNet-A, whose normal cell
concatenates 6 states, times 4 for the last stage's filters).

* **CIFAR skeleton**: 3x3 conv stem (``stem_multiplier`` x F filters) ->
  N normal cells -> reduction cell -> N normal -> reduction -> N normal.
* **ImageNet skeleton**: 3x3 conv with stride 2 ("valid") -> two reduction
  cells as stem cells (F/4 and F/2 filters) -> the same three stages.

Filters double at each reduction (``filter_scaling_rate``). Each cell reads
the outputs of the two previous cells, ``h_i`` and ``h_{i-1}``; ``h_i`` always
goes through ReLU -> 1x1 conv -> BN, and ``h_{i-1}`` is adjusted to the cell's
shape (factorized reduction if it is larger, ReLU -> 1x1 conv -> BN if only the
channels differ) -- the released code's ``_cell_base``. With
``skip_reduction`` (NASNet-A Large) the normal cell after a reduction reads as
``h_{i-1}`` the reduction cell's own ``h_{i-1}``. States concatenated into a
cell's output that are larger than the output are factorized-reduced; cell
inputs with another channel count get a 1x1 conv.

Training aids of the paper: ScheduledDropPath on every op but identity
(:mod:`nas_tf.layers.drop_path`; cells numbered from the first stem cell,
total = 3N + 2, + 2 stem cells on ImageNet), an auxiliary head after the last
normal cell of the second stage (the model then outputs
``[logits, aux_logits]``; the training loop weighs the auxiliary loss, 0.4),
and dropout before the classifier.

:func:`nasnet_a_mobile`, :func:`nasnet_a_large` and :func:`nasnet_a_cifar`
build NASNet-A with the settings of the released code; with the Keras
settings and no auxiliary head, Mobile and Large have exactly the parameter
counts of ``keras.applications.NASNetMobile`` / ``NASNetLarge``.
"""

from __future__ import annotations

from typing import Any

import keras

from nas_tf.layers.cell_ops import FactorizedReduction, ReLUConvBN, cell_op
from nas_tf.layers.drop_path import ScheduledDropPath
from nas_tf.models.registry import register_image_builder
from nas_tf.spaces.nasnet import NASNetArch, NASNetCell, nasnet_a
from nas_tf.utils.checks import positive_int

SKELETONS = ("cifar", "imagenet")


class _State:
    """A tensor and its resolution level (number of halvings since the stem)."""

    def __init__(self, tensor, level: int):
        self.tensor = tensor
        self.level = level

    @property
    def channels(self) -> int:
        return int(self.tensor.shape[-1])


class _Builder:
    """Builds the cells of one network (shared settings, cell numbering, names)."""

    def __init__(
        self,
        drop_path_keep_prob: float,
        total_cells: int,
        layer_settings: dict[str, Any],
        adjust_first_prev: bool = False,
    ):
        self.adjust_first_prev = adjust_first_prev
        self.drop_path_keep_prob = drop_path_keep_prob
        self.total_cells = total_cells
        self.settings = layer_settings
        self.cell_index = 0

    def cell(self, cell: NASNetCell, x: _State, prev: _State | None, filters: int, reduction: bool, name: str) -> _State:
        s = self.settings
        first = prev is None
        if first:
            prev = x
        if first and not self.adjust_first_prev:
            pass  # the released code and Keras read the stem unadjusted in the first cell
        elif prev.level < x.level:
            if x.level - prev.level != 1:
                raise ValueError(f"{name}: h_i-1 is {x.level - prev.level} reductions larger than h_i")
            prev = _State(FactorizedReduction(filters, 2, relu=True, name=f"{name}_adjust_prev", **s)(prev.tensor), x.level)
        elif prev.channels != filters:
            prev = _State(ReLUConvBN(filters, 1, name=f"{name}_adjust_prev", **s)(prev.tensor), x.level)
        h = _State(ReLUConvBN(filters, 1, name=f"{name}_input", **s)(x.tensor), x.level)
        out_level = x.level + 1 if reduction else x.level
        states = [h, prev]
        for b, block in enumerate(cell.blocks):
            outputs = []
            for k, side in enumerate(("left", "right")):
                state = states[block.inputs[k]]
                op = block.ops[k]
                strides = 2 if state.level < out_level else 1
                y = cell_op(op, filters, strides, layer_name=f"{name}_block{b}_{side}_{op}", **s)(state.tensor)
                if op != "identity" and self.drop_path_keep_prob < 1.0:
                    y = ScheduledDropPath(
                        self.drop_path_keep_prob, self.cell_index, self.total_cells, name=f"{name}_block{b}_{side}_drop_path"
                    )(y)
                outputs.append(y)
            if block.combine == "add":
                y = keras.layers.Add(name=f"{name}_block{b}_add")(outputs)
            else:
                y = keras.layers.Concatenate(axis=-1, name=f"{name}_block{b}_concat")(outputs)
            states.append(_State(y, out_level))
        parts = []
        for i in cell.concat:
            state = states[i]
            if state.level < out_level:
                t = FactorizedReduction(filters, 2, name=f"{name}_reduce_state{i}", **s)(state.tensor)
            elif i < 2 and state.channels != filters:
                t = FactorizedReduction(filters, 1, name=f"{name}_reduce_state{i}", **s)(state.tensor)
            else:
                t = state.tensor
            parts.append(t)
        out = parts[0] if len(parts) == 1 else keras.layers.Concatenate(axis=-1, name=f"{name}_output")(parts)
        self.cell_index += 1
        return _State(out, out_level)


def _aux_head(x, num_classes: int, settings: dict[str, Any], regularizer, name: str = "aux"):
    """ReLU -> avg pool 5x5/3 -> 1x1 conv 128 -> BN -> ReLU -> conv (whole map) 768 -> BN -> ReLU -> FC."""
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError("the auxiliary head needs a static input height and width")
    bn = dict(momentum=settings["batch_norm_momentum"], epsilon=settings["batch_norm_epsilon"])
    conv = dict(use_bias=False, kernel_initializer=settings["kernel_initializer"], kernel_regularizer=regularizer)
    x = keras.layers.ReLU(name=f"{name}_relu_0")(x)
    # Maps smaller than the 5x5 window (tiny inputs) are pooled whole.
    pool = (min(5, height), min(5, width))
    x = keras.layers.AveragePooling2D(pool, strides=3, padding="valid", name=f"{name}_pool")(x)
    x = keras.layers.Conv2D(128, 1, name=f"{name}_proj", **conv)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn_0", **bn)(x)
    x = keras.layers.ReLU(name=f"{name}_relu_1")(x)
    x = keras.layers.Conv2D(768, tuple(x.shape[1:3]), padding="valid", name=f"{name}_conv", **conv)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn_1", **bn)(x)
    x = keras.layers.ReLU(name=f"{name}_relu_2")(x)
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    return keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name=f"{name}_logits")(x)


def build_nasnet(
    arch: NASNetArch,
    input_shape: tuple,
    num_classes: int,
    *,
    num_cells: int = 6,
    num_conv_filters: int | None = None,
    penultimate_filters: int | None = None,
    skeleton: str = "cifar",
    stem_multiplier: float = 3.0,
    stem_filters: int | None = None,
    filter_scaling_rate: float = 2.0,
    skip_reduction: bool = False,
    drop_path_keep_prob: float = 1.0,
    aux_head: bool = False,
    dropout: float = 0.0,
    weight_decay: float = 5e-4,
    batch_norm_momentum: float = 0.9,
    batch_norm_epsilon: float = 1e-5,
    kernel_initializer: Any = "he_normal",
    adjust_first_prev: bool = False,
    include_top: bool = True,
    pooling: str | None = None,
    classifier_activation: str | None = None,
    name: str = "nasnet",
) -> keras.Model:
    """Builds a NASNet network from the cells of ``arch``.

    Args:
        arch: the normal and reduction cells.
        input_shape: ``(H, W, C)``; H and W may be None (fully convolutional,
            without auxiliary head).
        num_classes: classes of the classifier (and of the auxiliary head).
        num_cells: N, normal cells per stage (3 stages).
        num_conv_filters: F, filters of the first stage's cells (default 32,
            or ``penultimate_filters // 24``).
        penultimate_filters: P of ``N @ P`` (F = P // 24); not together with
            ``num_conv_filters``.
        skeleton: ``"cifar"`` or ``"imagenet"``.
        stem_multiplier: stem filters = ``stem_multiplier`` x F (CIFAR) or
            ``stem_multiplier`` x 32 (ImageNet), as in the released code.
        stem_filters: explicit stem filters (overrides ``stem_multiplier``).
        filter_scaling_rate: filter growth at each reduction.
        skip_reduction: the normal cell after a reduction reads the
            reduction cell's ``h_{i-1}`` (NASNet-A Large).
        drop_path_keep_prob: ScheduledDropPath base keep probability (1: off).
        aux_head: add the auxiliary head (the model outputs
            ``[logits, aux_logits]``).
        dropout: dropout rate before the classifier.
        weight_decay: L2 weight decay of all kernels (the gradient of the
            penalty is ``weight_decay * w``).
        batch_norm_momentum: batch-norm moving-average momentum.
        batch_norm_epsilon: batch-norm epsilon.
        kernel_initializer: initializer of the conv kernels.
        adjust_first_prev: in the first cell, where ``h_{i-1}`` is the stem
            itself, adjust it to the cell's filters like any other
            ``h_{i-1}`` (ReLU -> 1x1 conv -> BN; the ENAS code does this). Off:
            the released code and Keras, which read the raw stem there.
        include_top: end with global pooling and the classifier; otherwise
            the last cell's activations (see ``pooling``).
        pooling: without top, ``None`` (4-D output), ``"avg"`` or ``"max"``.
        classifier_activation: activation of the classifier (None: logits,
            what nas_tf's training loops expect).
        name: model name.

    Returns:
        The ``keras.Model``.

    Example:

    >>> import nas_tf
    >>> model = build_nasnet(nas_tf.load_arch("nasnet_a"), (32, 32, 3), 10, num_cells=6, num_conv_filters=32)
    >>> model.count_params()  # NASNet-A 6 @ 768: 3.35M trainable (+ batch-norm statistics)
    3383786
    """
    if not isinstance(arch, NASNetArch):
        raise TypeError(f"build_nasnet needs a nasnet arch, got {type(arch).__name__}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] is None:
        raise ValueError(f"input_shape must be (height, width, channels) with known channels, got {input_shape}")
    num_classes = positive_int("num_classes", num_classes)
    num_cells = positive_int("num_cells", num_cells)
    if skeleton not in SKELETONS:
        raise ValueError(f"skeleton must be one of {', '.join(SKELETONS)}, got {skeleton!r}")
    if num_conv_filters is not None and penultimate_filters is not None:
        raise ValueError("give num_conv_filters or penultimate_filters, not both")
    if penultimate_filters is not None:
        penultimate_filters = positive_int("penultimate_filters", penultimate_filters)
        if penultimate_filters % 24:
            raise ValueError(f"penultimate_filters must be a multiple of 24, got {penultimate_filters}")
        filters = penultimate_filters // 24
    else:
        filters = positive_int("num_conv_filters", 32 if num_conv_filters is None else num_conv_filters)
    if stem_filters is not None:
        stem_filters = positive_int("stem_filters", stem_filters)
    elif stem_multiplier <= 0:
        raise ValueError(f"stem_multiplier must be > 0, got {stem_multiplier}")
    if filter_scaling_rate <= 0:
        raise ValueError(f"filter_scaling_rate must be > 0, got {filter_scaling_rate}")
    if not 0.0 < drop_path_keep_prob <= 1.0:
        raise ValueError(f"drop_path_keep_prob must be in (0, 1], got {drop_path_keep_prob}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")

    regularizer = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
    settings = dict(
        batch_norm_momentum=batch_norm_momentum,
        batch_norm_epsilon=batch_norm_epsilon,
        kernel_initializer=kernel_initializer,
        kernel_regularizer=regularizer,
    )
    bn = dict(momentum=batch_norm_momentum, epsilon=batch_norm_epsilon)
    imagenet = skeleton == "imagenet"
    total_cells = 3 * num_cells + 2 + (2 if imagenet else 0)
    cells = _Builder(drop_path_keep_prob, total_cells, settings, adjust_first_prev)

    def scaled(scale: float) -> int:
        return max(1, int(filters * scale))

    images = keras.Input(input_shape, name="images")
    if imagenet:
        n_stem = stem_filters or int(32 * stem_multiplier)
        x = keras.layers.Conv2D(
            n_stem, 3, strides=2, padding="valid", use_bias=False, kernel_initializer=kernel_initializer,
            kernel_regularizer=regularizer, name="stem_conv",
        )(images)
        x = keras.layers.BatchNormalization(name="stem_bn", **bn)(x)
        outputs: list[_State | None] = [None, _State(x, 0)]
        scale = 1.0 / filter_scaling_rate**2
        for i in range(2):
            out = cells.cell(arch.reduction, outputs[-1], outputs[-2], scaled(scale), True, f"stem_cell_{i}")
            outputs.append(out)
            scale *= filter_scaling_rate
    else:
        n_stem = stem_filters or int(filters * stem_multiplier)
        x = keras.layers.Conv2D(
            n_stem, 3, padding="same", use_bias=False, kernel_initializer=kernel_initializer,
            kernel_regularizer=regularizer, name="stem_conv",
        )(images)
        x = keras.layers.BatchNormalization(name="stem_bn", **bn)(x)
        outputs = [None, _State(x, 0)]

    aux_logits = None
    scale = 1.0
    normal_index = 0
    for stage in range(3):
        skip_prev = None
        if stage > 0:
            scale *= filter_scaling_rate
            skip_prev = outputs[-2]
            out = cells.cell(arch.reduction, outputs[-1], outputs[-2], scaled(scale), True, f"reduction_cell_{stage - 1}")
            outputs.append(out)
        for i in range(num_cells):
            prev = skip_prev if (skip_reduction and stage > 0 and i == 0) else outputs[-2]
            out = cells.cell(arch.normal, outputs[-1], prev, scaled(scale), False, f"normal_cell_{normal_index}")
            outputs.append(out)
            normal_index += 1
        if stage == 1 and aux_head and include_top:
            aux_logits = _aux_head(outputs[-1].tensor, num_classes, settings, regularizer)

    x = keras.layers.ReLU(name="final_relu")(outputs[-1].tensor)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.Dense(
            num_classes, activation=classifier_activation, kernel_regularizer=regularizer, name="logits"
        )(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="global_pool")(x)
    out = [x, aux_logits] if aux_logits is not None else x
    return keras.Model(images, out, name=name)


register_image_builder("nasnet", build_nasnet)


def nasnet_cell(
    cell: NASNetCell,
    inputs,
    prev_inputs=None,
    *,
    filters: int,
    reduction: bool = False,
    prev_is_larger: bool = False,
    name: str = "cell",
    drop_path_keep_prob: float = 1.0,
    cell_index: int = 0,
    total_cells: int = 1,
    **settings: Any,
):
    """Applies one cell to Keras tensors (functional API).

    Args:
        cell: the cell (``arch.normal`` or ``arch.reduction``).
        inputs: ``h_i``, the previous cell's output.
        prev_inputs: ``h_{i-1}`` (None: ``h_i`` is used for both).
        filters: F of the cell.
        reduction: build it as a reduction cell (ops on the cell inputs use
            stride 2).
        prev_is_larger: ``h_{i-1}`` has twice the height and width of ``h_i``.
        name: prefix of the layer names.
        drop_path_keep_prob: ScheduledDropPath keep probability (1: off).
        cell_index: index of the cell for ScheduledDropPath.
        total_cells: number of cells for ScheduledDropPath.
        **settings: settings of the op layers
            (:class:`~nas_tf.layers.cell_ops.CellOpLayer`).

    Returns:
        The cell's output tensor.

    Example:

    >>> import nas_tf
    >>> x = keras.Input((8, 8, 16))
    >>> nasnet_cell(nas_tf.load_arch("nasnet_a").reduction, x, filters=16, reduction=True).shape
    (None, 4, 4, 64)
    """
    builder = _Builder(drop_path_keep_prob, total_cells, settings)
    builder.cell_index = cell_index
    x = _State(inputs, 1)
    prev = None if prev_inputs is None else _State(prev_inputs, 0 if prev_is_larger else 1)
    return builder.cell(cell, x, prev, positive_int("filters", filters), reduction, name).tensor


# ------------------------------------------------------------------ presets


def _preset(defaults: dict[str, Any], input_shape, include_top, classes, pooling, **options) -> keras.Model:
    shape = tuple(input_shape) if input_shape is not None else defaults.pop("input_shape")
    defaults.pop("input_shape", None)
    defaults.update(options)
    return build_nasnet(nasnet_a(), shape, classes, include_top=include_top, pooling=pooling, **defaults)


def nasnet_a_mobile(
    input_shape: tuple | None = None,
    include_top: bool = True,
    classes: int = 1000,
    pooling: str | None = None,
    aux_head: bool = False,
    drop_path_keep_prob: float = 1.0,
    dropout: float = 0.5,
    weight_decay: float = 4e-5,
    classifier_activation: str | None = None,
    name: str = "nasnet_a_mobile",
) -> keras.Model:
    """NASNet-A Mobile (4 @ 1056, ImageNet skeleton, 224 x 224 inputs).

    With the defaults (no auxiliary head) the parameter count equals
    ``keras.applications.NASNetMobile(weights=None)``: 5,326,716 with the
    1000-class top. Settings of the released code: stem 32 filters, batch norm
    momentum 0.9997 and epsilon 1e-3, dropout 0.5, no drop path.

    Args:
        input_shape: default ``(224, 224, 3)``.
        include_top: end with the classifier.
        classes: classes of the classifier.
        pooling: without top: None, ``"avg"`` or ``"max"``.
        aux_head: add the auxiliary head (outputs ``[logits, aux_logits]``).
        drop_path_keep_prob: ScheduledDropPath keep probability (1: off).
        dropout: dropout rate before the classifier.
        weight_decay: L2 weight decay.
        classifier_activation: None (logits, the default here) or e.g.
            ``"softmax"`` (keras.applications' default).
        name: model name.

    Example:

    >>> nasnet_a_mobile().count_params()  # doctest: +SKIP
    5326716
    """
    defaults = dict(
        input_shape=(224, 224, 3), num_cells=4, penultimate_filters=1056, skeleton="imagenet", stem_filters=32,
        skip_reduction=False, batch_norm_momentum=0.9997, batch_norm_epsilon=1e-3,
    )
    return _preset(
        defaults, input_shape, include_top, classes, pooling, aux_head=aux_head,
        drop_path_keep_prob=drop_path_keep_prob, dropout=dropout, weight_decay=weight_decay,
        classifier_activation=classifier_activation, name=name,
    )


def nasnet_a_large(
    input_shape: tuple | None = None,
    include_top: bool = True,
    classes: int = 1000,
    pooling: str | None = None,
    aux_head: bool = False,
    drop_path_keep_prob: float = 0.7,
    dropout: float = 0.5,
    weight_decay: float = 5e-5,
    classifier_activation: str | None = None,
    name: str = "nasnet_a_large",
) -> keras.Model:
    """NASNet-A Large (6 @ 4032, ImageNet skeleton, 331 x 331 inputs, skip_reduction).

    With the defaults (no auxiliary head) the parameter count equals
    ``keras.applications.NASNetLarge(weights=None)``: 88,949,818 with the
    1000-class top (drop path adds no parameters). Settings of the released
    code: stem 96 filters, batch norm 0.9997 / 1e-3, drop-path keep 0.7,
    dropout 0.5. Arguments as :func:`nasnet_a_mobile`.
    """
    defaults = dict(
        input_shape=(331, 331, 3), num_cells=6, penultimate_filters=4032, skeleton="imagenet", stem_filters=96,
        skip_reduction=True, batch_norm_momentum=0.9997, batch_norm_epsilon=1e-3,
    )
    return _preset(
        defaults, input_shape, include_top, classes, pooling, aux_head=aux_head,
        drop_path_keep_prob=drop_path_keep_prob, dropout=dropout, weight_decay=weight_decay,
        classifier_activation=classifier_activation, name=name,
    )


def nasnet_a_cifar(
    input_shape: tuple | None = None,
    include_top: bool = True,
    classes: int = 10,
    pooling: str | None = None,
    aux_head: bool = False,
    drop_path_keep_prob: float = 0.6,
    dropout: float = 0.0,
    weight_decay: float = 5e-4,
    classifier_activation: str | None = None,
    name: str = "nasnet_a_cifar",
) -> keras.Model:
    """NASNet-A 6 @ 768 for CIFAR-10 (32 x 32 inputs), about 3.3M parameters.

    Settings of the released code: F = 32, stem 96 filters (stem multiplier
    3), batch norm 0.9 / 1e-5, drop-path keep 0.6, L2 5e-4 (it trained with
    the auxiliary head, weight 0.4: pass ``aux_head=True``). Arguments as
    :func:`nasnet_a_mobile`.
    """
    defaults = dict(
        input_shape=(32, 32, 3), num_cells=6, penultimate_filters=768, skeleton="cifar", stem_multiplier=3.0,
        skip_reduction=False, batch_norm_momentum=0.9, batch_norm_epsilon=1e-5,
    )
    return _preset(
        defaults, input_shape, include_top, classes, pooling, aux_head=aux_head,
        drop_path_keep_prob=drop_path_keep_prob, dropout=dropout, weight_decay=weight_decay,
        classifier_activation=classifier_activation, name=name,
    )
