"""The framework-free kernels through the pybind11 module (nas_tf._kernels), against NumPy."""

import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:  # installed, cached, or built now (nas_tf/_native.py)
    from nas_tf.kernels import _kernels
except ImportError as e:  # pragma: no cover - only without a compiler
    if os.environ.get("NAS_TF_REQUIRE_CUSTOM_OPS") == "1":
        raise
    pytest.skip(f"nas_tf._kernels not available: {e}", allow_module_level=True)


def ref_padded_concat(xs, mask=None):
    h = max(x.shape[1] for x in xs)
    w = max(x.shape[2] for x in xs)
    parts = []
    for i, x in enumerate(xs):
        p = np.zeros((x.shape[0], h, w, x.shape[3]), x.dtype)
        if mask is None or mask[i]:
            p[:, : x.shape[1], : x.shape[2]] = x
        parts.append(p)
    return np.concatenate(parts, axis=-1)


SHAPES = [
    [(2, 8, 8, 4), (2, 4, 5, 6), (2, 1, 8, 0), (2, 8, 2, 3)],
    [(1, 1, 1, 1)],
    [(0, 3, 3, 2), (0, 1, 1, 1)],
    [(3, 2, 2, 1)] * 20,
    [(2, 6, 6, 36), (2, 3, 3, 48)],
]


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "int8"])
def test_padded_concat_and_grad_match_numpy(shapes, dtype):
    rng = np.random.default_rng(0)
    xs = [(rng.normal(size=s) * 10).astype(dtype) for s in shapes]
    mask = np.array([i % 3 != 1 for i in range(len(xs))])
    for m in (None, mask):
        out = _kernels.padded_concat(xs, m, num_threads=2)
        np.testing.assert_array_equal(out, ref_padded_concat(xs, m))
    grad = rng.normal(size=out.shape).astype(dtype)
    grads = _kernels.padded_concat_grad(grad, [x.shape[1:] for x in xs], mask, num_threads=2)
    offset = 0
    for i, (g, x) in enumerate(zip(grads, xs)):
        want = grad[:, : x.shape[1], : x.shape[2], offset : offset + x.shape[3]] * (1 if mask[i] else 0)
        np.testing.assert_array_equal(g, want.astype(dtype))
        offset += x.shape[3]


GM = [(1, 1, 1, 1, 1), (1, 7, 33, 47, 3), (3, 9, 100, 50, 4), (2, 64, 300, 200, 12), (2, 0, 5, 5, 2),
      (2, 3, 0, 5, 2), (1, 13, 17, 96, 2), (2, 17, 1000, 49, 3),
      # large enough for the threaded paths (x @ W^T as (W @ x^T)^T from batch 16)
      (1, 64, 512, 300, 2), (2, 33, 700, 390, 3)]


@pytest.mark.parametrize("case", GM, ids=str)
@pytest.mark.parametrize("transpose", [False, True])
def test_gather_matmul_matches_numpy(case, transpose):
    g, b, n, m, k = case
    rng = np.random.default_rng(1)
    w = rng.normal(size=(k, n, m)).astype(np.float32)
    x = rng.normal(size=(g, b, m if transpose else n)).astype(np.float32)
    idx = rng.integers(0, k, size=g)
    y = _kernels.gather_matmul(x, w, idx, transpose, num_threads=2)
    sel = w[idx].astype(np.float64)
    ref = np.matmul(x.astype(np.float64), np.swapaxes(sel, 1, 2) if transpose else sel)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max(initial=0)))
    # The single form (scalar index) equals group 0.
    if g >= 1:
        np.testing.assert_array_equal(_kernels.gather_matmul(x[0], w, idx[0], transpose), y[0])


def test_gather_matmul_half_types_and_errors():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 20, 12))
    x = rng.normal(size=(2, 5, 20))
    idx = np.array([2, 0])
    ref = np.matmul(x, w[idx])
    for dtype, tol in (("float16", 2e-2), ("float64", 1e-12)):
        y = _kernels.gather_matmul(x.astype(dtype), w.astype(dtype), idx)
        assert y.dtype == dtype
        np.testing.assert_allclose(y.astype(np.float64), ref, atol=tol * np.abs(ref).max())
    with pytest.raises(IndexError, match=r"index\[1\] = 3 is not in \[0, 3\)"):
        _kernels.gather_matmul(x.astype("float32"), w.astype("float32"), np.array([0, 3]))
    with pytest.raises(ValueError, match="weights must be rank 3"):
        _kernels.gather_matmul(x[0].astype("float32"), w[0].astype("float32"), 0)
    with pytest.raises(ValueError, match="x has 19 columns"):
        _kernels.gather_matmul(x[..., :19].astype("float32"), w.astype("float32"), idx)
    with pytest.raises(TypeError, match="same dtype"):
        _kernels.gather_matmul(x.astype("float32"), w, idx)
    with pytest.raises(ValueError, match="input 1 has batch 3, input 0 has 2"):
        _kernels.padded_concat([np.zeros((2, 1, 1, 1)), np.zeros((3, 1, 1, 1))])
    with pytest.raises(ValueError, match="must be rank 4"):
        _kernels.padded_concat([np.zeros((2, 1, 1))])


@pytest.mark.parametrize("path", ["avx2", "generic"])
def test_every_cpu_code_path_is_correct(path):
    """The float32 tiles are picked at run time; force each other path in a fresh process."""
    code = (
        "import numpy as np\n"
        "from nas_tf.kernels import _kernels\n"
        "rng = np.random.default_rng(0)\n"
        "print(_kernels.build_info()['cpu_gather_matmul_path'])\n"
        "for g, b, n, m, k in [(1, 1, 5, 3, 2), (2, 13, 70, 90, 3), (1, 64, 300, 130, 4), (2, 33, 700, 390, 3)]:\n"
        "    for tr in (False, True):\n"
        "        w = rng.normal(size=(k, n, m)).astype(np.float32)\n"
        "        x = rng.normal(size=(g, b, m if tr else n)).astype(np.float32)\n"
        "        idx = rng.integers(0, k, size=g)\n"
        "        sel = w[idx].astype(np.float64)\n"
        "        ref = np.matmul(x, np.swapaxes(sel, 1, 2) if tr else sel)\n"
        "        err = np.abs(_kernels.gather_matmul(x, w, idx, tr) - ref).max() / np.abs(ref).max()\n"
        "        assert err < 1e-5, (g, b, n, m, k, tr, err)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO, NAS_TF_CPU_KERNEL=path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    assert lines[-1] == "ok"
    assert lines[0] in (path, "generic")  # a CPU without AVX2 runs the generic tiles


def test_build_info_and_cuda_entry_points():
    from nas_tf import _native, kernels

    info = kernels.build_info()
    assert set(info) >= {"cuda", "build", "path", "cpu_gather_matmul_path"}
    assert info["cuda"] == _kernels.cuda_available() == info["build"]["cuda"]
    assert info["build"]["source_hash"] == _native.source_hash()  # never a stale build
    if not info["cuda"]:
        with pytest.raises(RuntimeError, match="built without CUDA"):
            _kernels.gather_matmul_cuda("float32", 0, 0, [0], 0, 1, 1, 1, 1)
