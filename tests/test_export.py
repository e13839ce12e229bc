"""Exports that serve correctly: raw inputs, preprocessing inside, named signatures, one export command.

A NAS-CNN child is retrained on the embedded digits and a NAS recurrent cell
on a slice of the embedded text (final training writes ``model.keras`` and
``saved_model/`` through :func:`nas_tf.export.export`); the TFLite files are
written by the same function. A fresh interpreter then serves them:

* without importing nas_tf it feeds the SavedModel and the TFLite files the
  raw digits exactly as scikit-learn gives them (float counts 0-16) and
  token ids, and must reproduce the Keras model's accuracy on the same
  images preprocessed by the training pipeline (``ImageData.batches``), and
  its perplexity;
* the same interpreter then imports nas_tf and Keras and loads every
  ``.keras`` file a script writes -- the children of every image space and
  both recurrent cells -- and gets the outputs computed here.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import nas_tf
from conftest import REPO, run_main

ARCH = {
    "space": "nas_cnn",
    "layers": [
        {"filter_height": 3, "filter_width": 3, "num_filters": 24, "inputs": []},
        {"filter_height": 3, "filter_width": 3, "num_filters": 36, "stride_height": 2, "stride_width": 2, "inputs": [0]},
        {"filter_height": 1, "filter_width": 1, "num_filters": 24, "inputs": [0, 1]},
    ],
}


def _all_digits_pipeline_accuracy(network):
    """The network's accuracy on all 1,797 digits, preprocessed by the training pipeline (no augmentation)."""
    from sklearn.datasets import load_digits as sk_digits

    from nas_tf.data.images import Augmentation, ImageData

    digits = sk_digits()
    stored = (digits.images / 16.0).astype(np.float32)[..., None]  # what load_digits() keeps
    data = ImageData("digits", {"train": (stored, digits.target), "test": (stored, digits.target)}, 10, Augmentation())
    logits = np.concatenate([np.asarray(network(x, training=False)) for x, _ in data.batches("test", 512)])
    return float(np.mean(logits.argmax(-1) == digits.target)), logits


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A NAS-CNN child retrained on the digits (final training), and its TFLite exports."""
    from nas_tf.data import load_digits
    from nas_tf.export import export_from_dir, network_of
    from nas_tf.tasks.image.final import FinalImageConfig, train_final_image

    root = tmp_path_factory.mktemp("image")
    model_dir = str(root / "final")
    metrics = train_final_image(nas_tf.load_arch(ARCH), load_digits(), model_dir, FinalImageConfig(epochs=4, batch_size=32))
    serving = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
    accuracy, logits = _all_digits_pipeline_accuracy(network_of(serving))
    reports = {
        "tflite": export_from_dir(model_dir, format="tflite"),
        "tflite_int8": export_from_dir(model_dir, format="tflite", quantize=True),
    }
    return {"dir": model_dir, "metrics": metrics, "accuracy": accuracy, "logits": logits, "reports": reports}


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A NAS recurrent cell (NASCell) retrained on a slice of the embedded text, and its TFLite export."""
    from nas_tf.data import load_pydoc_corpus
    from nas_tf.export import export_from_dir
    from nas_tf.tasks.text.final import FinalLMConfig, train_final_lm

    corpus = load_pydoc_corpus()
    corpus = corpus.subset("train", 3000).subset("validation", 400).subset("test", 400)
    root = tmp_path_factory.mktemp("text")
    model_dir = str(root / "final")
    config = FinalLMConfig(epochs=1, batch_size=8, bptt=10, model_options={"units": 16, "num_layers": 1, "tie_weights": True})
    train_final_lm(nas_tf.load_arch("nascell"), corpus, model_dir, config)
    report = export_from_dir(model_dir, format="tflite")
    model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
    tokens = np.asarray(corpus.splits["test"][:241], np.int32)
    x, y = tokens[:-1].reshape(4, 60), tokens[1:].reshape(4, 60)
    logits = np.asarray(model(x)[0])
    np.save(root / "tokens.npy", x)
    np.save(root / "targets.npy", y)
    return {"dir": model_dir, "root": str(root), "corpus": corpus, "model": model, "logits": logits, "report": report,
            "perplexity": _perplexity(logits, y)}


def _perplexity(logits, targets):
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    return float(np.exp(-np.take_along_axis(logp, targets[..., None], -1).mean()))


SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

image_dir, text_root, out_dir, repo = sys.argv[1:5]
digits = load_digits()
raw = digits.images[..., None].astype(np.float32)   # what a user holds: counts 0-16
out = {}
signature = tf.saved_model.load(image_dir + "/saved_model").signatures["serving_default"]
served = signature(images=tf.constant(raw))
out["sm_inputs"] = sorted(signature.structured_input_signature[1])
out["sm_outputs"] = sorted(served)
out["sm_accuracy"] = float(np.mean(served["logits"].numpy().argmax(-1) == digits.target))
out["sm_prob_sum"] = float(np.abs(served["probabilities"].numpy().sum(-1) - 1).max())
np.save(out_dir + "/sm_logits.npy", served["logits"].numpy())
for name in ("model.tflite", "model_int8.tflite"):
    interpreter = tf.lite.Interpreter(model_path=image_dir + "/export/" + name)
    runner = interpreter.get_signature_runner("serving_default")
    logits = runner(images=raw)["logits"]
    out[name] = {"signatures": interpreter.get_signature_list(), "accuracy": float(np.mean(logits.argmax(-1) == digits.target))}
# The language model: token ids in, the vocabulary beside.
tokens, targets = np.load(text_root + "/tokens.npy"), np.load(text_root + "/targets.npy")
lm = tf.saved_model.load(text_root + "/final/saved_model")
logits = lm.signatures["serving_default"](tokens=tf.constant(tokens))["logits"].numpy()
sizes = [int(s.shape[-1]) for s in lm.signatures["serve_with_state"].structured_input_signature[1].values() if s.name.startswith("state")]
with_state = lm.signatures["serve_with_state"]
first = with_state(tokens=tf.constant(tokens[:, :25]), **{f"state_{i}": tf.zeros((4, s)) for i, s in enumerate(sizes)})
second = with_state(tokens=tf.constant(tokens[:, 25:]), **{f"state_{i}": first[f"state_{i}"] for i in range(len(sizes))})
streamed = np.concatenate([first["logits"].numpy(), second["logits"].numpy()], axis=1)
runner = tf.lite.Interpreter(model_path=text_root + "/final/export/model.tflite").get_signature_runner("serving_default")
tfl = np.concatenate([runner(tokens=tokens[i : i + 1])["logits"] for i in range(len(tokens))])
np.save(out_dir + "/lm_served.npy", np.stack([logits, streamed, tfl]))
out["vocab"] = open(text_root + "/final/saved_model/assets.extra/vocab.txt").read().split("\n")[:-1]
out["nas_tf_imported"] = any(m == "nas_tf" or m.startswith("nas_tf.") for m in sys.modules)

# Then every .keras file a script writes loads after `import nas_tf` alone (nothing else of nas_tf imported).
sys.path.insert(0, repo)
import nas_tf
import keras
out["nas_tf_file"] = nas_tf.__file__
diffs = {}
for name, entry in json.load(open(out_dir + "/keras_files.json")).items():
    model = keras.saving.load_model(entry["path"])
    x = np.load(entry["inputs"])
    y = model(x, training=False)
    y = y[0] if isinstance(y, (tuple, list)) else y
    diffs[name] = float(np.abs(np.asarray(y) - np.load(entry["outputs"])).max())
