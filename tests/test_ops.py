"""nas_tf.ops: the compiled ops against their pure-TF fallbacks (values, gradients, errors, XLA).

Tests that take the ``lib`` fixture need the compiled library (built on
first use if it is not installed) and are skipped without it -- they fail
instead under ``NAS_TF_REQUIRE_CUSTOM_OPS=1`` (CI). The others (fallbacks
against NumPy, argument errors, the fallback when the library is missing or
turned off) run everywhere.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import nas_tf.ops as O

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _require_library():
    if not O.custom_ops_loaded():
        if os.environ.get("NAS_TF_REQUIRE_CUSTOM_OPS") == "1":
            pytest.fail(f"the compiled op library is required here but not in use: {O.load_error()}")
        pytest.skip(f"compiled op library not available: {O.load_error()}")


@pytest.fixture
def lib():
    """The loaded op library's module (skips, or fails in CI, without it)."""
    _require_library()
    return O.load_library()


TOL = {tf.float32: 1e-5, tf.float64: 1e-12, tf.float16: 2e-2, tf.bfloat16: 5e-2}

CONCAT_CASES = [
    [(2, 8, 8, 4), (2, 4, 4, 6)],
    [(3, 5, 7, 3), (3, 7, 5, 2), (3, 1, 1, 5)],
    [(1, 1, 1, 1)],
    [(2, 3, 3, 0), (2, 1, 4, 2)],  # zero channels
    [(0, 4, 4, 3), (0, 2, 2, 2)],  # empty batch
    [(2, 0, 3, 2), (2, 3, 0, 1), (2, 2, 2, 3)],  # empty height / width
    [(2, 6, 6, 36), (2, 3, 3, 48), (2, 6, 6, 56), (2, 3, 3, 64)],  # NAS-like
    [(1, 2 + i % 3, 3, 1 + i) for i in range(17)],  # many inputs
]


def _inputs(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [tf.cast(rng.normal(size=s), dtype) for s in shapes]


@pytest.mark.parametrize("shapes", CONCAT_CASES, ids=lambda s: "-".join("x".join(map(str, t)) for t in s)[:40])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float16, tf.bfloat16, tf.float64, tf.int32])
def test_padded_concat_matches_fallback(shapes, dtype, lib):
    xs = _inputs(shapes, dtype)
    mask = tf.constant([i % 3 != 1 for i in range(len(shapes))])
    for m in (None, mask):
        got = O.padded_concat(xs, m)
        assert got.op.type == "NasTfPaddedConcat" if not tf.executing_eagerly() else True
        want = O.padded_concat_fallback(xs, m)
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_array_equal(tf.cast(got, tf.float64).numpy(), tf.cast(want, tf.float64).numpy())


def test_padded_concat_values_and_static_shape(lib):
    a = tf.reshape(tf.range(1, 2 * 3 * 3 + 1, dtype=tf.float32), [1, 3, 3, 2])
    b = tf.fill([1, 1, 2, 1], 7.0)
    out = O.padded_concat([a, b]).numpy()
    assert out.shape == (1, 3, 3, 3)
    np.testing.assert_array_equal(out[0, :, :, :2], a.numpy()[0])
    np.testing.assert_array_equal(out[0, :1, :2, 2], 7.0)
    assert out[0, 1:, :, 2].sum() == 0 and out[0, :, 2:, 2].sum() == 0
    # Static shapes through the shape function; unknown dims stay unknown.
    f = tf.function(lambda x, y: O.padded_concat([x, y]))
    cf = f.get_concrete_function(tf.TensorSpec([None, 8, 8, 4]), tf.TensorSpec([None, 4, 4, 6]))
    assert cf.output_shapes.as_list() == [None, 8, 8, 10]
    assert "NasTfPaddedConcat" in [op.type for op in cf.graph.get_operations()]
    cf = f.get_concrete_function(tf.TensorSpec([None, None, 8, 4]), tf.TensorSpec([None, 4, 4, None]))
    assert cf.output_shapes.as_list() == [None, None, 8, None]


GRAD_CONCAT_CASES = [
    [(2, 4, 4, 2), (2, 2, 3, 3)],
    [(1, 3, 2, 1), (1, 2, 3, 2), (1, 1, 1, 1)],
    [(1, 1, 1, 1)],
    [(2, 2, 2, 0), (2, 1, 2, 2)],
    [(2, 0, 3, 2), (2, 3, 0, 1), (2, 2, 2, 1)],
]


