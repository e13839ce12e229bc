"""One conformance suite over every class nas_tf registers for Keras serialisation.

For each registered class (cells, cell ops, PaddedConcat, ScheduledDropPath,
the image preprocessing, the controller, the language models and supernets): the config round-trips
through ``from_config`` and JSON, and a ``.keras`` file of it loads in a fresh
interpreter after ``import nas_tf`` alone (no ``custom_objects``, nothing else
of nas_tf imported) and gives the same outputs. A class registered without a
recipe here fails the suite, so a new layer is tested the day it is registered.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import nas_tf
from conftest import REPO
from nas_tf._tf_hook import KERAS_CLASSES


def _rng(seed=0):
    return np.random.default_rng(seed)


def _images(shape=(2, 8, 8, 4)):
    return _rng().normal(size=shape).astype("float32")


def _in_model(layer, *input_shapes):
    """A functional model around ``layer`` (what a user saves)."""
    inputs = [keras.Input(s) for s in input_shapes]
    out = layer(inputs if len(inputs) > 1 else inputs[0])
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], out)


def _rnn(cell, features=5):
    inputs = keras.Input((4, features))
    return keras.Model(inputs, keras.layers.RNN(cell, return_sequences=True)(inputs))


def _sequence(features=5):
    return _rng(1).normal(size=(2, 4, features)).astype("float32")


def _recipes():
    """``{class name: () -> (the object, a Keras model holding it, inputs, outputs of the model)}``."""
    from nas_tf import layers
    from nas_tf.controller import controller_for
    from nas_tf.data.images import ImagePreprocessing
    from nas_tf.models import build_language_model
    from nas_tf.models.enas_macro import EnasMacroSupernet
    from nas_tf.models.enas_micro import EnasMicroSupernet
    from nas_tf.models.enas_rnn import EnasRnnSupernetLM
    from nas_tf.spaces import EnasMacroSpace, EnasMicroSpace, EnasRnnSpace, NASCNNSpace

    def op(layer, shape=(8, 8, 4)):
        return lambda: (layer, _in_model(layer, shape), [_images((2,) + shape)])

    def cell(c):
        return lambda: (c, _rnn(c), [_sequence()])

    def tokens(vocab=30):
        return _rng(2).integers(0, vocab, size=(2, 6)).astype("int32")

    def lm():
        model = build_language_model(30, nas_tf.load_arch("nascell"), units=8, tie_weights=True)
        return model, model, [tokens()]

    def supernet_lm():
        space = EnasRnnSpace(num_nodes=3)
        model = EnasRnnSupernetLM(space, 30, units=8, tie_weights=True)
        arch = space.decisions.random_tokens(_rng(3), 1)[0]
        model.build()
        return model, model, [tokens(), np.asarray(arch, "int32")]

    def image_supernet(cls, space):
        def make():
            model = cls(space, 10, filters=4, **({"num_cells": 1} if cls is EnasMicroSupernet else {}))
            arch = np.asarray(space.decisions.random_tokens(_rng(5), 1)[0], "int32")
            return model, model, [_images((2, 8, 8, 1)), arch]

        return make

    def controller():
        decisions = NASCNNSpace(num_layers=2).decisions
        model = controller_for(decisions, lstm_units=8, lstm_layers=1, seed=0)
        return model, model, [decisions.random_tokens(_rng(4), 3)]

    return {
        "BranchMaxPooling2D": op(layers.BranchMaxPooling2D(3, 1, padding="same")),
        "Controller": controller,
        "EnasMacroSupernet": image_supernet(EnasMacroSupernet, EnasMacroSpace(num_layers=3)),
        "EnasMicroSupernet": image_supernet(EnasMicroSupernet, EnasMicroSpace(num_nodes=2)),
        "EnasRnnCell": cell(layers.EnasRnnCell(nas_tf.load_arch("enas_rnn"), 6)),
        "EnasRnnSupernetLM": supernet_lm,
        "FactorizedConv": op(layers.FactorizedConv(6, kernel_size=3)),
        "FactorizedReduction": op(layers.FactorizedReduction(6)),
        "IdentityOp": op(layers.IdentityOp(6, strides=2)),
        "ImagePreprocessing": op(ImagePreprocessing(16.0)),
        "LanguageModel": lm,
        "NASCell": cell(layers.NASCell(6, projection=4)),
        "NB201Cell": op(layers.NB201Cell(nas_tf.load_arch("nb201_resnet"), 4)),
        "PaddedConcat": lambda: (
            (pc := layers.PaddedConcat()),
            _in_model(pc, (8, 8, 2), (4, 6, 3)),
            [_images((2, 8, 8, 2)), _images((2, 4, 6, 3))],
        ),
        "PoolOp": op(layers.PoolOp(6, pool_type="max", strides=2)),
        "ReLUConvBN": op(layers.ReLUConvBN(6, kernel_size=3)),
        "ScheduledDropPath": op(layers.ScheduledDropPath(0.7, 1, 3, seed=1)),
        "SeparableConvStack": op(layers.SeparableConvStack(6, kernel_size=3)),
        "TreeCell": cell(layers.TreeCell(nas_tf.load_arch("nascell"), 6)),
    }


def _outputs(model, inputs):
    """Deterministic outputs of a model of the suite, as numpy arrays."""
    from nas_tf.controller import Controller
    from nas_tf.models.enas_macro import EnasMacroSupernet
    from nas_tf.models.enas_micro import EnasMicroSupernet
    from nas_tf.models.enas_rnn import EnasRnnSupernetLM
    from nas_tf.models.language_model import LanguageModel
    from nas_tf.spaces import NASCNNSpace

    if isinstance(model, Controller):
        return [np.asarray(model.log_prob(NASCNNSpace(num_layers=2).decisions, inputs[0]))]
    if isinstance(model, EnasRnnSupernetLM):
        return [np.asarray(model(inputs[0], inputs[1])[0])]
    if isinstance(model, (EnasMacroSupernet, EnasMicroSupernet)):
        return [np.asarray(model(inputs[0], inputs[1], training=False))]
    if isinstance(model, LanguageModel):
        return [np.asarray(model(inputs[0])[0])]
    out = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return [np.asarray(out)]


def test_every_registered_class_has_a_recipe_and_is_listed_for_lazy_loading():
    import nas_tf.controller  # noqa: F401
    import nas_tf.data.images  # noqa: F401
    import nas_tf.layers  # noqa: F401
    import nas_tf.models  # noqa: F401
    import nas_tf.models.enas_macro  # noqa: F401
    import nas_tf.models.enas_micro  # noqa: F401
    import nas_tf.models.enas_rnn  # noqa: F401

    registered = {
        name.split(">", 1)[1]: obj.__module__
        for name, obj in keras.saving.get_custom_objects().items()
        if name.startswith("nas_tf>") and isinstance(obj, type)
    }
    assert registered == KERAS_CLASSES
    assert set(_recipes()) == set(KERAS_CLASSES)


@pytest.mark.parametrize("name", sorted(KERAS_CLASSES))
def test_config_round_trips(name):
    obj = _recipes()[name]()[0]
    config = obj.get_config()
    assert json.loads(json.dumps(config)) == config
    clone = type(obj).from_config(config)
    assert clone.get_config() == config


LOADER = r"""
import json, sys
import numpy as np
import nas_tf, keras
root = sys.argv[1]
assert "nas_tf.layers" not in sys.modules and "nas_tf.models" not in sys.modules
diffs = {}
for name in json.load(open(root + "/names.json")):
    model = keras.saving.load_model(f"{root}/{name}.keras")
    data = np.load(f"{root}/{name}.npz")
    inputs = [data[f"in{i}"] for i in range(int(data["n_in"]))]
    expected = data["out"]
    sys.path.insert(0, sys.argv[2])
    from test_conformance import _outputs
    got = _outputs(model, inputs)[0]
    diffs[name] = [type(model).__module__, float(np.abs(got - expected).max())]
print(json.dumps(diffs))
"""


def test_keras_files_load_after_import_nas_tf_alone_and_give_the_same_outputs(tmp_path):
    names = sorted(KERAS_CLASSES)
    recipes = _recipes()
    for name in names:
        obj, model, inputs = recipes[name]()
        expected = _outputs(model, inputs)[0]
        model.save(tmp_path / f"{name}.keras")
        np.savez(tmp_path / f"{name}.npz", out=expected, n_in=len(inputs), **{f"in{i}": x for i, x in enumerate(inputs)})
    (tmp_path / "names.json").write_text(json.dumps(names))
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", LOADER, str(tmp_path), tests_dir], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    diffs = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(diffs) == set(names)
    for name, (module, diff) in diffs.items():
        assert module.startswith("nas_tf") or module.startswith("keras"), (name, module)
        assert diff < 1e-5, (name, diff)
