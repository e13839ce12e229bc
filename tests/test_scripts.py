"""Small end-to-end runs of the scripts, as a user runs them."""

import json
import os
import subprocess
import sys

import pytest

from conftest import run_main, run_script
from nas_tf.utils import read_jsonl

TINY = ["--num_architectures=4", "--archs_per_step=2", "--child_epochs=1",
            "--child_steps_per_epoch=6", "--start_depth=2"]


def test_search_nas_end_to_end_and_resume(tmp_path):
    model_dir = str(tmp_path / "run")
    out = run_script("search_nas.py", f"--model_dir={model_dir}", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout[out.stdout.index("{") :])
    assert summary["children"] == 4 and summary["steps"] == 2
    # Progress is visible while it runs.
    # Children and steps are numbered as in history.jsonl (from 0), with the progress and the arch.
    assert "child 0 (1/4, ETA" in out.stderr and "step 1 done (4/4 children)" in out.stderr
    assert "Outputs in" in out.stderr and "python scripts/train_final.py --arch=" in out.stderr
    # TensorFlow's start-up notices are filtered (NAS_TF_TF_LOGS=all keeps them).
    assert "All log messages before absl::InitializeLog" not in out.stderr and "oneDNN custom operations" not in out.stderr
    for name in ("history.jsonl", "best_arch.json", "best.json", "flags.json", "search_config.json", "checkpoints", "tensorboard",
                 "best_arch.svg", "best_arch.png", "tensorboard/children"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    # Every child is an HParams trial of the TensorBoard dashboard.
    assert sorted(n for n in os.listdir(os.path.join(model_dir, "tensorboard", "children")) if n.startswith("child_")) == [
        f"child_{i:05d}" for i in range(4)]
    with open(os.path.join(model_dir, "flags.json")) as f:
        flags = json.load(f)
    assert flags["num_architectures"] == 4 and flags["child_epochs"] == 1 and flags["model_dir"] == model_dir
    import nas_tf

    assert nas_tf.load_arch(os.path.join(model_dir, "best_arch.json")).space == "nas_cnn"
    # The same command again: nothing to do; a larger budget continues.
    code, _, err = run_main("search_nas.py", f"--model_dir={model_dir}", *TINY)
    assert code == 0 and len(read_jsonl(os.path.join(model_dir, "history.jsonl"))) == 4, err[-3000:]
    code, _, err = run_main("search_nas.py", f"--model_dir={model_dir}", *TINY[1:], "--num_architectures=6")
    assert code == 0, err[-3000:]
    rows = read_jsonl(os.path.join(model_dir, "history.jsonl"))
    assert [r["child"] for r in rows] == list(range(6))


ARCH_JSON = {
    "space": "nas_cnn",
    "layers": [
        {"filter_height": 3, "filter_width": 3, "num_filters": 24, "inputs": []},
        {"filter_height": 3, "filter_width": 3, "num_filters": 36, "stride_height": 2, "stride_width": 2, "inputs": [0]},
        {"filter_height": 1, "filter_width": 1, "num_filters": 24, "inputs": [0, 1]},
    ],
}


def _check_training_curves(model_dir, history):
    """train_final.py wrote the training curves (loss, accuracy, learning rate per epoch) and the model graph."""
    import tensorflow as tf

    steps, values, graphs = {}, {}, 0
    for name in os.listdir(model_dir / "tensorboard"):
        for event in tf.compat.v1.train.summary_iterator(str(model_dir / "tensorboard" / name)):
            graphs += bool(event.graph_def)
            for v in event.summary.value:
                steps.setdefault(v.tag, []).append(event.step)
                if v.tag != "keras":
                    values.setdefault(v.tag, []).append(float(tf.make_ndarray(v.tensor)))
    assert graphs == 1 and "keras" in steps  # the op graph and Keras' conceptual graph
    for tag in ("loss", "accuracy", "val_accuracy", "learning_rate"):
        assert steps[tag] == [1, 2], tag
    assert values["loss"] == pytest.approx(history["train_loss"]) and values["val_accuracy"] == pytest.approx(history["val_accuracy"])
    assert 0.1 > values["learning_rate"][0] > values["learning_rate"][1]  # the cosine schedule from lr 0.1


def test_train_final_trains_resumes_and_exports(tmp_path):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(ARCH_JSON))
    model_dir = tmp_path / "final"
    code, out, err = run_main("train_final.py", f"--arch={arch}", f"--model_dir={model_dir}", "--epochs=2", "--batch_size=64")
    assert code == 0, err[-3000:]
    summary = json.loads(out[out.index("{") :])
    assert 0.3 < summary["test_accuracy"] <= 1.0
    with open(model_dir / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["epochs_done"] == 2 and len(metrics["history"]["val_accuracy"]) == 2
    assert "epoch 2/2" in err
    _check_training_curves(model_dir, metrics["history"])
    # Resume: asking for more epochs continues from the checkpoint of epoch 2.
    code, _, err = run_main("train_final.py", f"--arch={arch}", f"--model_dir={model_dir}", "--epochs=3", "--batch_size=64", "--noexport")
    assert code == 0, err[-3000:]
    assert "resumed" in err and "epoch 3/3" in err and "epoch 1/3" not in err
    # The SavedModel serves in a fresh process that never imports nas_tf.
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(model_dir / 'saved_model')!r})\n"
        "y = m.serve(tf.zeros((2, 8, 8, 1)))\n"
        "assert 'nas_tf' not in sys.modules\n"
        "print(y.shape)\n"
    )
    served = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    assert served.returncode == 0, served.stderr[-2000:]
    assert "(2, 10)" in served.stdout


