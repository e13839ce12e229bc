"""NASCell: TF Addons' test vectors, weight compatibility, Keras RNN, tf.function, XLA,
serialisation, SavedModel, and the JAX backend."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from rnn_reference import nas_cell_step

import nas_tf
from conftest import REPO
from nas_tf.layers import NASCell

TESTS = os.path.dirname(os.path.abspath(__file__))
X_TFA = np.array([[1.0] * 4, [2.0] * 4, [3.0] * 4], np.float32)


def test_top_level_export_is_lazy():
    code = (
        "import sys, nas_tf\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "cell = nas_tf.NASCell(4)\n"
        "assert cell.__class__.__module__ == 'nas_tf.layers.nas_cell'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
    assert nas_tf.NASCell is NASCell


def test_tf_addons_constant_test_vectors():
    # tensorflow_addons/rnn/tests/nas_cell_test.py::test_base (PAPERS.md 1.11).
    const = keras.initializers.Constant(0.5)
    cell = NASCell(units=6, kernel_initializer=const, recurrent_initializer=const)
    state = 0.1 * np.ones((3, 6), np.float32)
    output, (new_c, new_m) = cell(X_TFA, [state, state])
    expected_out = np.repeat([[0.576751], [0.618936], [0.627393]], 6, axis=1)
    expected_c = np.repeat([[0.7157977], [0.7804162], [0.7945764]], 6, axis=1)
    np.testing.assert_allclose(output, expected_out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new_c, expected_c, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new_m, output)


def test_tf_addons_projection_test_vectors():
    # tensorflow_addons/rnn/tests/nas_cell_test.py::test_projection.
    const = keras.initializers.Constant(0.5)
    cell = NASCell(6, projection=5, kernel_initializer=const, recurrent_initializer=const, projection_initializer=const)
    output, (new_c, new_m) = cell(X_TFA, [0.1 * np.ones((3, 6), np.float32), 0.1 * np.ones((3, 5), np.float32)])
    expected_out = np.repeat([[1.697418], [1.840037], [1.873985]], 5, axis=1)
    expected_c = np.repeat([[0.69855207], [0.77073824], [0.78973997]], 6, axis=1)
    assert output.shape == (3, 5) and new_c.shape == (3, 6) and new_m.shape == (3, 5)
    np.testing.assert_allclose(output, expected_out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new_c, expected_c, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("use_bias, projection", [(False, None), (True, None), (True, 7), (False, 5)])
def test_weights_in_tf_addons_order_and_shapes(use_bias, projection):
    cell = NASCell(12, projection=projection, use_bias=use_bias)
    cell.build((None, 9))
    p = projection or 12
    expected = [("recurrent_kernel", (p, 96)), ("kernel", (9, 96))]
    if use_bias:
        expected.append(("bias", (96,)))
    if projection:
        expected.append(("projection_weights", (12, projection)))
    assert [(w.name, tuple(w.shape)) for w in cell.weights] == expected
    assert cell.state_size == [12, p] and cell.output_size == p


def _tfa_arrays(rng, d, units, p, use_bias, projection):
    arrays = [rng.normal(0, 0.3, (p, 8 * units)), rng.normal(0, 0.3, (d, 8 * units))]
    if use_bias:
        arrays.append(rng.normal(0, 0.3, (8 * units,)))
    if projection:
        arrays.append(rng.normal(0, 0.3, (units, projection)))
    return [a.astype(np.float32) for a in arrays]


@pytest.mark.parametrize("use_bias, projection", [(False, None), (True, None), (True, 4)])
def test_set_weights_from_tf_addons_arrays_matches_reference_sequence(use_bias, projection):
    """Arrays in TF Addons' order load with set_weights and give the contrib/TFA outputs over a sequence."""
    rng = np.random.default_rng(1)
    units, d, batch, steps = 10, 7, 5, 6
    p = projection or units
    arrays = _tfa_arrays(rng, d, units, p, use_bias, projection)
    cell = NASCell(units, projection=projection, use_bias=use_bias)
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    x = rng.normal(0, 1, (batch, steps, d)).astype(np.float32)
    c0 = rng.normal(0, 0.5, (batch, units)).astype(np.float32)
    m0 = rng.normal(0, 0.5, (batch, p)).astype(np.float32)
    rnn(x, initial_state=[c0, m0])
    cell.set_weights(arrays)
    outputs, c_last, m_last = rnn(x, initial_state=[c0, m0])
    names = ["recurrent_kernel", "kernel"] + (["bias"] if use_bias else []) + (["projection_weights"] if projection else [])
    named = dict(zip(names, arrays))
    c, m, expected = c0, m0, []
    for t in range(steps):
        out, (c, m) = nas_cell_step(
            x[:, t], c, m, named["recurrent_kernel"], named["kernel"], named.get("bias"), named.get("projection_weights")
        )
        expected.append(out)
    np.testing.assert_allclose(outputs, np.stack(expected, axis=1), atol=1e-5)
    np.testing.assert_allclose(c_last, c, atol=1e-5)
    np.testing.assert_allclose(m_last, m, atol=1e-5)


