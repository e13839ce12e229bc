"""``padded_concat``: zero-padded channel concatenation of NHWC tensors.

Inputs of different heights and widths keep their top-left corner and get zeros
at the bottom and right up to the largest height and width (the convention of
the NAS child builder), then are concatenated on channels. A boolean ``mask``
tensor (one entry per input) replaces switched-off inputs by zeros, so skip
connections chosen at run time need no retracing.

The compiled op (``NasTfPaddedConcat``) writes every output element once; the
fallback is ``tf.where`` + ``tf.pad`` + ``tf.concat`` with the same results.
Inputs of one static height and width with no mask have nothing to pad or zero:
both are then one copy per input (``scripts/bench_ops.py`` measures them equal,
docs/benchmarks.md), so :func:`padded_concat` uses ``tf.concat`` there and the op
where it saves work (padding, a mask).
Gradient: each input gets its slice of the upstream gradient; masked-off inputs
get zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from nas_tf.ops import _loader

OP_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64, tf.int32, tf.int64)
GRAD_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def _prepare(inputs: Sequence, mask) -> tuple[list[tf.Tensor], tf.Tensor | None]:
    if isinstance(inputs, (tf.Tensor, tf.Variable)) or not isinstance(inputs, (list, tuple)):
        raise TypeError(f"padded_concat: inputs must be a list of NHWC tensors, got {type(inputs).__name__}")
    if not inputs:
        raise ValueError("padded_concat: inputs must not be empty")
    tensors = [tf.convert_to_tensor(x) for x in inputs]
    dtype = tensors[0].dtype
    for i, x in enumerate(tensors):
        if x.shape.rank is not None and x.shape.rank != 4:
            raise ValueError(f"padded_concat: input {i} must be rank 4 (NHWC), got shape {x.shape}")
        if x.dtype != dtype:
            raise TypeError(f"padded_concat: input {i} has dtype {x.dtype.name}, input 0 has {dtype.name}")
    if mask is not None:
        mask = tf.convert_to_tensor(mask)
        if mask.dtype != tf.bool:
            mask = tf.not_equal(mask, tf.zeros([], mask.dtype))
        if mask.shape.rank is not None and (mask.shape.rank != 1 or mask.shape[0] not in (None, len(tensors))):
            raise ValueError(f"padded_concat: mask must have shape [{len(tensors)}], got {mask.shape}")
    return tensors, mask


def _one_static_size(tensors: list[tf.Tensor]) -> bool:
    """Whether every input has the same height and width, known at trace time."""
    sizes = {tuple(x.shape[1:3]) for x in tensors}
    return len(sizes) == 1 and None not in next(iter(sizes))


def padded_concat_fallback(inputs: Sequence, mask=None) -> tf.Tensor:
    """Pure-TensorFlow ``padded_concat`` (XLA-compatible, same results as the op).

    Args:
        inputs: list of ``[B, H_i, W_i, C_i]`` tensors of one dtype and batch.
        mask: optional ``[len(inputs)]`` bool (or 0/1) tensor; ``False``
            replaces that input by zeros.

    Returns:
        ``[B, max H_i, max W_i, sum C_i]``.
    """
    tensors, mask = _prepare(inputs, mask)
    static_h = [x.shape[1] for x in tensors]
    static_w = [x.shape[2] for x in tensors]
    if None not in static_h and None not in static_w:
        heights, widths = static_h, static_w
        height, width = max(heights), max(widths)
    else:
        heights = [tf.shape(x)[1] for x in tensors]
        widths = [tf.shape(x)[2] for x in tensors]
        height, width = tf.reduce_max(tf.stack(heights)), tf.reduce_max(tf.stack(widths))
    parts = []
    for i, (x, h, w) in enumerate(zip(tensors, heights, widths)):
        if mask is not None:
            x = tf.where(mask[i], x, tf.zeros_like(x))
        if not (isinstance(h, int) and isinstance(w, int) and h == height and w == width):
            x = tf.pad(x, [[0, 0], [0, height - h], [0, width - w], [0, 0]])
        parts.append(x)
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)


def padded_concat(inputs: Sequence, mask=None, name: str | None = None) -> tf.Tensor:
    """Zero-pads NHWC tensors to the largest H and W (bottom/right), concatenates channels.

    Uses the compiled ``NasTfPaddedConcat`` op when it is loaded and allowed
    (see :mod:`nas_tf.ops`), else :func:`padded_concat_fallback`; with no
    ``mask`` and inputs of one static height and width (nothing to pad), a
    plain ``tf.concat``.

    Args:
        inputs: list of ``[B, H_i, W_i, C_i]`` tensors (same dtype and batch).
        mask: optional ``[len(inputs)]`` bool tensor; ``False`` entries give
            zeros in that input's channels (and zero gradient).
        name: op name.

    Returns:
        ``[B, max H_i, max W_i, sum C_i]``.

    Example:

    >>> a = tf.ones([2, 4, 4, 3]); b = tf.ones([2, 2, 2, 5])
    >>> padded_concat([a, b], mask=[True, False]).shape
    TensorShape([2, 4, 4, 8])
    """
    tensors, mask = _prepare(inputs, mask)
    if mask is None and _one_static_size(tensors):
        return padded_concat_fallback(tensors)  # a plain concat: nothing for the op to save
    if tensors[0].dtype in OP_DTYPES and _loader.use_custom_ops():
        if mask is None:
            mask = tf.ones([len(tensors)], tf.bool)
        return _loader.gen_ops().nas_tf_padded_concat(tensors, mask, name=name)
    return padded_concat_fallback(tensors, mask)


@tf.RegisterGradient("NasTfPaddedConcat")
def _padded_concat_grad(op, grad):
    n = len(op.inputs) - 1
    xs, mask = list(op.inputs[:n]), op.inputs[n]
    if op.get_attr("T") not in GRAD_DTYPES:
        return [None] * (n + 1)
    static = [x.shape[1:4] for x in xs]
    if all(s.is_fully_defined() for s in static):
        sizes = tf.constant([s.as_list() for s in static], tf.int32)
    else:
        sizes = tf.stack([tf.shape(x, out_type=tf.int32)[1:4] for x in xs])
    grads = _loader.gen_ops().nas_tf_padded_concat_grad(grad, mask, sizes, N=n)
    out = []
    for g, x in zip(grads, xs):
        g.set_shape(x.shape)
        out.append(g)
    return out + [None]
