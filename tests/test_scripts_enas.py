"""End-to-end runs of scripts/search_enas.py (the README's main job) for every space, and their exports.

The micro search runs as the README's main command does, with its default
``--op_selection=switch``, in a fresh interpreter; the macro and recurrent
searches, the resume and the refused settings run the same script in this
process (``conftest.run_main``). The three exported SavedModels are then
served together in one fresh interpreter that never imports nas_tf.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import nas_tf
from conftest import run_main, run_script
from nas_tf.utils import read_jsonl

TINY = [
    "--num_epochs=1",
    "--controller_steps=2",
    "--controller_aggregate=2",
    "--derive_samples=3",
    "--derive_batches=1",
    "--shared_steps_per_epoch=3",
]
MICRO = ["--enas_nodes=2", "--enas_filters=4", "--final_filters=4"]


def _summary(stdout):
    return json.loads(stdout[stdout.index("{") :])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three searches, retrained one epoch and exported."""
    root = tmp_path_factory.mktemp("enas")
    micro = run_script("search_enas.py", f"--model_dir={root / 'micro'}", *TINY, *MICRO, "--final_epochs=1")
    assert micro.returncode == 0, micro.stderr[-3000:]
    code, macro_out, macro_err = run_main(
        "search_enas.py", "--space=macro", f"--model_dir={root / 'macro'}", *TINY, "--enas_layers=3", "--enas_filters=4",
        "--final_epochs=1",
    )
    assert code == 0, macro_err[-3000:]
    code, rnn_out, rnn_err = run_main(
        "search_enas.py", "--space=rnn", f"--model_dir={root / 'rnn'}", *TINY, "--enas_nodes=3", "--lm_units=16",
        "--final_epochs=1",
    )
    assert code == 0, rnn_err[-3000:]
    return root, {"micro": (micro.stdout, micro.stderr), "macro": (macro_out, macro_err), "rnn": (rnn_out, rnn_err)}


def test_the_main_job_searches_with_the_default_op_selection_retrains_and_exports(runs):
    root, outs = runs
    stdout, stderr = outs["micro"]
    summary = _summary(stdout)
    # One trace of each step for every architecture of the search, with op_selection=switch (the default).
    assert summary["search"]["trace_counts"] == {"train_step": 1, "reward_step": 1}
    assert summary["search"]["controller_updates"] == 2
    assert "epoch 0 (1/1) shared weights" in stderr and "derived 3 architectures" in stderr
    assert "the first step traces the supernet" in stderr and "traced the shared-weights step in" in stderr
    assert "All log messages before absl" not in stderr
    model_dir = root / "micro"
    for name in ("history.jsonl", "epochs.jsonl", "derived.jsonl", "best_arch.json", "best.json", "flags.json",
                 "checkpoints", "tensorboard", "final/metrics.json", "final/model.keras", "final/saved_model",
                 "best_arch.svg", "best_arch.png"):
        assert os.path.exists(model_dir / name), name
    with open(model_dir / "search_config.json") as f:
        record = json.load(f)
    assert record["task"]["dataset"] == "digits"
    with open(model_dir / "flags.json") as f:
        assert json.load(f)["op_selection"] == "switch"
    # The authors' controller settings for micro search are the defaults.
    searcher = record["searcher"]
    assert searcher["learning_rate"] == 3.5e-3 and searcher["entropy_mode"] == "reward"
    assert searcher["baseline_update"] == "before" and searcher["beta_1"] == 0.0
    rows = read_jsonl(model_dir / "history.jsonl")
    assert len(rows) == 4 and all(0.0 <= r["reward"] <= 1.0 for r in rows)
    best = nas_tf.load_arch(str(model_dir / "best_arch.json"))
    assert best.space == "nasnet" and len(best.normal.blocks) == 2  # the NASNet builders read it


def test_macro_and_rnn_searches_write_their_archs(runs):
    root, outs = runs
    assert nas_tf.load_arch(str(root / "macro" / "best_arch.json")).space == "enas_macro"
    assert _summary(outs["macro"][0])["final"]["test_accuracy"] > 0.0
    assert nas_tf.load_arch(str(root / "rnn" / "best_arch.json")).space == "enas_rnn"
    assert _summary(outs["rnn"][0])["final"]["test_perplexity"] > 1.0


def test_a_search_resumes_and_other_settings_are_refused(runs, tmp_path):
    import shutil

    model_dir = tmp_path / "macro"
    shutil.copytree(runs[0] / "macro", model_dir)
    common = ["--space=macro", f"--model_dir={model_dir}", "--enas_filters=4", "--final_epochs=0"]
    # The same command with one more epoch resumes the search after epoch 1.
    code, out, err = run_main("search_enas.py", *common, "--enas_layers=3", *TINY[1:], "--num_epochs=2")
    assert code == 0, err[-3000:]
    assert _summary(out)["search"]["controller_updates"] == 4 and "resumed" in err
    assert len(read_jsonl(model_dir / "history.jsonl")) == 8
    # Other settings in the same directory are refused, naming the change.
    code, _, err = run_main("search_enas.py", *common, "--enas_layers=4", *TINY)
    assert code == 1 and "space.num_layers: was 3, now 4" in err and "other settings" in err


SERVE = r"""
import json, sys
import numpy as np, tensorflow as tf
root, out = sys.argv[1], sys.argv[2]
result = {}
for space in ("micro", "macro", "rnn"):
    model = tf.saved_model.load(f"{root}/{space}/final/saved_model")
    data = np.load(f"{out}/{space}.npy")
    result[space] = model.serve(tf.constant(data)).numpy().tolist()
assert not any(m.startswith("nas_tf") for m in sys.modules)
print(json.dumps(result))
"""


def test_every_enas_export_serves_in_a_process_without_nas_tf(runs, tmp_path):
    """The SavedModels of the three searches' retrained archs give the Keras models' outputs."""
    import keras

    root = runs[0]
    inputs = {
        "micro": np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype("float32"),
        "macro": np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype("float32"),
        "rnn": np.random.default_rng(2).integers(0, 100, size=(2, 7)).astype("int32"),
    }
    expected = {}
    for space, x in inputs.items():
        np.save(tmp_path / f"{space}.npy", x)
        model = keras.saving.load_model(root / space / "final" / "model.keras")
        y = model(x) if space != "rnn" else model(x)[0]
        expected[space] = np.asarray(y)
    env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", SERVE, str(root), str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    served = json.loads(out.stdout.strip().splitlines()[-1])
    for space, y in expected.items():
        np.testing.assert_allclose(np.asarray(served[space]), y, atol=1e-4, err_msg=space)
    assert tf.saved_model.contains_saved_model(str(root / "rnn" / "final" / "saved_model"))
