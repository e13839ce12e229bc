"""Small end-to-end runs of scripts/search_enas.py (the README's main job) for every space."""

import json
import os

import tensorflow as tf

import nas_tf
from conftest import run_script
from nas_tf.utils import read_jsonl

TINY = [
    "--num_epochs=1",
    "--controller_steps=2",
    "--controller_aggregate=2",
    "--derive_samples=3",
    "--derive_batches=1",
    "--shared_steps_per_epoch=3",
]


def _summary(out):
    return json.loads(out.stdout[out.stdout.index("{") :])


def test_search_enas_micro_searches_retrains_exports_and_resumes(tmp_path):
    model_dir = str(tmp_path / "run")
    out = run_script(
        "search_enas.py", f"--model_dir={model_dir}", *TINY, "--enas_nodes=2", "--enas_filters=4",
        "--final_epochs=1", "--final_filters=4", "--op_selection=merged",  # the quicker trace
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = _summary(out)
    assert summary["search"]["trace_counts"] == {"train_step": 1, "reward_step": 1}
    assert summary["search"]["controller_updates"] == 2
    assert "epoch 1/1 shared weights" in out.stderr and "derived 3 architectures" in out.stderr
    for name in ("history.jsonl", "epochs.jsonl", "derived.jsonl", "best_arch.json", "best.json", "flags.json",
                 "checkpoints", "tensorboard", "final/metrics.json", "final/model.keras"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    with open(os.path.join(model_dir, "search_config.json")) as f:
        record = json.load(f)
    # The authors' controller settings for micro search are the defaults.
    searcher = record["searcher"]
    assert searcher["learning_rate"] == 3.5e-3 and searcher["entropy_mode"] == "reward"
    assert searcher["baseline_update"] == "before" and searcher["beta_1"] == 0.0
    rows = read_jsonl(os.path.join(model_dir, "history.jsonl"))
    assert len(rows) == 4 and all(0.0 <= r["reward"] <= 1.0 for r in rows)
    best = nas_tf.load_arch(os.path.join(model_dir, "best_arch.json"))
    assert best.space == "nasnet" and len(best.normal.blocks) == 2  # the NASNet builders read it
    # The export serves images without nas_tf's Python code.
    loaded = tf.saved_model.load(summary["final"]["saved_model"])
    assert loaded.serve(tf.zeros((2, 8, 8, 1))).shape == (2, 10)
    # The same command with one more epoch resumes the search after epoch 1.
    again = run_script(
        "search_enas.py", f"--model_dir={model_dir}", *TINY[1:], "--num_epochs=2", "--enas_nodes=2",
        "--enas_filters=4", "--final_epochs=0", "--op_selection=merged",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert _summary(again)["search"]["controller_updates"] == 4
    assert len(read_jsonl(os.path.join(model_dir, "history.jsonl"))) == 8
    # Other settings in the same directory are refused, naming the change.
    bad = run_script(
        "search_enas.py", f"--model_dir={model_dir}", *TINY, "--enas_nodes=3", "--enas_filters=4", "--op_selection=merged"
    )
    assert bad.returncode == 1 and "num_nodes" in bad.stderr


def test_search_enas_macro_and_rnn_run(tmp_path):
    macro = run_script(
        "search_enas.py", "--space=macro", f"--model_dir={tmp_path / 'macro'}", *TINY, "--enas_layers=3",
        "--enas_filters=4", "--final_epochs=1", "--noexport",
    )
    assert macro.returncode == 0, macro.stderr[-3000:]
    assert nas_tf.load_arch(str(tmp_path / "macro" / "best_arch.json")).space == "enas_macro"
    assert 0.0 <= _summary(macro)["final"]["test_accuracy"] <= 1.0
    rnn = run_script(
        "search_enas.py", "--space=rnn", f"--model_dir={tmp_path / 'rnn'}", *TINY, "--enas_nodes=3",
        "--lm_units=16", "--final_epochs=1", "--noexport",
    )
    assert rnn.returncode == 0, rnn.stderr[-3000:]
    assert nas_tf.load_arch(str(tmp_path / "rnn" / "best_arch.json")).space == "enas_rnn"
    assert _summary(rnn)["final"]["test_perplexity"] > 1.0