def test_config_round_trip_and_tf_addons_config():
    cell = NASCell(10, projection=5, use_bias=True, name="nas_cell_3")
    config = cell.get_config()
    assert config["units"] == 10 and config["projection"] == 5 and config["use_bias"] is True and "arch" not in config
    again = NASCell.from_config(config)
    assert again.get_config() == config
    # A config written by tfa.rnn.NASCell (its test_config_nas) builds the same cell.
    tfa_config = {
        "dtype": "float32", "name": "nas_cell_3", "trainable": True, "units": 10, "projection": 5, "use_bias": True,
        "kernel_initializer": "glorot_uniform", "recurrent_initializer": "glorot_uniform",
        "bias_initializer": "zeros", "projection_initializer": "glorot_uniform",
    }
    from_tfa = NASCell.from_config(tfa_config)
    assert from_tfa.units == 10 and from_tfa.projection == 5 and from_tfa.use_bias
    assert keras.saving.get_registered_name(NASCell) == "nas_tf>NASCell"


@pytest.mark.parametrize(
    "kwargs, message",
    [({"units": 0}, "units"), ({"units": 4, "projection": -1}, "projection"), ({"units": 4.5}, "units"),
     ({"units": 4, "recurrent_dropout": 1.0}, "recurrent_dropout")],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NASCell(**kwargs)


def test_keras_rnn_tf_function_and_xla_agree():
    keras.utils.set_random_seed(3)
    cell = NASCell(16, projection=8, use_bias=True, bias_initializer="random_normal")
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    x = np.random.default_rng(0).normal(size=(4, 9, 5)).astype(np.float32)
    eager = rnn(x)
    graph = tf.function(lambda v: rnn(v))(x)
    xla = tf.function(lambda v: rnn(v), jit_compile=True)(x)
    assert eager[0].shape == (4, 9, 8) and eager[1].shape == (4, 16) and eager[2].shape == (4, 8)
    for a, b, c in zip(eager, graph, xla):
        np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_allclose(a, c, atol=1e-5)
    # Gradients flow to every weight, also under XLA.
    @tf.function(jit_compile=True)
    def grads(v):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(rnn(v)[0] ** 2)
        return tape.gradient(loss, rnn.trainable_variables)

    assert all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads(x))


def test_variational_recurrent_dropout():
    keras.utils.set_random_seed(0)
    cell = NASCell(8, projection=6, dropout=0.3, recurrent_dropout=0.5, seed=1)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = np.ones((3, 5, 4), np.float32)
    inference = rnn(x, training=False)
    np.testing.assert_allclose(inference, rnn(x, training=False))  # no dropout at inference
    train = rnn(x, training=True)
    assert train.shape == inference.shape and not np.allclose(train, inference)
    no_dropout = NASCell.from_config({**cell.get_config(), "dropout": 0.0, "recurrent_dropout": 0.0})
    plain = keras.layers.RNN(no_dropout, return_sequences=True)
    plain(x)
    no_dropout.set_weights(cell.get_weights())
    np.testing.assert_allclose(plain(x), inference, atol=1e-6)


SAVE_CODE = """
import sys, numpy as np, keras
import nas_tf.layers  # registers NASCell and TreeCell with Keras
model = keras.models.load_model(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(model(x)))
"""

SERVE_CODE = """
import sys, numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], m.serve(tf.constant(x)).numpy())
assert "nas_tf" not in sys.modules
"""