@pytest.mark.parametrize("shapes", GRAD_CONCAT_CASES, ids=str)
def test_padded_concat_gradient_matches_fallback(shapes, lib):
    xs = _inputs(shapes, tf.float64, seed=1)
    mask = tf.constant([i % 2 == 0 for i in range(len(shapes))])
    for m in (None, mask):
        th_op, num_op = tf.test.compute_gradient(lambda *a: O.padded_concat(list(a), m), xs)
        th_fb, _ = tf.test.compute_gradient(lambda *a: O.padded_concat_fallback(list(a), m), xs)
        for a, b, c in zip(th_op, th_fb, num_op):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(a, c, atol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16, tf.bfloat16])
def test_padded_concat_gradient_dtypes_and_mask_zeros(dtype, lib):
    xs = _inputs([(2, 4, 4, 3), (2, 2, 3, 5), (2, 4, 1, 2)], dtype, seed=2)
    mask = tf.constant([True, False, True])
    weights = tf.cast(tf.random.stateless_normal([2, 4, 4, 10], seed=[1, 2]), dtype)
    grads = []
    for fn in (O.padded_concat, O.padded_concat_fallback):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = tf.reduce_sum(fn(xs, mask) * weights)
        grads.append(tape.gradient(loss, xs))
    for g_op, g_fb, x in zip(*grads, xs):
        assert g_op.dtype == dtype and g_op.shape == x.shape
        np.testing.assert_array_equal(tf.cast(g_op, tf.float32).numpy(), tf.cast(g_fb, tf.float32).numpy())
    assert float(tf.reduce_max(tf.abs(tf.cast(grads[0][1], tf.float32)))) == 0.0
    np.testing.assert_array_equal(tf.cast(grads[0][0], tf.float32), tf.cast(weights[..., :3], tf.float32))


def test_padded_concat_runtime_mask_needs_no_retrace(lib):
    xs = _inputs([(2, 4, 4, 3), (2, 2, 2, 2)], tf.float32)
    f = tf.function(lambda a, b, m: O.padded_concat([a, b], m))
    for m in ([True, True], [True, False], [False, True]):
        np.testing.assert_array_equal(f(*xs, tf.constant(m)), O.padded_concat_fallback(xs, tf.constant(m)))
    assert f.experimental_get_tracing_count() == 1


GM_CASES = [  # (groups or None for the single form, B, N, M, K)
    (None, 4, 8, 6, 3),
    (None, 1, 1, 1, 1),
    (3, 5, 16, 33, 4),
    (2, 64, 100, 120, 12),
    (2, 0, 5, 7, 2),   # empty batch
    (2, 3, 0, 7, 2),   # empty inner dimension
    (0, 3, 5, 7, 2),   # no groups
    (1, 7, 37, 1, 5),  # one column
]


def _gm_inputs(case, dtype, transpose, seed=0, index_dtype=tf.int32):
    g, b, n, m, k = case
    rng = np.random.default_rng(seed)
    w = tf.cast(rng.normal(size=(k, n, m)), dtype)
    cols = m if transpose else n
    x_shape = (b, cols) if g is None else (g, b, cols)
    x = tf.cast(rng.normal(size=x_shape), dtype)
    index = tf.constant(rng.integers(0, k, size=() if g is None else (g,)), index_dtype)
    return x, w, index


@pytest.mark.parametrize("case", GM_CASES, ids=str)
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64, tf.float16, tf.bfloat16])
@pytest.mark.parametrize("transpose", [False, True])
def test_gather_matmul_matches_fallback(case, dtype, transpose, lib):
    x, w, index = _gm_inputs(case, dtype, transpose, index_dtype=tf.int64 if dtype == tf.float64 else tf.int32)
    got = O.gather_matmul(x, w, index, transpose_weights=transpose)
    want = O.gather_matmul_fallback(x, w, index, transpose_weights=transpose)
    assert got.dtype == dtype and got.shape == want.shape
    ref = np.matmul(
        tf.cast(x, tf.float64).numpy(),
        np.swapaxes(tf.cast(tf.gather(w, index), tf.float64).numpy(), -1, -2) if transpose
        else tf.cast(tf.gather(w, index), tf.float64).numpy(),
    )
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    for y in (got, want):
        np.testing.assert_allclose(tf.cast(y, tf.float64).numpy(), ref, atol=TOL[dtype] * scale * 4, rtol=0)