out["keras_diffs"] = diffs
print(json.dumps(out))
"""



def _space_models():
    """An untrained child of every image space (NASNet with its auxiliary head) and both recurrent cells."""
    from nas_tf.data.images import RAW_PIXELS
    from nas_tf.export import image_serving_model
    from nas_tf.models import build_language_model
    from nas_tf.models.registry import build_image_model
    from nas_tf.spaces import EnasMacroSpace, EnasMicroSpace

    rng = np.random.default_rng(0)
    archs = {
        "nas_cnn": (nas_tf.load_arch(ARCH), {}),
        "nasnet": (nas_tf.load_arch("nasnet_a"), {"num_cells": 1, "num_conv_filters": 8, "aux_head": True}),
        "enas_macro": (EnasMacroSpace(num_layers=3).from_tokens(EnasMacroSpace(num_layers=3).decisions.random_tokens(rng, 1)[0]), {}),
        # ENAS micro cells are NASNet archs, retrained in the ENAS final network (drivers._enas_retrain).
        "enas_micro": (EnasMicroSpace(num_nodes=3).from_tokens(EnasMicroSpace(num_nodes=3).decisions.random_tokens(rng, 1)[0]),
                       {"num_cells": 1, "num_conv_filters": 8, "skeleton": "cifar", "stem_multiplier": 3.0,
                        "adjust_first_prev": True, "drop_path_keep_prob": 0.9, "aux_head": True}),
    }
    models = {}
    for name, (arch, options) in archs.items():
        network = build_image_model(arch, (8, 8, 1), 10, **options)
        models[name] = (image_serving_model(network, RAW_PIXELS["digits"]), (rng.random((3, 8, 8, 1)) * 16).astype("float32"))
    for cell in ("nascell", "enas_rnn"):
        lm = build_language_model(30, nas_tf.load_arch(cell), units=8, num_layers=1)
        models[f"lm_{cell}"] = (lm, rng.integers(0, 30, (2, 5)).astype("int32"))
    return models


@pytest.fixture(scope="module")
def served(image_run, text_run, tmp_path_factory):
    """Runs the fresh interpreter (serving without nas_tf, then .keras files after ``import nas_tf``)."""
    from nas_tf.export import export

    root = tmp_path_factory.mktemp("keras_files")
    entries = {}
    for name, (model, x) in _space_models().items():
        path = str(root / f"{name}.keras")
        export(model, path, "keras", check=False)  # loaded back by the fresh interpreter
        y = model(x, training=False)
        np.save(root / f"{name}_x.npy", x)
        np.save(root / f"{name}_y.npy", np.asarray(y[0] if isinstance(y, (tuple, list)) else y))
        entries[name] = {"path": path, "inputs": str(root / f"{name}_x.npy"), "outputs": str(root / f"{name}_y.npy")}
    # What the scripts themselves wrote: final training's model.keras of the digits child and of the cell.
    x = (np.random.default_rng(1).random((3, 8, 8, 1)) * 16).astype("float32")
    digits_model = keras.saving.load_model(os.path.join(image_run["dir"], "model.keras"))
    np.save(root / "final_x.npy", x)
    np.save(root / "final_y.npy", np.asarray(digits_model(x)))
    entries["train_final_digits"] = {"path": os.path.join(image_run["dir"], "model.keras"),
                                     "inputs": str(root / "final_x.npy"), "outputs": str(root / "final_y.npy")}
    (root / "keras_files.json").write_text(json.dumps(entries))
    # PYTHONPATH empty: nas_tf is importable only once the script puts the repository on its path.
    env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", SERVE, image_run["dir"], text_run["root"], str(root), REPO], env=env,
                         cwd="/", capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return {"serve": answer, "root": str(root)}


def test_raw_digits_served_without_nas_tf_score_what_the_keras_model_scores(image_run, served):
    out = served["serve"]
    assert not out["nas_tf_imported"]
    keras_accuracy = image_run["accuracy"]
    assert keras_accuracy > 0.6  # a trained child: a wrong preprocessing would score near chance (0.1)
    # The SavedModel takes the raw counts 0-16 and scores exactly what the network scores on the training pipeline.
    assert out["sm_inputs"] == ["images"] and out["sm_outputs"] == ["logits", "probabilities"]
    assert out["sm_accuracy"] == keras_accuracy
    np.testing.assert_allclose(np.load(os.path.join(served["root"], "sm_logits.npy")), image_run["logits"], atol=1e-4)
    assert out["sm_prob_sum"] < 1e-5
    tflite = out["model.tflite"]
    assert tflite["signatures"] == {"serving_default": {"inputs": ["images"], "outputs": ["logits", "probabilities"]}}
    assert tflite["accuracy"] == keras_accuracy
    assert abs(out["model_int8.tflite"]["accuracy"] - keras_accuracy) <= 0.02
    reports = image_run["reports"]
    assert reports["tflite"].max_abs_diff < 1e-4 and reports["tflite"].latency_ms > 0
    assert reports["tflite_int8"].quantized and reports["tflite_int8"].size_bytes < reports["tflite"].size_bytes
    metrics = image_run["metrics"]
    assert metrics["serving"]["max_value"] == 16.0 and metrics["exports"]["saved_model"]["max_abs_diff"] < 1e-5


def test_the_language_model_serves_token_ids_with_its_vocabulary(text_run, served):
    out = served["serve"]
    assert out["vocab"] == list(text_run["corpus"].vocab)
    with open(os.path.join(text_run["dir"], "vocab.txt")) as f:
        assert f.read().split("\n")[:-1] == list(text_run["corpus"].vocab)
    logits, streamed, tflite = np.load(os.path.join(served["root"], "lm_served.npy"))
    expected = text_run["logits"]
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    np.testing.assert_allclose(streamed, expected, atol=1e-5)  # states carried across two calls
    np.testing.assert_allclose(tflite, expected, atol=1e-4)
    targets = np.load(os.path.join(text_run["root"], "targets.npy"))
    assert _perplexity(tflite, targets) == pytest.approx(text_run["perplexity"], rel=1e-5)
    assert 1 < text_run["perplexity"] < text_run["corpus"].vocab_size
    assert text_run["report"].files == [os.path.join(text_run["dir"], "export", "vocab.txt")]


def test_every_keras_file_a_script_writes_loads_after_import_nas_tf(served):
    assert served["serve"]["nas_tf_file"].startswith(REPO)
    diffs = served["serve"]["keras_diffs"]
    assert set(diffs) == {"nas_cnn", "nasnet", "enas_macro", "enas_micro", "lm_nascell", "lm_enas_rnn", "train_final_digits"}
    assert max(diffs.values()) < 1e-5, diffs


def test_an_import_hook_survives_a_find_spec_that_does_not_import(tmp_path, monkeypatch):
    """TensorFlow's import asks where ``keras`` is (``importlib.util.find_spec``) before importing it:
    the hook that registers nas_tf's classes must still run when Keras is imported after that."""
    import importlib.util

    from nas_tf._tf_hook import _ImportHook

    (tmp_path / "nas_tf_probe_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []
    hook = _ImportHook("nas_tf_probe_module", lambda: calls.append(sys.modules["nas_tf_probe_module"].VALUE))
    sys.meta_path.insert(0, hook)
    try:
        assert importlib.util.find_spec("nas_tf_probe_module") is not None  # looked up, not imported
        assert calls == [] and hook in sys.meta_path
        import nas_tf_probe_module  # noqa: F401

        assert calls == [1] and hook not in sys.meta_path
    finally:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
        sys.modules.pop("nas_tf_probe_module", None)


def test_preprocessing_layer_is_the_training_pipeline_on_raw_pixels(digits):
    from sklearn.datasets import load_digits as sk_digits

    from nas_tf.data.images import RAW_PIXELS, ImagePreprocessing

    # The raw digits are scikit-learn's counts 0-16, exactly (every split together is the whole dataset).
    raw = np.concatenate([digits.raw_images(s) for s in ("train", "validation", "test")])
    assert raw.dtype == np.float32 and digits.raw_pixels == RAW_PIXELS["digits"]
    np.testing.assert_array_equal(np.sort(raw.reshape(len(raw), -1), axis=0),
                                  np.sort(sk_digits().images.reshape(len(raw), -1), axis=0))
    # On them the layer gives what the training pipeline feeds the network.
    pipeline = np.concatenate([x.numpy() for x, _ in digits.batches("test", 128)])
    np.testing.assert_allclose(digits.preprocessing()(digits.raw_images("test")).numpy(), pipeline, atol=1e-6)
    # uint8 images (CIFAR-10) against tf.image.per_image_standardization, flat images included.
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    x[1] = 200
    expected = tf.map_fn(tf.image.per_image_standardization, tf.cast(x, tf.float32) / 255.0).numpy()
    np.testing.assert_allclose(ImagePreprocessing(255.0)(x).numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="max_value must be a positive number, got 0"):
        ImagePreprocessing(0)


def test_a_cifar10_network_is_exported_for_uint8_pixels(tmp_path):
    from nas_tf.data.images import RAW_PIXELS, RawPixels
    from nas_tf.export import export, image_serving_model, network_of, raw_pixels_of
    from nas_tf.models.registry import build_image_model

    network = build_image_model(nas_tf.load_arch(ARCH), (32, 32, 3), 10)
    serving = image_serving_model(network, RAW_PIXELS["cifar10"])
    assert network_of(serving) is network and raw_pixels_of(serving) == RawPixels("uint8", 255.0)
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    expected = network(tf.map_fn(tf.image.per_image_standardization, tf.cast(x, tf.float32) / 255.0)).numpy()
    report = export(serving, str(tmp_path / "sm"), "saved_model", check_inputs=x)
    assert report.max_abs_diff < 1e-5
    signature = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    spec = signature.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 32, 32, 3]
    np.testing.assert_allclose(signature(images=tf.constant(x))["logits"].numpy(), expected, atol=1e-4)
    with pytest.raises(ValueError, match="reads preprocessed images"):
        export(network, str(tmp_path / "bare"), "saved_model")