def test_train_final_trains_an_enas_macro_arch(tmp_path):
    """Every space the searches write trains with train_final.py (an ENAS macro arch of 3 layers here)."""
    arch = {"space": "enas_macro", "layers": [{"op": "max_pool_3x3", "skips": []}, {"op": "sep_conv_5x5", "skips": [0]},
                                              {"op": "conv_3x3", "skips": [0, 1]}], "reduce_after": [1]}
    arch_file = tmp_path / "macro.json"
    arch_file.write_text(json.dumps(arch))
    model_dir = tmp_path / "final"
    code, out, err = run_main("train_final.py", f"--arch={arch_file}", f"--model_dir={model_dir}", "--epochs=1",
                              "--batch_size=256", "--noexport")
    assert code == 0, err[-3000:]
    summary = json.loads(out[out.index("{") :])
    assert summary["test_accuracy"] > 0.0 and summary["params"] > 0
    written = json.load(open(model_dir / "arch.json"))
    assert written["space"] == "enas_macro" and written["layers"] == arch["layers"]


def test_search_nas_on_the_nb201_table_resumes_to_the_uninterrupted_search(tmp_path):
    """--space=nb201 --benchmark: rewards read from the table (no training), evolution checkpointed and resumed."""
    import importlib.util

    if importlib.util.find_spec("analognasbench") is None:
        pytest.skip('analog-nasbench is not installed (pip install ".[benchmarks]")')
    from nas_tf.benchmarks import nb201

    common = ["--space=nb201", "--benchmark=analog_nasbench", "--archs_per_step=4", "--algorithm=evolution",
              "--population_size=6", "--sample_size=3"]
    code, out, err = run_main("search_nas.py", f"--model_dir={tmp_path / 'whole'}", *common, "--num_architectures=16")
    assert code == 0, err[-3000:]
    whole = read_jsonl(tmp_path / "whole" / "history.jsonl")
    table = nb201()
    for row in whole:  # the reward is the table's test accuracy / 100, for every child
        assert row["reward"] == pytest.approx(table.query(row["arch"]["cell"])["test_accuracy"] / 100)
    assert json.loads(out[out.index("{") :])["best_reward"] == max(r["reward"] for r in whole)
    # Stopped after 8 children, then extended to 16: the same search as the uninterrupted one.
    split = tmp_path / "split"
    assert run_main("search_nas.py", f"--model_dir={split}", *common, "--num_architectures=8")[0] == 0
    code, _, err = run_main("search_nas.py", f"--model_dir={split}", *common, "--num_architectures=16")
    assert code == 0 and "resumed" in err, err[-3000:]
    assert [r["tokens"] for r in read_jsonl(split / "history.jsonl")] == [r["tokens"] for r in whole]


def test_latency_aware_search_records_costs_and_rewards_the_mnas_form(tmp_path):
    """--target_latency_ms: each child's latency (TFLite, batch 1), FLOPs and parameters in its row, and
    reward = (val_acc * (latency / target) ** w) ** exponent (soft MnasNet form)."""
    code, _, err = run_main(
        "search_nas.py", f"--model_dir={tmp_path}", "--num_architectures=2", "--archs_per_step=2", "--child_epochs=1",
        "--child_steps_per_epoch=3", "--start_depth=1", "--target_latency_ms=0.01", "--latency_weight=-0.5",
        "--latency_runs=3",
    )
    assert code == 0, err[-3000:]
    rows = read_jsonl(tmp_path / "history.jsonl")
    for row in rows:
        assert row["latency_ms"] > 0 and row["flops"] > 0 and row["params"] > 0
        expected = (row["val_accuracy"] * (row["latency_ms"] / 0.01) ** -0.5) ** 3
        assert row["reward"] == pytest.approx(expected, rel=1e-5)
    with open(tmp_path / "search_config.json") as f:  # a changed target is a changed search
        assert json.load(f)["evaluator"]["costs"]["targets"][0] == {"metric": "latency_ms", "target": 0.01, "weight": -0.5}


@pytest.mark.slow
def test_size_aware_enas_derivation_trades_score_against_the_final_networks_parameters(tmp_path):
    code, out, err = run_main(
        "search_enas.py", "--space=macro", f"--model_dir={tmp_path}", "--enas_layers=2", "--enas_filters=4",
        "--num_epochs=1", "--controller_steps=1", "--controller_aggregate=2", "--derive_samples=3",
        "--derive_batches=1", "--shared_steps_per_epoch=2", "--final_epochs=0", "--target_params=5000",
        "--params_weight=-1", "--cost_constraint=hard",
    )
    assert code == 0, err[-3000:]
    derived = read_jsonl(tmp_path / "derived.jsonl")
    for row in derived:
        factor = min(1.0, (row["params"] / 5000) ** -1)  # hard: a penalty over the target only
        assert row["reward"] == pytest.approx(row["score"] * factor, rel=1e-6)
    best = json.load(open(tmp_path / "best.json"))
    assert best["reward"] == max(r["reward"] for r in derived)
