"""End-to-end runs of the recurrent-cell path, as a user runs it: search, then retrain."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_main
from nas_tf.utils import read_jsonl

TINY = [
    "--space=nas_rnn", "--num_architectures=4", "--archs_per_step=2", "--child_epochs=1",
    "--child_steps_per_epoch=6", "--lm_units=16", "--rnn_base=4",
]


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("search") / "run")
    code, out, err = run_main("search_nas.py", f"--model_dir={model_dir}", *TINY)
    assert code == 0, err[-3000:]
    return model_dir, out, err


def test_search_nas_rnn_end_to_end_and_resume(search_dir):
    model_dir, out, err = search_dir
    summary = json.loads(out[out.index("{") :])
    assert summary["children"] == 4 and summary["steps"] == 2
    assert "child 0 (1/4, ETA" in err and "step 1 done (4/4 children)" in err and "val_ppl" in err
    rows = read_jsonl(os.path.join(model_dir, "history.jsonl"))
    assert [r["child"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert r["arch"]["space"] == "nas_rnn" and r["arch"]["base"] == 4 and len(r["tokens"]) == 2 * 7 + 4
        if r["status"] == "ok":  # c / ppl^2 with c = 80
            assert r["reward"] == pytest.approx(80.0 / r["metrics"]["val_perplexity"] ** 2, rel=1e-3)
        else:
            assert r["reward"] == 0.0 and r["reason"]
    with open(os.path.join(model_dir, "search_config.json")) as f:
        config = json.load(f)
    assert config["space"]["name"] == "nas_rnn" and config["space"]["base"] == 4
    assert config["searcher"]["learning_rate"] == pytest.approx(5e-4)  # the paper's PTB controller lr
    assert config["evaluator"]["dataset"].startswith("pydoc") and config["evaluator"]["reward_c"] == 80.0
    with open(os.path.join(model_dir, "flags.json")) as f:
        flags = json.load(f)
    assert flags["controller_lr"] == pytest.approx(5e-4) and flags["dataset"] == "pydoc" and flags["child_lr"] == 20.0
    import nas_tf

    assert nas_tf.load_arch(os.path.join(model_dir, "best_arch.json")).space == "nas_rnn"
    code, _, err = run_main("search_nas.py", f"--model_dir={model_dir}", *TINY)
    assert code == 0 and len(read_jsonl(os.path.join(model_dir, "history.jsonl"))) == 4, err[-3000:]


SERVE_CODE = """
import sys, numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
tokens = tf.constant(np.load(sys.argv[2]))
logits = m.serve(tokens).numpy()
sizes = [int(s) for s in sys.argv[3].split(",")]
zero = [tf.zeros((tokens.shape[0], s)) for s in sizes]
first = m.serve_with_state(tokens[:, :4], *zero)
second = m.serve_with_state(tokens[:, 4:], *[first[f"state_{i}"] for i in range(len(sizes))])
carried = np.concatenate([first["logits"].numpy(), second["logits"].numpy()], axis=1)
assert np.abs(carried - logits).max() < 1e-4, np.abs(carried - logits).max()
assert "nas_tf" not in sys.modules
np.save(sys.argv[4], logits)
"""


def test_train_final_on_the_searched_cell_resumes_and_exports(search_dir, tmp_path):
    arch = os.path.join(search_dir[0], "best_arch.json")
    model_dir = tmp_path / "final"
    args = [f"--arch={arch}", f"--model_dir={model_dir}", "--lm_units=16", "--batch_size=16"]
    code, _, err = run_main("train_final.py", *args, "--epochs=1", "--noexport")
    assert code == 0, err[-3000:]
    assert "epoch 1/1" in err and "test perplexity" in err
    code, out, err = run_main("train_final.py", *args, "--epochs=2")
    assert code == 0, err[-3000:]
    assert "resumed" in err and "epoch 2/2" in err and "epoch 1/2" not in err
    summary = json.loads(out[out.index("{") :])
    with open(model_dir / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["epochs_done"] == 2 and len(metrics["history"]["val_perplexity"]) == 2
    assert metrics["dataset"].startswith("pydoc") and metrics["config"]["optimizer"]["learning_rate"] == 20.0
    assert 1 < summary["test_perplexity"] < metrics["vocab_size"] and summary["params"] == metrics["params"]
    for name in ("arch.json", "model.keras", "saved_model", "flags.json", "checkpoints"):
        assert (model_dir / name).exists(), name
    # The SavedModel serves in a fresh process without nas_tf, with and without carried state;
    # the .keras model gives the same logits.
    import keras

    model = keras.models.load_model(model_dir / "model.keras")
    tokens = np.random.default_rng(0).integers(0, metrics["vocab_size"], (3, 9)).astype(np.int32)
    np.save(tmp_path / "tokens.npy", tokens)
    sizes = ",".join(str(s) for s in model.state_sizes())
    served = subprocess.run(
        [sys.executable, "-c", SERVE_CODE, str(model_dir / "saved_model"), str(tmp_path / "tokens.npy"), sizes, str(tmp_path / "out.npy")],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""),
    )
    assert served.returncode == 0, served.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), model(tokens)[0], atol=1e-5)