def test_export_command_writes_and_checks_tflite_and_refuses_bad_flags(image_run, tmp_path):
    model_dir = image_run["dir"]
    output = tmp_path / "m.tflite"
    code, out, err = run_main("export.py", f"--model_dir={model_dir}", "--format=tflite", f"--output={output}",
                              "--latency_runs=20")
    assert code == 0, err
    report = json.loads(out[out.index("{"):])
    assert report["task"] == "image" and report["dataset"] == "digits" and report["path"] == str(output)
    assert report["max_abs_diff"] < 1e-4 and report["checked_on"] == 64 and report["agreement"] == 1.0
    assert report["latency_ms"] > 0 and output.is_file()
    # From the arch and the checkpoints of the same run: the same network.
    code, out, err = run_main("export.py", f"--arch={model_dir}/arch.json", f"--weights={model_dir}/checkpoints",
                              "--format=keras", f"--output={tmp_path / 'm.keras'}")
    assert code == 0, err
    rebuilt = keras.saving.load_model(tmp_path / "m.keras")
    x = (np.random.default_rng(2).random((4, 8, 8, 1)) * 16).astype("float32")
    original = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
    np.testing.assert_allclose(rebuilt(x), original(x), atol=1e-5)
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = {
        (f"--model_dir={tmp_path / 'nope'}",): f"--model_dir={tmp_path / 'nope'}: no such directory",
        (f"--model_dir={empty}",): f"--model_dir={empty}: no trained model in it",
        ("--arch=not_an_arch",): "--arch=not_an_arch:",
        (f"--model_dir={model_dir}", "--arch=nascell"): "give one of --model_dir",
        (): "give one of --model_dir",
        (f"--model_dir={model_dir}", "--format=keras", "--quantize"): "--quantize applies to --format=tflite, not --format=keras",
        (f"--model_dir={model_dir}", "--weights=w.weights.h5"): "--weights=w.weights.h5 goes with --arch",
        (f"--model_dir={model_dir}", "--format=keras", "--output=m.tflite"): "--output=m.tflite: a --format=keras file must end in .keras",
        ("--arch=nascell", "--options={units: 3"): "--options={units: 3: not JSON",
        ("--arch=nascell", f"--weights={tmp_path / 'missing.weights.h5'}"): f"--weights={tmp_path / 'missing.weights.h5'}: no such file",
        ("--arch=nascell", "--dataset=imagenet"): "--dataset=imagenet:",
    }
    for args, message in bad.items():
        code, out, err = run_main("export.py", *args)
        assert code == 1, (args, err)
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], (args, err)
    code, out, err = run_main("export.py", f"--model_dir={model_dir}", "--format=onnx")
    assert code == 2 and "--format" in err and "onnx" in err


def test_older_run_directories_export_too(image_run, tmp_path):
    """A model.keras holding the bare network (written before exports carried the preprocessing) is wrapped
    with the dataset's; a directory without model.keras is rebuilt from arch.json, metrics.json and checkpoints."""
    import shutil

    from nas_tf.export import is_image_serving_model, load_trained, network_of

    serving = keras.saving.load_model(os.path.join(image_run["dir"], "model.keras"))
    x = (np.random.default_rng(3).random((4, 8, 8, 1)) * 16).astype("float32")
    expected = np.asarray(serving(x))
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(os.path.join(image_run["dir"], "metrics.json"), old)
    network_of(serving).save(old / "model.keras")
    trained = load_trained(str(old))
    assert is_image_serving_model(trained.model) and trained.dataset == "digits" and len(trained.check_inputs) == 64
    np.testing.assert_allclose(trained.model(x), expected, atol=1e-5)
    bare = tmp_path / "checkpoints_only"
    shutil.copytree(image_run["dir"], bare, ignore=shutil.ignore_patterns("model.keras", "saved_model", "export"))
    trained = load_trained(str(bare))
    assert trained.source.endswith("checkpoints")
    np.testing.assert_allclose(trained.model(x), expected, atol=1e-5)
