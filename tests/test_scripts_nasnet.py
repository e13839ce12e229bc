"""Small end-to-end runs of scripts/search_nasnet.py and of train_final.py on NASNet archs."""

import json
import os
import subprocess
import sys

import pytest

import nas_tf
from conftest import run_main
from nas_tf.utils import read_jsonl

# Tiny children: 1 normal cell per stage, 4 filters, 2 blocks per cell, 4 steps.
TINY = [
    "--archs_per_step=2",
    "--child_epochs=1",
    "--child_steps_per_epoch=4",
    "--nasnet_cells=1",
    "--nasnet_filters=4",
    "--num_blocks=2",
]


def _summary(stdout):
    return json.loads(stdout[stdout.index("{") :])


def test_search_nasnet_end_to_end(tmp_path):
    model_dir = str(tmp_path / "run")
    # Children over 16,000 parameters fail (two of these four, about 9k to 21k parameters).
    code, out, err = run_main(
        "search_nasnet.py", f"--model_dir={model_dir}", "--num_architectures=4", "--max_child_params=16000", *TINY
    )
    assert code == 0, err[-3000:]
    summary = _summary(out)
    assert summary["children"] == 4 and summary["steps"] == 2
    # Children and steps are numbered as in history.jsonl (from 0), with the progress and the arch.
    assert "child 0 (1/4, ETA" in err and "step 1 done (4/4 children)" in err
    assert "Outputs in" in err and "python scripts/train_final.py --arch=" in err
    for name in ("history.jsonl", "best_arch.json", "best.json", "flags.json", "search_config.json", "checkpoints", "tensorboard"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    with open(os.path.join(model_dir, "search_config.json")) as f:
        record = json.load(f)
    # The NASNet search's settings: REINFORCE by default, 1-layer LSTM of 100 units, lr 3.5e-4,
    # entropy weight 1e-5, baseline decay 0.95; children with cosine decay.
    searcher = record["searcher"]
    assert searcher["algorithm"] == "reinforce" and searcher["learning_rate"] == 3.5e-4
    assert searcher["entropy_weight"] == 1e-5 and searcher["baseline_decay"] == 0.95
    assert searcher["controller"]["lstm_units"] == 100 and searcher["controller"]["lstm_layers"] == 1
    assert record["evaluator"]["optimizer"]["schedule"] == "cosine"
    assert record["evaluator"]["builder_options"]["num_cells"] == 1
    assert record["space"]["name"] == "nasnet" and len(record["space"]["ops"]) == 13
    rows = read_jsonl(os.path.join(model_dir, "history.jsonl"))
    assert [r["child"] for r in rows] == [0, 1, 2, 3]
    failed = [r for r in rows if r["status"] != "ok"]
    assert failed and len(failed) < 4 and summary["failed_children"] == len(failed)
    for r in rows:
        assert r["arch"]["space"] == "nasnet" and len(r["tokens"]) == 2 * 2 * 5
        if r["status"] != "ok":  # penalised, not trained
            assert (r["status"], r["reward"]) == ("too_large", 0.0) and "parameters > max_params=16000" in r["reason"]
        else:
            assert r["params"] <= 16000
            assert r["reward"] == pytest.approx(r["metrics"]["val_accuracies"][-1], abs=1e-6)  # final accuracy
    assert "FAILED (too_large" in err
    best = nas_tf.load_arch(os.path.join(model_dir, "best_arch.json"))
    assert best.space == "nasnet" and best.normal.num_blocks == 2
    with open(os.path.join(model_dir, "best.json")) as f:
        assert rows[json.load(f)["child"]]["status"] == "ok"


@pytest.mark.slow
def test_train_final_on_nasnet_a_with_drop_path_aux_head_and_cutout(tmp_path):
    model_dir = tmp_path / "final"
    code, out, err = run_main(
        "train_final.py", "--arch=nasnet_a", f"--model_dir={model_dir}", "--epochs=2", "--batch_size=64",
        "--nasnet_cells=1", "--nasnet_filters=8", "--drop_path_keep_prob=0.7", "--aux_head", "--cutout=4", "--lr=0.05",
    )
    assert code == 0, err[-3000:]
    summary = _summary(out)
    assert 0.3 < summary["test_accuracy"] <= 1.0
    with open(model_dir / "metrics.json") as f:
        metrics = json.load(f)
    config = metrics["config"]
    assert config["builder_options"]["aux_head"] and config["builder_options"]["drop_path_keep_prob"] == 0.7
    assert config["builder_options"]["num_cells"] == 1 and config["cutout"] == 4 and config["optimizer"]["schedule"] == "cosine"
    assert config["aux_weight"] == 0.4 and len(metrics["history"]["val_accuracy"]) == 2
    with open(model_dir / "arch.json") as f:
        assert json.load(f)["normal"]["concat"] == [1, 2, 3, 4, 5, 6]
    # The exported model maps images to logits (no auxiliary output) and serves without nas_tf.
    code = (
        "import sys, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(model_dir / 'saved_model')!r})\n"
        "y = m.serve(tf.zeros((2, 8, 8, 1)))\n"
        "assert 'nas_tf' not in sys.modules\n"
        "print(y.shape)\n"
    )
    served = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    assert served.returncode == 0, served.stderr[-2000:]
    assert "(2, 10)" in served.stdout
