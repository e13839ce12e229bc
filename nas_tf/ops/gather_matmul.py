"""``gather_matmul``: a matrix product with a weight matrix selected by index.

``y = x @ weights[index]`` for a bank ``weights`` of shape ``[K, N, M]``
(ENAS shared weights: one matrix per candidate, chosen by the sampled
architecture). The compiled op (``NasTfGatherMatmul``) reads the selected
matrix in place instead of copying it first (``tf.gather`` + ``tf.matmul``).

Forms:

* ``x [B, N]``, scalar ``index`` -> ``[B, M]``;
* ``x [G, B, N]``, ``index [G]`` -> ``[G, B, M]`` (one matrix per group, e.g.
  several architectures in one step);
* ``transpose_weights=True`` multiplies by ``weights[index]^T``
  (``x [..., M]`` -> ``[..., N]``).

Gradients: ``dx = dy @ weights[index]^T`` (the op with the transpose flipped)
and, for the bank, only the selected slices: by default a
``tf.IndexedSlices(values=[G, N, M], indices=index)`` like the gradient of
``tf.gather`` (optimizers apply it as a sparse update; repeated indices are
summed); ``dense_weight_grad=True`` gives a dense ``[K, N, M]`` tensor that is
zero outside the selected slices.
"""

from __future__ import annotations

import tensorflow as tf

from nas_tf.ops import _loader

OP_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def _prepare(x, weights, index):
    x = tf.convert_to_tensor(x)
    weights = tf.convert_to_tensor(weights)
    index = tf.convert_to_tensor(index)
    if index.dtype not in (tf.int32, tf.int64):
        raise TypeError(f"gather_matmul: index must be int32 or int64, got {index.dtype.name}")
    if weights.dtype != x.dtype:
        raise TypeError(f"gather_matmul: x is {x.dtype.name} but weights are {weights.dtype.name}")
    if weights.shape.rank is not None and weights.shape.rank != 3:
        raise ValueError(f"gather_matmul: weights must be rank 3 [K, N, M], got shape {weights.shape}")
    if x.shape.rank is not None:
        if x.shape.rank not in (2, 3):
            raise ValueError(f"gather_matmul: x must be rank 2 [B, N] or 3 [G, B, N], got shape {x.shape}")
        if index.shape.rank is not None and index.shape.rank != x.shape.rank - 2:
            raise ValueError(
                f"gather_matmul: x of rank {x.shape.rank} needs an index of rank {x.shape.rank - 2}, got shape {index.shape}"
            )
    return x, weights, index


def _weight_grad(x, dy, weights, index, transpose_weights: bool, dense: bool):
    """Gradient for the bank: only the selected slices (sparse or dense)."""
    if transpose_weights:  # y = x @ W^T: dW = dy^T @ x
        values = tf.matmul(dy, x, transpose_a=True)
    else:  # y = x @ W: dW = x^T @ dy
        values = tf.matmul(x, dy, transpose_a=True)
    if x.shape.rank == 2:  # one matrix: a slice of one
        values, index = tf.expand_dims(values, 0), tf.reshape(index, [1])
    if dense:
        return tf.math.unsorted_segment_sum(values, index, tf.shape(weights, out_type=index.dtype)[0])
    return tf.IndexedSlices(values, index, dense_shape=tf.shape(weights))


def gather_matmul_fallback(x, weights, index, transpose_weights: bool = False, dense_weight_grad: bool = False):
    """Pure-TensorFlow ``gather_matmul``: ``tf.gather`` + ``tf.matmul`` (XLA-compatible).

    Same arguments, results and gradient structure as :func:`gather_matmul`.
    """
    x, weights, index = _prepare(x, weights, index)
    if not dense_weight_grad:
        return tf.matmul(x, tf.gather(weights, index), transpose_b=transpose_weights)

    @tf.custom_gradient
    def fn(x, weights):
        selected = tf.gather(weights, index)
        y = tf.matmul(x, selected, transpose_b=transpose_weights)

        def grad(dy):
            dx = tf.matmul(dy, selected, transpose_b=not transpose_weights)
            return dx, _weight_grad(x, dy, weights, index, transpose_weights, True)

        return y, grad

    return fn(x, weights)


def gather_matmul(x, weights, index, transpose_weights: bool = False, dense_weight_grad: bool = False,
                  name: str | None = None) -> tf.Tensor:
    """``x @ weights[index]`` reading the selected matrix in place.

    Args:
        x: ``[B, N]`` (with a scalar ``index``) or ``[G, B, N]`` (with
            ``index [G]``); ``[..., M]`` when ``transpose_weights``.
        weights: ``[K, N, M]`` bank of matrices, same dtype as ``x``.
        index: int32/int64 scalar or ``[G]`` vector, each in ``[0, K)``;
            out-of-range values raise ``InvalidArgumentError``.
        transpose_weights: multiply by ``weights[index]^T`` instead.
        dense_weight_grad: gradient for ``weights`` as a dense tensor instead
            of ``tf.IndexedSlices``.
        name: op name.

    Returns:
        ``[B, M]`` or ``[G, B, M]`` (``N`` instead of ``M`` when transposed).

    Example:

    >>> w = tf.random.normal([12, 64, 32]); x = tf.random.normal([8, 64])
    >>> gather_matmul(x, w, 3).shape
    TensorShape([8, 32])
    """
    x, weights, index = _prepare(x, weights, index)
    if x.dtype in OP_DTYPES and _loader.use_custom_ops():
        return _loader.gen_ops().nas_tf_gather_matmul(
            x, weights, index, transpose_weights=transpose_weights, dense_weight_grad=dense_weight_grad, name=name
        )
    return gather_matmul_fallback(x, weights, index, transpose_weights, dense_weight_grad)


@tf.RegisterGradient("NasTfGatherMatmul")
def _gather_matmul_grad(op, dy):
    x, weights, index = op.inputs
    transpose = op.get_attr("transpose_weights")
    dense = op.get_attr("dense_weight_grad")
    dx = _loader.gen_ops().nas_tf_gather_matmul(dy, weights, index, transpose_weights=not transpose)
    return dx, _weight_grad(x, dy, weights, index, transpose, dense), None