@pytest.mark.parametrize(
    "case,transpose",
    [(GM_CASES[0], False), (GM_CASES[0], True), ((2, 3, 6, 5, 4), False), ((2, 3, 6, 5, 4), True),
     (GM_CASES[5], False), ((3, 2, 4, 3, 2), False), ((3, 2, 4, 3, 2), True)],
    ids=str,
)
def test_gather_matmul_gradient_matches_fallback(case, transpose, lib):
    x, w, index = _gm_inputs(case, tf.float64, transpose, seed=3)
    if case[0] == 3:
        index = tf.constant([1, 1, 0])  # a repeated index: its gradient slices add up
    th_op, num_op = tf.test.compute_gradient(lambda a, b: O.gather_matmul(a, b, index, transpose), [x, w])
    th_fb, _ = tf.test.compute_gradient(lambda a, b: O.gather_matmul_fallback(a, b, index, transpose), [x, w])
    for a, b, c in zip(th_op, th_fb, num_op):
        np.testing.assert_allclose(a, b, atol=1e-12)
        np.testing.assert_allclose(a, c, atol=1e-6)


@pytest.mark.parametrize("dense", [False, True])
def test_gather_matmul_weight_gradient_only_in_selected_slices(dense, lib):
    x, w, _ = _gm_inputs((3, 4, 6, 5, 6), tf.float32, False)
    index = tf.constant([4, 1, 4])
    grads = []
    for fn in (O.gather_matmul, O.gather_matmul_fallback):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = fn(x, w, index, dense_weight_grad=dense)
            loss = tf.reduce_sum(y * y)
        grads.append(tape.gradient(loss, [x, w]))
    (gx, gw), (gx_fb, gw_fb) = grads
    assert isinstance(gw, tf.Tensor if dense else tf.IndexedSlices)
    assert type(gw) is type(gw_fb)
    np.testing.assert_allclose(gx, gx_fb, rtol=1e-5, atol=1e-5)
    dense_gw = tf.convert_to_tensor(gw).numpy()
    np.testing.assert_allclose(dense_gw, tf.convert_to_tensor(gw_fb).numpy(), rtol=1e-5, atol=1e-4)
    assert np.all(dense_gw[[0, 2, 3, 5]] == 0)
    assert np.abs(dense_gw[1]).max() > 0 and np.abs(dense_gw[4]).max() > 0


def test_gather_matmul_trains_shared_weights_with_an_optimizer(lib):
    import keras

    bank = keras.Variable(np.random.default_rng(0).normal(size=(4, 8, 3)).astype("float32"))
    opt = keras.optimizers.SGD(0.1)
    x = tf.random.stateless_normal([16, 8], seed=[0, 1])
    before = bank.numpy().copy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(O.gather_matmul(x, bank, 2) ** 2)
    opt.apply_gradients([(tape.gradient(loss, bank), bank)])
    changed = np.abs(bank.numpy() - before).reshape(4, -1).max(axis=1) > 0
    assert changed.tolist() == [False, False, True, False]


def test_ops_fall_back_under_xla_with_the_same_results(lib):
    xs = _inputs([(2, 6, 6, 3), (2, 3, 3, 4)], tf.float32)
    x, w, index = _gm_inputs((2, 4, 8, 5, 3), tf.float32, False)

    def both(a, b, x, w, index):
        return O.padded_concat([a, b], [True, False]), O.gather_matmul(x, w, index)

    xla = tf.function(both, jit_compile=True)
    plain = tf.function(both)
    out_xla = xla(*xs, x, w, index)
    out_plain = plain(*xs, x, w, index)
    graph_ops = {op.type for op in plain.get_concrete_function(*xs, x, w, index).graph.get_operations()}
    assert {"NasTfPaddedConcat", "NasTfGatherMatmul"} <= graph_ops
    xla_ops = {op.type for op in xla.get_concrete_function(*xs, x, w, index).graph.get_operations()}
    assert not any(t.startswith("NasTf") for t in xla_ops)
    np.testing.assert_array_equal(out_xla[0], out_plain[0])
    np.testing.assert_allclose(out_xla[1], out_plain[1], rtol=1e-5, atol=1e-5)


