"""Export with nas_tf's custom ops: portable by default, custom ops on request, the CLI wrapper."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import nas_tf.ops as O
from nas_tf.export import export_saved_model
from nas_tf.layers import PaddedConcat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    if not O.custom_ops_loaded():
        if os.environ.get("NAS_TF_REQUIRE_CUSTOM_OPS") == "1":
            pytest.fail(f"the compiled op library is required here but not in use: {O.load_error()}")
        pytest.skip(f"compiled op library not available: {O.load_error()}")
    keras.utils.set_random_seed(0)
    a, b = keras.Input((8, 8, 2)), keras.Input((4, 4, 3))
    x = PaddedConcat()([keras.layers.Conv2D(4, 3, padding="same")(a), keras.layers.Conv2D(2, 1)(b)])
    model = keras.Model([a, b], keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    root = tmp_path_factory.mktemp("export")
    xa = np.random.default_rng(1).normal(size=(2, 8, 8, 2)).astype("float32")
    xb = np.random.default_rng(2).normal(size=(2, 4, 4, 3)).astype("float32")
    np.save(root / "xa.npy", xa)
    np.save(root / "xb.npy", xb)
    expected = model.predict([xa, xb], verbose=0)
    np.save(root / "expected.npy", expected)
    portable = export_saved_model(model, str(root / "portable"))
    custom = export_saved_model(model, str(root / "custom"), keep_custom_ops=True)
    return root, portable, custom, expected


def _graph_ops(export_dir):
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        return f.read()


def _fresh(code, pythonpath=""):
    env = dict(os.environ, PYTHONPATH=pythonpath, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


LOAD = (
    "import sys, numpy as np\n"
    "{pre}"
    "import tensorflow as tf\n"
    "root = {root!r}\n"
    "m = tf.saved_model.load(root + '/{name}')\n"
    "xa, xb = np.load(root + '/xa.npy'), np.load(root + '/xb.npy')\n"
    "y = m.serve([xa, xb]).numpy()\n"
    "print('max_diff', float(np.abs(y - np.load(root + '/expected.npy')).max()))\n"
    "print('nas_tf_imported', 'nas_tf' in sys.modules)\n"
)


def test_default_export_is_portable_and_loads_without_nas_tf(exported):
    root, portable, _, _ = exported
    assert b"NasTf" not in _graph_ops(portable)
    out = _fresh(LOAD.format(pre="", root=str(root), name="portable"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "nas_tf_imported False" in out.stdout
    assert float(out.stdout.split("max_diff ")[1].split()[0]) < 1e-5


@pytest.mark.slow  # an export option; the default portable export is tested above in the default run
def test_export_can_keep_the_custom_ops_and_then_needs_nas_tf(exported):
    root, _, custom, _ = exported
    assert b"NasTfPaddedConcat" in _graph_ops(custom)
    without = _fresh(LOAD.format(pre="", root=str(root), name="custom"))
    assert without.returncode != 0 and "Op type not registered 'NasTfPaddedConcat'" in without.stderr
    # `import nas_tf` (before TensorFlow) is enough: the op library is registered
    # as TensorFlow is imported; the gradient works too.
    pre = "import nas_tf\n"
    code = LOAD.format(pre=pre, root=str(root), name="custom") + (
        "x = tf.constant(xa)\n"
        "with tf.GradientTape() as t:\n"
        "    t.watch(x)\n"
        "    s = tf.reduce_sum(m.serve([x, tf.constant(xb)]))\n"
        "print('grad_finite', bool(np.isfinite(t.gradient(s, x).numpy()).all()))\n"
    )
    with_nas_tf = _fresh(code, pythonpath=REPO)
    assert with_nas_tf.returncode == 0, with_nas_tf.stderr[-2000:]
    assert float(with_nas_tf.stdout.split("max_diff ")[1].split()[0]) < 1e-5
    assert "grad_finite True" in with_nas_tf.stdout


@pytest.mark.slow
def test_saved_model_cli_wrapper_runs_a_custom_op_export(exported):
    root, _, custom, expected = exported
    args = ["run", "--dir", custom, "--tag_set", "serve", "--signature_def", "serving_default",
            "--inputs", f"keras_tensor={root / 'xa.npy'};keras_tensor_1={root / 'xb.npy'}",
            "--outdir", str(root / "cli_out"), "--overwrite"]
    show = subprocess.run([sys.executable, "-m", "nas_tf.cli.saved_model_cli", "show", "--dir", custom,
                           "--tag_set", "serve", "--signature_def", "serving_default"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"))
    assert show.returncode == 0, show.stderr[-2000:]
    names = [line.split("inputs['")[1].split("']")[0] for line in show.stdout.splitlines() if "inputs['" in line]
    assert len(names) == 2
    args[8] = f"{names[0]}={root / 'xa.npy'};{names[1]}={root / 'xb.npy'}"
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-m", "nas_tf.cli.saved_model_cli", *args],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    saved = [f for f in os.listdir(root / "cli_out") if f.endswith(".npy")]
    assert len(saved) == 1
    np.testing.assert_allclose(np.load(root / "cli_out" / saved[0]), expected, atol=1e-5)
