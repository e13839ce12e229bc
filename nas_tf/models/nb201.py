"""The NAS-Bench-201 network of any cell (Dong & Yang 2020, the benchmark's skeleton).

    stem: conv 3x3 (C) + BN
    stage 1: N cells at C channels
    residual reduction block (2C, stride 2)
    stage 2: N cells at 2C
    residual reduction block (4C, stride 2)
    stage 3: N cells at 4C
    BN + ReLU, global average pooling, dense (logits)

The reduction block is the ResNet basic block of the benchmark's code:
``ReLU-conv3x3(stride 2)-BN -> ReLU-conv3x3-BN``, added to a shortcut of 2x2
average pooling (stride 2) and a 1x1 conv (no BN). The benchmark trains
C = 16, N = 5 (the defaults). Parameter counts equal the benchmark's records
(conv kernels, batch-norm scales and offsets, the dense layer; tested against
NATS-Bench's). One difference from the PyTorch network: strided 3x3 convs pad
"same" the TensorFlow way (the extra row and column at the bottom and right),
which centres their outputs one pixel down and right of PyTorch's.
"""

from __future__ import annotations

import keras

from nas_tf.layers.cell_ops import ReLUConvBN
from nas_tf.layers.nb201_cell import NB201Cell
from nas_tf.models.registry import register_image_builder
from nas_tf.spaces.nb201 import NB201Arch


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"build_nb201: {name} must be a positive integer, got {value!r}")
    return value


def build_nb201(
    arch: NB201Arch,
    input_shape: tuple,
    num_classes: int,
    *,
    channels: int = 16,
    cells_per_stage: int = 5,
    weight_decay: float = 5e-4,
    dropout: float = 0.0,
    batch_norm_momentum: float = 0.9,
    batch_norm_epsilon: float = 1e-5,
    name: str = "nb201",
) -> keras.Model:
    """Builds the NAS-Bench-201 network of a cell.

    Args:
        arch: the cell.
        input_shape: ``(H, W, C)`` of the images.
        num_classes: logits size.
        channels: C, the channels of the first stage (doubled at each
            reduction; 16 in the benchmark).
        cells_per_stage: N, cells per stage (5 in the benchmark).
        weight_decay: L2 penalty on conv and dense kernels, as a gradient of
            ``weight_decay * w`` (the benchmark trains with 5e-4).
        dropout: dropout before the classifier (none in the benchmark).
        batch_norm_momentum: batch-norm momentum.
        batch_norm_epsilon: batch-norm epsilon.
        name: model name.

    Returns:
        A ``keras.Model`` from images to logits.

    Example:

    >>> from nas_tf.spaces import NB201Arch
    >>> arch = NB201Arch.from_string("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|")
    >>> build_nb201(arch, (32, 32, 3), 10).output_shape
    (None, 10)
    """
    if not isinstance(arch, NB201Arch):
        raise TypeError(f"build_nb201 needs an nb201 arch, got {type(arch).__name__}")
    if len(input_shape) != 3:
        raise ValueError(f"build_nb201: input_shape must be (height, width, channels), got {input_shape}")
    _positive_int("num_classes", num_classes)
    _positive_int("channels", channels)
    _positive_int("cells_per_stage", cells_per_stage)
    if weight_decay < 0:
        raise ValueError(f"build_nb201: weight_decay must be >= 0, got {weight_decay}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"build_nb201: dropout must be in [0, 1), got {dropout}")
    reg = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
    bn = dict(momentum=batch_norm_momentum, epsilon=batch_norm_epsilon)
    op = dict(batch_norm_momentum=batch_norm_momentum, batch_norm_epsilon=batch_norm_epsilon, kernel_regularizer=reg)
    conv = dict(padding="same", use_bias=False, kernel_initializer="he_normal", kernel_regularizer=reg)

    images = keras.Input(tuple(input_shape), name="images")
    x = keras.layers.Conv2D(channels, 3, name="stem_conv", **conv)(images)
    x = keras.layers.BatchNormalization(name="stem_bn", **bn)(x)
    c = channels
    for stage in range(3):
        if stage:
            c *= 2
            p = f"reduce{stage}"
            y = ReLUConvBN(c, 3, strides=2, name=f"{p}_conv_a", **op)(x)
            y = ReLUConvBN(c, 3, name=f"{p}_conv_b", **op)(y)
            shortcut = keras.layers.AveragePooling2D(2, 2, padding="same", name=f"{p}_shortcut_pool")(x)
            shortcut = keras.layers.Conv2D(c, 1, name=f"{p}_shortcut_conv", **conv)(shortcut)
            x = keras.layers.Add(name=f"{p}_add")([shortcut, y])
        for k in range(cells_per_stage):
            x = NB201Cell(arch, c, kernel_regularizer=reg, batch_norm_momentum=batch_norm_momentum,
                          batch_norm_epsilon=batch_norm_epsilon, name=f"stage{stage + 1}_cell{k}")(x)
    x = keras.layers.BatchNormalization(name="last_bn", **bn)(x)
    x = keras.layers.ReLU(name="last_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=reg, name="logits")(x)
    return keras.Model(images, logits, name=name)


register_image_builder("nb201", build_nb201)