def test_switches_turn_the_custom_ops_off(lib):
    xs = _inputs([(1, 2, 2, 1), (1, 1, 1, 1)], tf.float32)

    def op_types(fn):
        return {o.type for o in tf.function(fn).get_concrete_function().graph.get_operations()}

    assert "NasTfPaddedConcat" in op_types(lambda: O.padded_concat(xs))
    with O.custom_ops_disabled():
        assert not O.custom_ops_loaded()
        assert "NasTfPaddedConcat" not in op_types(lambda: O.padded_concat(xs))
    O.set_custom_ops_enabled(False)
    try:
        assert "NasTfGatherMatmul" not in op_types(lambda: O.gather_matmul(tf.ones([2, 3]), tf.ones([2, 3, 4]), 1))
    finally:
        O.set_custom_ops_enabled(True)
    assert O.custom_ops_loaded()


# ------------------------------------------------- fallbacks against NumPy (no library needed)
def _np_padded_concat(xs, mask=None):
    h, w = max(x.shape[1] for x in xs), max(x.shape[2] for x in xs)
    parts = []
    for i, x in enumerate(xs):
        p = np.zeros((x.shape[0], h, w, x.shape[3]), x.dtype)
        if mask is None or mask[i]:
            p[:, : x.shape[1], : x.shape[2]] = x
        parts.append(p)
    return np.concatenate(parts, axis=-1)


@pytest.mark.parametrize("shapes", CONCAT_CASES[:4] + CONCAT_CASES[6:], ids=lambda s: "-".join("x".join(map(str, t)) for t in s)[:40])
def test_padded_concat_fallback_matches_numpy(shapes):
    xs = [x.numpy() for x in _inputs(shapes, tf.float32)]
    mask = [i % 3 != 1 for i in range(len(shapes))]
    for m in (None, mask):
        got = O.padded_concat_fallback([tf.constant(x) for x in xs], None if m is None else tf.constant(m))
        np.testing.assert_array_equal(got.numpy(), _np_padded_concat(xs, m))
    # Unknown spatial sizes (a graph traced for any shape) give the same values.
    f = tf.function(lambda *a: O.padded_concat_fallback(list(a)), input_signature=[tf.TensorSpec([None] * 4)] * len(xs))
    np.testing.assert_array_equal(f(*xs).numpy(), _np_padded_concat(xs))


def test_padded_concat_fallback_gradient_is_each_inputs_slice():
    xs = _inputs([(2, 4, 4, 2), (2, 2, 3, 3)], tf.float64, seed=4)
    mask = tf.constant([True, False])
    theoretical, numerical = tf.test.compute_gradient(lambda a, b: O.padded_concat_fallback([a, b], mask), xs)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-6)
    assert np.abs(theoretical[1]).max() == 0.0  # masked off: no gradient


@pytest.mark.parametrize("case", [GM_CASES[0], GM_CASES[2], GM_CASES[3], GM_CASES[7]], ids=str)
@pytest.mark.parametrize("transpose", [False, True])
def test_gather_matmul_fallback_matches_numpy(case, transpose):
    x, w, index = _gm_inputs(case, tf.float64, transpose)
    sel = w.numpy()[index.numpy()]
    ref = np.matmul(x.numpy(), np.swapaxes(sel, -1, -2) if transpose else sel)
    for dense in (False, True):
        got = O.gather_matmul_fallback(x, w, index, transpose_weights=transpose, dense_weight_grad=dense)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dense", [False, True])
def test_gather_matmul_fallback_gradient_matches_numerical(dense):
    x, w, _ = _gm_inputs((3, 2, 4, 3, 5), tf.float64, False, seed=5)
    index = tf.constant([4, 1, 4])  # a repeated index: its slices add up
    theoretical, numerical = tf.test.compute_gradient(
        lambda a, b: O.gather_matmul_fallback(a, b, index, dense_weight_grad=dense), [x, w]
    )
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-6)


