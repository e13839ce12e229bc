"""The operations of NASNet-style cells, as Keras 3 layers.

Built as in the authors' released code (TF-slim ``nets/nasnet/nasnet_utils.py``
for NASNet; its sibling ``amoeba_net/network_utils.py`` of the same authors for
the plain convolutions, which NASNet-A does not use):

* every convolution is ordered **ReLU -> conv -> batch norm**; convolutions
  have no bias;
* a separable convolution op is **applied twice** (two stacked
  ReLU -> depthwise-separable conv -> BN units), with the stride on the first
  only; depthwise and pointwise parts have nothing in between
  (:class:`SeparableConvStack`);
* **identity** is a pass-through, unless it must change the shape: with
  stride 2 or a different channel count it becomes ReLU -> 1x1 conv (with the
  stride) -> BN (:class:`IdentityOp`);
* **pooling** uses "same" padding; if the channel count must change, a 1x1
  conv -> BN follows (no ReLU) (:class:`PoolOp`);
* **1x1 and 3x3 convolutions** are ReLU -> conv -> BN; the **dilated 3x3
  convolution** uses rate 2 (:class:`ReLUConvBN`);
* **1xk-then-kx1 convolutions** are ReLU -> conv 1xk -> BN -> ReLU -> conv kx1
  -> BN, the stride split over the two (:class:`FactorizedConv`);
* **factorized reduction** halves the spatial size without losing pixels: two
  paths subsample at offsets (0, 0) and (1, 1), each 1x1 conv to half the
  filters, concatenated and batch-normalised (:class:`FactorizedReduction`).

Keras cannot stride a dilated convolution; :class:`ReLUConvBN` then computes
it at stride 1 and subsamples at the pixels a "same"-padded strided
convolution would centre on (the released code never strides one: the
dilated op is not in NASNet-A).

:func:`cell_op` builds any op of the NASNet op list by name; ENAS cells use
the same names for their subset. All layers here are registered for
serialisation, so models that use them reload with ``keras.models.load_model``
once ``nas_tf`` is imported.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from nas_tf.spaces.nasnet import NASNET_OPS
from nas_tf.utils.checks import positive_int

_SEP = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "sep_conv_7x7": 7}
_POOL = {"avg_pool_3x3": ("avg", 3), "max_pool_3x3": ("max", 3), "max_pool_5x5": ("max", 5), "max_pool_7x7": ("max", 7)}
_CONV = {"conv_1x1": (1, 1), "conv_3x3": (3, 1), "dil_conv_3x3": (3, 2)}
_FACTORIZED = {"conv_1x3_3x1": 3, "conv_1x7_7x1": 7}


def _strides(value: Any, layer: str) -> int:
    value = positive_int("strides", value, owner=layer)
    if value not in (1, 2):
        raise ValueError(f"{layer}: strides must be 1 or 2, got {value}")
    return value


def subsample(x, strides: int, offset: int = 0):
    """Keeps every ``strides``-th row and column of an NHWC tensor, from ``offset``.

    A 1x1 average pooling with the stride, as the released code: on CPU it
    is about 3x faster than a strided slice.
    """
    if strides == 1 and offset == 0:
        return x
    if offset:
        x = x[:, offset:, offset:, :]
    return ops.average_pool(x, 1, strides, padding="valid")


class CellOpLayer(keras.layers.Layer):
    """Base of the op layers: the settings every conv and batch norm shares.

    Args:
        filters: output channels.
        batch_norm_momentum: moving-average momentum of batch norm.
        batch_norm_epsilon: batch-norm epsilon.
        kernel_initializer: initializer of the conv kernels.
        kernel_regularizer: regularizer of the conv kernels (depthwise and
            pointwise kernels of separable convs included).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``...).
    """

    def __init__(
        self,
        filters: int,
        batch_norm_momentum: float = 0.9,
        batch_norm_epsilon: float = 1e-5,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters, owner=type(self).__name__)
        if not 0.0 <= batch_norm_momentum < 1.0:
            raise ValueError(f"{type(self).__name__}: batch_norm_momentum must be in [0, 1), got {batch_norm_momentum}")
        if batch_norm_epsilon <= 0:
            raise ValueError(f"{type(self).__name__}: batch_norm_epsilon must be > 0, got {batch_norm_epsilon}")
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.batch_norm_epsilon = float(batch_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    # Factories of the sub-layers, created in ``build``.
    def _conv(self, filters, kernel_size, strides=1, dilation_rate=1, padding="same", name=None):
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding=padding,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _separable(self, filters, kernel_size, strides=1, name=None):
        return keras.layers.SeparableConv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=False,
            depthwise_initializer=self.kernel_initializer,
            pointwise_initializer=self.kernel_initializer,
            depthwise_regularizer=self.kernel_regularizer,
            pointwise_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _bn(self, name=None):
        return keras.layers.BatchNormalization(
            momentum=self.batch_norm_momentum, epsilon=self.batch_norm_epsilon, dtype=self.dtype_policy, name=name
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            batch_norm_momentum=self.batch_norm_momentum,
            batch_norm_epsilon=self.batch_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer) if self.kernel_regularizer else None,
        )
        return config


def _strided_shape(input_shape, strides: int, filters: int) -> tuple:
    """NHWC shape after a "same"-padded op with ``strides`` and ``filters`` outputs."""

    def out(n):
        return None if n is None else -(-n // strides)

    return (input_shape[0], out(input_shape[1]), out(input_shape[2]), filters)


def _build_chain(layers, input_shape):
    """Builds layers applied one after the other; returns the final shape."""
    shape = tuple(input_shape)
    for layer in layers:
        if layer is None:
            continue
        if not layer.built:
            layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


@keras.saving.register_keras_serializable(package="nas_tf")
class ReLUConvBN(CellOpLayer):
    """ReLU -> Conv2D (no bias, "same") -> BatchNormalization.

    Args:
        filters: output channels.
        kernel_size: kernel size (int or pair).
        strides: 1 or 2.
        dilation_rate: dilation of the kernel.
        **kwargs: see :class:`CellOpLayer`.

    Example:

    >>> ReLUConvBN(16, 3, strides=2)(keras.Input((8, 8, 4))).shape
    (None, 4, 4, 16)
    """

    def __init__(self, filters: int, kernel_size: Any = 1, strides: int = 1, dilation_rate: int = 1, **kwargs):
        super().__init__(filters, **kwargs)
        self.kernel_size = tuple(kernel_size) if isinstance(kernel_size, (list, tuple)) else (kernel_size, kernel_size)
        for k in self.kernel_size:
            positive_int("kernel_size", k, owner=type(self).__name__)
        self.strides = _strides(strides, type(self).__name__)
        self.dilation_rate = positive_int("dilation_rate", dilation_rate, owner=type(self).__name__)

    def build(self, input_shape):
        dilated_stride = self.dilation_rate > 1 and self.strides > 1
        self.conv = self._conv(
            self.filters,
            self.kernel_size,
            strides=1 if dilated_stride else self.strides,
            dilation_rate=self.dilation_rate,
            name="conv",
        )
        self.bn = self._bn(name="bn")
        _build_chain([self.conv, self.bn], input_shape)
        # "same" padding with stride 2 centres the outputs on the odd pixels of
        # an even size and on the even pixels of an odd size.
        height = input_shape[1]
        self._offset = 1 if dilated_stride and height is not None and height % 2 == 0 else 0
        self._subsample = self.strides if dilated_stride else 1

    def call(self, inputs, training=None):
        x = self.conv(ops.relu(inputs))
        x = subsample(x, self._subsample, self._offset)
        return self.bn(x, training=training)

    def compute_output_shape(self, input_shape):
        return _strided_shape(input_shape, self.strides, self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(kernel_size=list(self.kernel_size), strides=self.strides, dilation_rate=self.dilation_rate)
        return config


@keras.saving.register_keras_serializable(package="nas_tf")
class FactorizedConv(CellOpLayer):
    """A k x k convolution factorised as 1 x k then k x 1.

    ReLU -> conv 1xk (stride (1, s)) -> BN -> ReLU -> conv kx1 (stride (s, 1)) -> BN.

    Args:
        filters: output channels.
        kernel_size: k.
        strides: 1 or 2.
        **kwargs: see :class:`CellOpLayer`.

    Example:

    >>> FactorizedConv(16, 7, strides=2)(keras.Input((8, 8, 4))).shape
    (None, 4, 4, 16)
    """

    def __init__(self, filters: int, kernel_size: int = 7, strides: int = 1, **kwargs):
        super().__init__(filters, **kwargs)
        self.kernel_size = positive_int("kernel_size", kernel_size, owner=type(self).__name__)
        self.strides = _strides(strides, type(self).__name__)

    def build(self, input_shape):
        k, s = self.kernel_size, self.strides
        self.conv_1xk = self._conv(self.filters, (1, k), strides=(1, s), name=f"conv_1x{k}")
        self.bn_1xk = self._bn(name=f"bn_1x{k}")
        self.conv_kx1 = self._conv(self.filters, (k, 1), strides=(s, 1), name=f"conv_{k}x1")
        self.bn_kx1 = self._bn(name=f"bn_{k}x1")
        _build_chain([self.conv_1xk, self.bn_1xk, self.conv_kx1, self.bn_kx1], input_shape)

    def call(self, inputs, training=None):
        x = self.bn_1xk(self.conv_1xk(ops.relu(inputs)), training=training)
        return self.bn_kx1(self.conv_kx1(ops.relu(x)), training=training)

    def compute_output_shape(self, input_shape):
        return _strided_shape(input_shape, self.strides, self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, strides=self.strides)
        return config


@keras.saving.register_keras_serializable(package="nas_tf")
class SeparableConvStack(CellOpLayer):
    """``num_layers`` x (ReLU -> depthwise-separable conv -> BN); the stride on the first.

    A NASNet "sep k x k" op is this stack with ``num_layers=2``.

    Args:
        filters: output channels of every separable conv.
        kernel_size: depthwise kernel size.
        strides: 1 or 2 (first layer only).
        num_layers: how many units are stacked.
        **kwargs: see :class:`CellOpLayer`.

    Example:

    >>> SeparableConvStack(16, 5, strides=2)(keras.Input((8, 8, 4))).shape
    (None, 4, 4, 16)
    """

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1, num_layers: int = 2, **kwargs):
        super().__init__(filters, **kwargs)
        self.kernel_size = positive_int("kernel_size", kernel_size, owner=type(self).__name__)
        self.strides = _strides(strides, type(self).__name__)
        self.num_layers = positive_int("num_layers", num_layers, owner=type(self).__name__)

    def build(self, input_shape):
        k = self.kernel_size
        self.convs, self.bns = [], []
        for i in range(self.num_layers):
            self.convs.append(self._separable(self.filters, k, self.strides if i == 0 else 1, name=f"separable_{k}x{k}_{i + 1}"))
            self.bns.append(self._bn(name=f"bn_sep_{k}x{k}_{i + 1}"))
        _build_chain([layer for pair in zip(self.convs, self.bns) for layer in pair], input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for conv, bn in zip(self.convs, self.bns):
            x = bn(conv(ops.relu(x)), training=training)
        return x

    def compute_output_shape(self, input_shape):
        return _strided_shape(input_shape, self.strides, self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, strides=self.strides, num_layers=self.num_layers)
        return config


@keras.saving.register_keras_serializable(package="nas_tf")
class PoolOp(CellOpLayer):
    """Average or max pooling ("same"), then 1x1 conv -> BN if the channels must change.

    Args:
        filters: output channels (a 1x1 conv is added when the input has
            another count).
        pool_type: ``"avg"`` or ``"max"``.
        pool_size: pooling window.
        strides: 1 or 2.
        **kwargs: see :class:`CellOpLayer`.

    Example:

    >>> PoolOp(16, "max", 3, strides=2)(keras.Input((8, 8, 16))).shape
    (None, 4, 4, 16)
    """

    def __init__(self, filters: int, pool_type: str = "avg", pool_size: int = 3, strides: int = 1, **kwargs):
        super().__init__(filters, **kwargs)
        if pool_type not in ("avg", "max"):
            raise ValueError(f"PoolOp: pool_type must be 'avg' or 'max', got {pool_type!r}")
        self.pool_type = pool_type
        self.pool_size = positive_int("pool_size", pool_size, owner=type(self).__name__)
        self.strides = _strides(strides, type(self).__name__)

    def build(self, input_shape):
        pool_cls = keras.layers.AveragePooling2D if self.pool_type == "avg" else keras.layers.MaxPooling2D
        self.pool = pool_cls(self.pool_size, strides=self.strides, padding="same", dtype=self.dtype_policy, name="pool")
        if input_shape[-1] != self.filters:
            self.conv, self.bn = self._conv(self.filters, 1, name="conv_1x1"), self._bn(name="bn")
        else:
            self.conv = self.bn = None
        _build_chain([self.pool, self.conv, self.bn], input_shape)

    def call(self, inputs, training=None):
        x = self.pool(inputs)
        if self.conv is not None:
            x = self.bn(self.conv(x), training=training)
        return x

    def compute_output_shape(self, input_shape):
        return _strided_shape(input_shape, self.strides, self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(pool_type=self.pool_type, pool_size=self.pool_size, strides=self.strides)
        return config


@keras.saving.register_keras_serializable(package="nas_tf")
class IdentityOp(CellOpLayer):
    """Identity; ReLU -> 1x1 conv (with the stride) -> BN when the shape must change.

    Args:
        filters: output channels.
        strides: 1 or 2.
        **kwargs: see :class:`CellOpLayer`.

    Example:

    >>> IdentityOp(16)(keras.Input((8, 8, 16))).shape  # a pass-through
    (None, 8, 8, 16)
    """

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(filters, **kwargs)
        self.strides = _strides(strides, type(self).__name__)

    def build(self, input_shape):
        if self.strides > 1 or input_shape[-1] != self.filters:
            self.conv, self.bn = self._conv(self.filters, 1, strides=self.strides, name="conv_1x1"), self._bn(name="bn")
        else:
            self.conv = self.bn = None
        _build_chain([self.conv, self.bn], input_shape)

    @property
    def is_identity(self) -> bool:
        """True when the op is a pass-through (after build)."""
        return self.conv is None

    def call(self, inputs, training=None):
        if self.conv is None:
            return inputs
        return self.bn(self.conv(ops.relu(inputs)), training=training)

    def compute_output_shape(self, input_shape):
        return _strided_shape(input_shape, self.strides, self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(strides=self.strides)
        return config


@keras.saving.register_keras_serializable(package="nas_tf")
class FactorizedReduction(CellOpLayer):
    """Changes the spatial size (stride 2) or only the channels (stride 1) of a state.

    Stride 2: two paths, one subsampling the pixels at even and one at odd
    positions (a one-pixel shift, zero-padded at the bottom and right), each
    1x1 conv to half the filters; concatenated, then BN. Stride 1: 1x1 conv ->
    BN. With ``relu``, a ReLU comes first (used to adjust ``h_{i-1}``).

    Args:
        filters: output channels.
        strides: 1 or 2.
        relu: apply a ReLU to the input first.
        **kwargs: see :class:`CellOpLayer`.

    Example:

    >>> FactorizedReduction(16)(keras.Input((8, 8, 4))).shape
    (None, 4, 4, 16)
    """

    def __init__(self, filters: int, strides: int = 2, relu: bool = False, **kwargs):
        super().__init__(filters, **kwargs)
        self.strides = _strides(strides, type(self).__name__)
        self.relu = bool(relu)

    def build(self, input_shape):
        if self.strides == 1:
            self.conv = self._conv(self.filters, 1, name="path_conv")
            self.bn = self._bn(name="path_bn")
            _build_chain([self.conv, self.bn], input_shape)
            return
        half = self.filters // 2
        self.conv_1 = self._conv(half, 1, name="path1_conv")
        self.conv_2 = self._conv(self.filters - half, 1, name="path2_conv")
        self.bn = self._bn(name="final_path_bn")
        sub = (input_shape[0], None if input_shape[1] is None else -(-input_shape[1] // 2),
               None if input_shape[2] is None else -(-input_shape[2] // 2), input_shape[3])
        _build_chain([self.conv_1], sub)
        _build_chain([self.conv_2], sub)
        self.bn.build(sub[:3] + (self.filters,))

    def call(self, inputs, training=None):
        x = ops.relu(inputs) if self.relu else inputs
        if self.strides == 1:
            return self.bn(self.conv(x), training=training)
        path1 = self.conv_1(subsample(x, 2))
        shifted = ops.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
        path2 = self.conv_2(subsample(shifted, 2))
        return self.bn(ops.concatenate([path1, path2], axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        return _strided_shape(input_shape, self.strides, self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(strides=self.strides, relu=self.relu)
        return config


def cell_op(name: str, filters: int, strides: int = 1, **settings: Any) -> CellOpLayer:
    """Builds the cell op ``name`` (one of :data:`~nas_tf.spaces.nasnet.NASNET_OPS`).

    Args:
        name: the op name, e.g. ``"sep_conv_3x3"``, ``"max_pool_3x3"``,
            ``"identity"``.
        filters: output channels.
        strides: 1, or 2 for ops that read a cell input in a reduction cell.
        **settings: :class:`CellOpLayer` settings and layer arguments
            (``name`` of the layer is ``layer_name``).

    Returns:
        The op as a Keras layer.

    Example:

    >>> cell_op("sep_conv_5x5", 32, strides=2)(keras.Input((8, 8, 32))).shape
    (None, 4, 4, 32)
    """
    if "layer_name" in settings:
        settings["name"] = settings.pop("layer_name")
    if name in _SEP:
        return SeparableConvStack(filters, _SEP[name], strides=strides, num_layers=2, **settings)
    if name in _POOL:
        pool_type, size = _POOL[name]
        return PoolOp(filters, pool_type, size, strides=strides, **settings)
    if name in _CONV:
        size, rate = _CONV[name]
        return ReLUConvBN(filters, size, strides=strides, dilation_rate=rate, **settings)
    if name in _FACTORIZED:
        return FactorizedConv(filters, _FACTORIZED[name], strides=strides, **settings)
    if name == "identity":
        return IdentityOp(filters, strides=strides, **settings)
    raise ValueError(f"unknown cell op {name!r}; known: {', '.join(NASNET_OPS)}")