def test_keras_file_and_saved_model_reload_in_a_fresh_process(tmp_path):
    from nas_tf.export import export_saved_model

    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, 6))
    h = keras.layers.RNN(NASCell(12, use_bias=True, bias_initializer="random_normal"), return_sequences=True)(inputs)
    h = keras.layers.RNN(NASCell(10, projection=4))(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    x = np.random.default_rng(2).normal(size=(2, 7, 6)).astype(np.float32)
    expected = np.asarray(model(x))
    np.save(tmp_path / "x.npy", x)
    model.save(tmp_path / "m.keras")
    export_saved_model(model, str(tmp_path / "sm"))
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", SAVE_CODE, str(tmp_path / "m.keras"), str(tmp_path / "x.npy"), str(tmp_path / "k.npy")],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), expected)
    served = subprocess.run([sys.executable, "-c", SERVE_CODE, str(tmp_path / "sm"), str(tmp_path / "x.npy"), str(tmp_path / "s.npy")],
                            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    assert served.returncode == 0, served.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), expected, atol=1e-6)


def _jax_python():
    """An interpreter with jax: this one, or $NAS_TF_JAX_PYTHON."""
    import importlib.util

    if importlib.util.find_spec("jax") is not None:
        return sys.executable
    return os.environ.get("NAS_TF_JAX_PYTHON")


JAX_CODE = """
import os, sys, json, numpy as np
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
import jax
sys.path.insert(0, sys.argv[1])
from rnn_reference import nas_cell_step
from nas_tf.layers import NASCell, TreeCell
import nas_tf

# TF Addons' constant test vectors.
const = keras.initializers.Constant(0.5)
cell = NASCell(6, kernel_initializer=const, recurrent_initializer=const)
x = np.array([[1.0] * 4, [2.0] * 4, [3.0] * 4], np.float32)
s = 0.1 * np.ones((3, 6), np.float32)
out, (c, m) = cell(x, [s, s])
np.testing.assert_allclose(np.asarray(out)[:, 0], [0.576751, 0.618936, 0.627393], atol=1e-6)
np.testing.assert_allclose(np.asarray(c)[:, 0], [0.7157977, 0.7804162, 0.7945764], atol=1e-6)

# In keras.layers.RNN, jitted (predict compiles with XLA on JAX), against the NumPy reference.
rng = np.random.default_rng(0)
inputs = keras.Input((5, 3))
rnn = keras.layers.RNN(NASCell(4, projection=2, use_bias=True), return_sequences=True)
model = keras.Model(inputs, rnn(inputs))
cell = rnn.cell
arrays = [rng.normal(0, 0.4, w.shape).astype("float32") for w in cell.weights]
cell.set_weights(arrays)
xs = rng.normal(size=(2, 5, 3)).astype("float32")
got = model.predict(xs, verbose=0)
c, mm = np.zeros((2, 4)), np.zeros((2, 2))
for t in range(5):
    o, (c, mm) = nas_cell_step(xs[:, t], c, mm, *arrays)
    np.testing.assert_allclose(got[:, t], o, atol=1e-5)

# Trains with fit (jit-compiled train step, recurrent dropout masks).
model2 = keras.Sequential([keras.Input((5, 3)), keras.layers.RNN(TreeCell("nascell", 8, recurrent_dropout=0.2)), keras.layers.Dense(1)])
model2.compile("adam", "mse")
h = model2.fit(xs, np.ones((2, 1)), epochs=3, verbose=0)
assert all(np.isfinite(h.history["loss"]))

# A .keras file saved with the TensorFlow backend loads here.
loaded = keras.models.load_model(sys.argv[2])
np.testing.assert_allclose(np.asarray(loaded(np.load(sys.argv[3]))), np.load(sys.argv[4]), atol=1e-5)
print("jax ok", jax.__version__)
"""


def test_jax_backend(tmp_path):
    python = _jax_python()
    if python is None:
        pytest.skip("jax is not installed in this interpreter (pip install 'jax[cpu]', or set NAS_TF_JAX_PYTHON "
                    "to a Python that has jax and keras)")
    keras.utils.set_random_seed(7)
    inputs = keras.Input((4, 3))
    model = keras.Model(inputs, keras.layers.RNN(NASCell(5, projection=3))(inputs))
    x = np.random.default_rng(3).normal(size=(2, 4, 3)).astype(np.float32)
    model.save(tmp_path / "tf.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.asarray(model(x)))
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [python, "-c", JAX_CODE, TESTS, str(tmp_path / "tf.keras"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "jax ok" in out.stdout
