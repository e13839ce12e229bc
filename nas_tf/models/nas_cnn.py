"""Arch -> keras.Model for the NAS macro-CNN space (Zoph & Le 2017)."""

from __future__ import annotations

import keras

from nas_tf.layers.padded_concat import PaddedConcat
from nas_tf.models.registry import register_image_builder
from nas_tf.spaces.nas_cnn import NASCNNArch


def build_nas_cnn(
    arch: NASCNNArch,
    input_shape: tuple,
    num_classes: int,
    *,
    weight_decay: float = 1e-4,
    batch_norm_momentum: float = 0.9,
    batch_norm_epsilon: float = 1e-5,
    dropout: float = 0.0,
    name: str = "nas_cnn",
) -> keras.Model:
    """Builds the child network of a NAS macro-CNN arch.

    Every layer is conv -> batch norm -> ReLU, with "same" padding and the
    layer's strides (and a 2x2 max pooling after the layers listed in
    ``arch.max_pool_after``). The three rules of the paper:

    1. a layer without inputs reads the image;
    2. every layer output that no later layer reads (and the last layer) is
       concatenated and sent to the classifier (global average pooling, then
       a dense layer);
    3. inputs of different spatial sizes are zero-padded to the largest
       (:class:`~nas_tf.layers.PaddedConcat`: top-left corner kept, zeros at
       the bottom and right) before the channel concatenation.

    Args:
        arch: the architecture.
        input_shape: ``(H, W, C)``.
        num_classes: logits size.
        weight_decay: L2 penalty on conv and dense kernels, scaled so that its
            gradient is ``weight_decay * w`` (the SGD weight decay of the
            paper's child training).
        batch_norm_momentum: moving-average momentum of batch norm.
        batch_norm_epsilon: batch-norm epsilon.
        dropout: dropout rate before the classifier.
        name: model name.

    Returns:
        A ``keras.Model`` from images to logits.

    Example:

    >>> from nas_tf.spaces import ConvLayer, NASCNNArch
    >>> arch = NASCNNArch(layers=(ConvLayer(3, 3, 24), ConvLayer(3, 3, 36, 2, 2, inputs=(0,))))
    >>> build_nas_cnn(arch, (8, 8, 1), 10).output_shape
    (None, 10)
    """
    if not isinstance(arch, NASCNNArch):
        raise TypeError(f"build_nas_cnn needs a nas_cnn arch, got {type(arch).__name__}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    regularizer = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
    images = keras.Input(tuple(input_shape), name="images")
    outputs = []
    for i, layer in enumerate(arch.layers):
        sources = [outputs[j] for j in layer.inputs] or [images]
        x = sources[0] if len(sources) == 1 else PaddedConcat(name=f"layer{i}_concat")(sources)
        x = keras.layers.Conv2D(
            layer.num_filters,
            (layer.filter_height, layer.filter_width),
            strides=(layer.stride_height, layer.stride_width),
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            kernel_regularizer=regularizer,
            name=f"layer{i}_conv",
        )(x)
        x = keras.layers.BatchNormalization(
            momentum=batch_norm_momentum, epsilon=batch_norm_epsilon, name=f"layer{i}_bn"
        )(x)
        x = keras.layers.ReLU(name=f"layer{i}_relu")(x)
        if i in arch.max_pool_after:
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"layer{i}_pool")(x)
        outputs.append(x)
    final = [outputs[i] for i in arch.unconsumed_layers()]
    x = final[0] if len(final) == 1 else PaddedConcat(name="output_concat")(final)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")(x)
    return keras.Model(images, logits, name=name)


register_image_builder("nas_cnn", build_nas_cnn)