def test_wrappers_run_the_fallback_when_the_ops_are_off():
    xs = _inputs([(1, 3, 3, 2), (1, 1, 2, 1)], tf.float32)
    x, w, index = _gm_inputs((2, 3, 4, 5, 3), tf.float32, False)
    with O.custom_ops_disabled():
        assert not O.custom_ops_loaded()
        fn = tf.function(lambda: (O.padded_concat(xs, [True, False]), O.gather_matmul(x, w, index)))
        ops = {o.type for o in fn.get_concrete_function().graph.get_operations()}
        got = fn()
    assert not any(t.startswith("NasTf") for t in ops)
    np.testing.assert_array_equal(got[0].numpy(), _np_padded_concat([a.numpy() for a in xs], [True, False]))
    np.testing.assert_allclose(got[1].numpy(), np.matmul(x.numpy(), w.numpy()[index.numpy()]), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- bad input
def test_padded_concat_errors_are_clear():
    a = tf.ones([2, 4, 4, 3])
    with pytest.raises(ValueError, match="input 1 must be rank 4"):
        O.padded_concat([a, tf.ones([2, 4, 4])])
    with pytest.raises(TypeError, match="input 1 has dtype float64"):
        O.padded_concat([a, tf.ones([2, 4, 4, 3], tf.float64)])
    with pytest.raises(ValueError, match=r"mask must have shape \[2\]"):
        O.padded_concat([a, a], mask=[True, True, False])
    with pytest.raises(ValueError, match="must not be empty"):
        O.padded_concat([])
    with pytest.raises(TypeError, match="must be a list"):
        O.padded_concat(a)


def test_padded_concat_op_errors_are_clear(lib):
    a, b = tf.ones([2, 4, 4, 3]), tf.ones([3, 2, 2, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="input 1 has batch 3 but input 0 has batch 2"):
        O.padded_concat([a, b])
    gen = lib
    # The op itself: eager (shape function) and graph with unknown shapes (kernel).
    with pytest.raises(tf.errors.InvalidArgumentError, match="input 0 must be rank 4"):
        gen.nas_tf_padded_concat([tf.ones([2, 3]), a], tf.constant([True, True]))
    f = tf.function(lambda x, y: gen.nas_tf_padded_concat([x, y], tf.constant([True, True])),
                    input_signature=[tf.TensorSpec(None), tf.TensorSpec(None)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="input 1 has batch 3 but input 0 has batch 2"):
        f(a, b)
    with pytest.raises(tf.errors.InvalidArgumentError, match="input 1 must be rank 4"):
        f(a, tf.ones([2, 4]))
    g = tf.function(lambda x, m: gen.nas_tf_padded_concat([x, x], m), input_signature=[tf.TensorSpec(None), tf.TensorSpec(None, tf.bool)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"mask must have shape \[2\]"):
        g(a, tf.constant([True]))


def test_gather_matmul_errors_are_clear():
    w = tf.ones([4, 3, 5])
    with pytest.raises(ValueError, match="weights must be rank 3"):
        O.gather_matmul(tf.ones([2, 3]), tf.ones([3, 5]), 0)
    with pytest.raises(ValueError, match="needs an index of rank 1"):
        O.gather_matmul(tf.ones([2, 2, 3]), w, 1)
    with pytest.raises(TypeError, match="index must be int32 or int64"):
        O.gather_matmul(tf.ones([2, 3]), w, 1.0)
    with pytest.raises(TypeError, match="x is float64 but weights are float32"):
        O.gather_matmul(tf.ones([2, 3], tf.float64), w, 1)


def test_gather_matmul_op_errors_are_clear(lib):
    w = tf.ones([4, 3, 5])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"index\[0\] = 4 is not in \[0, 4\)"):
        O.gather_matmul(tf.ones([2, 3]), w, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"index\[1\] = -1 is not in \[0, 4\)"):
        O.gather_matmul(tf.ones([2, 2, 3]), w, tf.constant([0, -1], tf.int64))
    gen = lib
    with pytest.raises(tf.errors.InvalidArgumentError, match="x has 4 columns but the weights need 3"):
        gen.nas_tf_gather_matmul(tf.ones([2, 4]), w, 1)
    f = tf.function(lambda x, i: gen.nas_tf_gather_matmul(x, w, i), input_signature=[tf.TensorSpec(None), tf.TensorSpec(None, tf.int32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"index\[2\] = 9 is not in \[0, 4\)"):
        f(tf.ones([3, 2, 3]), tf.constant([0, 1, 9]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="x has 3 groups but index has 2 entries"):
        f(tf.ones([3, 2, 3]), tf.constant([0, 1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="x must be rank 2"):
        f(tf.ones([3]), tf.constant(0))


# ---------------------------------------------------------------- loading and fallback
def _run(code, **env):
    full = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


FALLBACK_CHECK = """
import warnings, numpy as np, tensorflow as tf
import nas_tf.ops as O
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    y = O.padded_concat([tf.ones([1, 2, 2, 1]), tf.ones([1, 1, 1, 2])], [True, False])
    z = O.gather_matmul(tf.ones([2, 3]), tf.ones([2, 3, 4]), 1)
print("loaded", O.custom_ops_loaded())
print("error", O.load_error())
print("warnings", [str(w.message) for w in caught])
print("sum", float(tf.reduce_sum(y)), float(tf.reduce_sum(z)))
"""


def test_the_requested_library_is_the_one_in_use(lib):
    forced = os.environ.get("NAS_TF_OPS_LIBRARY")
    assert O.loaded_library_path() == (forced or O.library_path())
    assert O.load_error() is None


def test_missing_library_falls_back_with_a_warning():
    out = _run(FALLBACK_CHECK, NAS_TF_OPS_LIBRARY="/nonexistent/_nas_tf_ops.so")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "loaded False" in out.stdout and "could not load /nonexistent" in out.stdout
    assert "using the pure-TensorFlow fallbacks" in out.stdout
    assert "sum 4.0 24.0" in out.stdout


def test_environment_variable_disables_the_library():
    out = _run(FALLBACK_CHECK, NAS_TF_DISABLE_CUSTOM_OPS="1")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "loaded False" in out.stdout and "NAS_TF_DISABLE_CUSTOM_OPS is set" in out.stdout
    assert "warnings []" in out.stdout and "sum 4.0 24.0" in out.stdout


def test_import_nas_tf_stays_lazy_and_registers_ops_when_tensorflow_arrives(lib):
    code = (
        "import sys, nas_tf\n"
        "assert 'tensorflow' not in sys.modules and 'nas_tf.ops' not in sys.modules\n"
        "import tensorflow as tf\n"
        "from nas_tf.ops import _loader\n"
        "print('tried', _loader._state['tried'], _loader._state['module'] is not None)\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tried True True" in out.stdout


def test_keras_layer_uses_the_op_and_opts_out_of_xla(lib):
    import keras

    from nas_tf.layers import PaddedConcat

    layer = PaddedConcat()
    assert layer.supports_jit is False
    a, b = keras.Input((8, 8, 2)), keras.Input((4, 4, 3))
    y = keras.layers.GlobalAveragePooling2D()(PaddedConcat()([keras.layers.Conv2D(4, 3, padding="same")(a), b]))
    model = keras.Model([a, b], keras.layers.Dense(2)(y))
    fn = tf.function(lambda u, v: model([u, v]))
    ops = {o.type for o in fn.get_concrete_function(tf.TensorSpec([None, 8, 8, 2]), tf.TensorSpec([None, 4, 4, 3])).graph.get_operations()}
    assert "NasTfPaddedConcat" in ops
    model.compile("sgd", "mse", jit_compile=True)  # Keras turns XLA off for this model
    hist = model.fit([tf.ones([8, 8, 8, 2]), tf.ones([8, 4, 4, 3])], tf.zeros([8, 2]), epochs=2, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()


def test_padded_concat_takes_tf_concat_when_there_is_nothing_to_pad(lib):
    same = _inputs([(2, 4, 4, 3), (2, 4, 4, 5)], tf.float32)
    padded = _inputs([(2, 4, 4, 3), (2, 2, 2, 5)], tf.float32)

    def op_types(fn, xs):
        return {o.type for o in tf.function(fn).get_concrete_function(*xs).graph.get_operations()}

    # One static size and no mask: one copy per input whichever runs, so tf.concat.
    assert "NasTfPaddedConcat" not in op_types(lambda *x: O.padded_concat(list(x)), same)
    np.testing.assert_array_equal(O.padded_concat(same), tf.concat(same, axis=-1))
    # A mask, padding, or a size unknown at trace time: the op.
    assert "NasTfPaddedConcat" in op_types(lambda *x: O.padded_concat(list(x), [True, False]), same)
    assert "NasTfPaddedConcat" in op_types(lambda *x: O.padded_concat(list(x)), padded)
    dynamic = tf.function(lambda *x: O.padded_concat(list(x)))
    spec = [tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, None, 5])]
    assert "NasTfPaddedConcat" in {o.type for o in dynamic.get_concrete_function(*spec).graph.get_operations()}
