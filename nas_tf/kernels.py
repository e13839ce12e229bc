"""nas_tf's compiled kernels without TensorFlow: NumPy arrays and CUDA device buffers.

A thin layer over the pybind11 module ``nas_tf._kernels`` (built by
``pip install`` from ``csrc/``, or on the first import of this module into the
user's cache, see :mod:`nas_tf._native`; CUDA parts with ``NAS_TF_CUDA=1``).
Importing this module raises ``ImportError`` naming what is missing when the
module can be neither found nor built (e.g. no C++ compiler). NumPy arrays run the multithreaded CPU kernels
and return new arrays. Device buffers -- any object with
``__cuda_array_interface__`` (PyTorch, CuPy, Numba) or a raw pointer with an
explicit ``dtype`` -- run the CUDA kernels on ``stream`` (0: the default
stream) and write into the ``out`` buffers you pass (nothing is allocated or
synchronised here). Used by ``scripts/check_cuda_ops.py`` to test and time the
kernels without TensorFlow. Importing this module imports no TensorFlow.

Example:

>>> import numpy as np
>>> from nas_tf import kernels
>>> kernels.padded_concat([np.ones((1, 2, 2, 1), "f4"), np.ones((1, 1, 1, 2), "f4")]).shape
(1, 2, 2, 3)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from nas_tf import _native

_kernels = _native.kernels_module()

_TYPESTR = {"<f4": ("float32", 4), "<f2": ("float16", 2), "<f8": ("float64", 8), "<V2": ("bfloat16", 2)}


def build_info() -> dict:
    """``{'cuda': bool, 'cpu_gather_matmul_path': str, 'build': {...}, 'path': str}``.

    ``build`` is the build record (source hash, Python extension suffix, CUDA);
    ``path`` the module file in use.
    """
    info = dict(_kernels.build_info())
    info["build"] = json.loads(info.get("build") or "{}")
    info["path"] = _kernels.__file__
    return info


def cuda_available() -> bool:
    """Whether the module was built with the CUDA kernels."""
    return bool(_kernels.cuda_available())


class DeviceArray:
    """A device buffer: pointer, shape and dtype name (from ``__cuda_array_interface__``)."""

    def __init__(self, obj: Any, dtype: str | None = None, shape: Sequence[int] | None = None):
        if isinstance(obj, DeviceArray):
            self.ptr, self.shape, self.dtype = obj.ptr, obj.shape, obj.dtype
            return
        if isinstance(obj, int):
            if dtype is None or shape is None:
                raise ValueError("a raw device pointer needs dtype= and shape=")
            self.ptr, self.shape, self.dtype = obj, tuple(shape), dtype
            return
        cai = getattr(obj, "__cuda_array_interface__", None)
        if cai is None:
            raise TypeError(f"expected a CUDA array (__cuda_array_interface__) or an int pointer, got {type(obj).__name__}")
        shape_t = tuple(int(s) for s in cai["shape"])
        strides = cai.get("strides")
        name, size = _TYPESTR.get(cai["typestr"], (dtype, 0))
        if name is None:
            raise TypeError(f"unsupported CUDA array type {cai['typestr']!r}; pass dtype=")
        if strides is not None:
            expected, step = [], size
            for s in reversed(shape_t):
                expected.append(step)
                step *= s
            if tuple(reversed(expected)) != tuple(strides) and int(np.prod(shape_t)) > 1:
                raise ValueError("CUDA arrays must be C-contiguous")
        self.ptr, self.shape, self.dtype = int(cai["data"][0]), shape_t, dtype or name

    @property
    def itemsize(self) -> int:
        return {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}.get(self.dtype, 0) or np.dtype(self.dtype).itemsize


def _is_device(x: Any) -> bool:
    return isinstance(x, (DeviceArray, int)) or hasattr(x, "__cuda_array_interface__")


def padded_concat(inputs: Sequence, mask=None, out=None, stream: int = 0, dtype: str | None = None):
    """Zero-pads NHWC inputs to the largest H, W (bottom/right) and concatenates channels.

    NumPy inputs: returns a new array (``mask``: bool array or None). Device
    inputs: writes into ``out`` (device, ``[B, max H, max W, sum C]``);
    ``mask``: a device byte buffer with one entry per input, or None.
    """
    if not _is_device(inputs[0]):
        return _kernels.padded_concat(list(inputs), None if mask is None else np.asarray(mask))
    arrays = [DeviceArray(x, dtype) for x in inputs]
    if out is None:
        raise ValueError("padded_concat on device buffers needs out=")
    o = DeviceArray(out, dtype)
    sizes = [list(a.shape[1:]) for a in arrays]
    mask_ptr = 0 if mask is None else DeviceArray(mask, "uint8").ptr
    _kernels.padded_concat_cuda([a.ptr for a in arrays], sizes, arrays[0].shape[0], arrays[0].itemsize, o.ptr, mask_ptr, stream)
    return out


def padded_concat_grad(grad, sizes: Sequence[Sequence[int]], mask=None, grad_inputs=None, stream: int = 0,
                       dtype: str | None = None):
    """Gradient of :func:`padded_concat`: each input's slice of ``grad`` (zeros if masked off)."""
    if not _is_device(grad):
        return _kernels.padded_concat_grad(grad, [list(s) for s in sizes], None if mask is None else np.asarray(mask))
    if grad_inputs is None:
        raise ValueError("padded_concat_grad on device buffers needs grad_inputs=")
    g = DeviceArray(grad, dtype)
    outs = [DeviceArray(x, dtype) for x in grad_inputs]
    mask_ptr = 0 if mask is None else DeviceArray(mask, "uint8").ptr
    _kernels.padded_concat_grad_cuda(g.ptr, [list(s) for s in sizes], g.shape[0], g.itemsize, [o.ptr for o in outs], mask_ptr, stream)
    return grad_inputs


def gather_matmul(x, weights, index, transpose_weights: bool = False, out=None, stream: int = 0,
                  dtype: str | None = None):
    """``x @ weights[index]`` (or ``@ weights[index]^T``) reading the selected matrix in place.

    ``x``: ``[B, N]`` with a scalar index or ``[G, B, N]`` with ``index [G]``;
    ``weights``: ``[K, N, M]``. NumPy: returns a new array. Device buffers:
    ``index`` is a host sequence (validated here), result written to ``out``.
    """
    if not _is_device(x):
        return _kernels.gather_matmul(x, weights, index, transpose_weights)
    xa, wa = DeviceArray(x, dtype), DeviceArray(weights, dtype)
    if out is None:
        raise ValueError("gather_matmul on device buffers needs out=")
    ya = DeviceArray(out, dtype)
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
    if len(wa.shape) != 3:
        raise ValueError(f"weights must be rank 3 [K, N, M], got shape {wa.shape}")
    k, n, m = wa.shape
    batch = xa.shape[-2]
    _kernels.gather_matmul_cuda(xa.dtype, xa.ptr, wa.ptr, idx.tolist(), ya.ptr, batch, n, m, k, transpose_weights, stream)
    return out


def synchronize() -> None:
    """Waits for the device (CUDA builds only)."""
    _kernels.cuda_synchronize()
