"""ENAS shared weights data-parallel: mirrored over 2 logical CPU devices, multi_worker over 2 local processes."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_cluster, run_script, start_cluster
from nas_tf.utils import read_jsonl

# A small macro search: 2 layers, 4 filters, 3 shared steps of 2 x 16 examples per epoch.
SMALL = [
    "--space=macro",
    "--enas_layers=2",
    "--enas_filters=4",
    "--op_selection=switch",  # the default; its chosen-op batch norm stays per replica
    "--shared_batch_size=16",
    "--shared_steps_per_epoch=3",
    "--num_epochs=2",
    "--controller_steps=2",
    "--controller_aggregate=2",
    "--derive_samples=3",
    "--derive_batches=1",
]
ROWS = 2 * 2 * 2  # epochs x controller steps x archs per step


def _summary(stdout):
    return json.loads(stdout[stdout.index("{") :])


STEP_CHECK = r"""
import contextlib, json
from nas_tf.distribute import make_strategy
mirrored = make_strategy("mirrored", num_cpu_devices=2)
import keras, numpy as np, tensorflow as tf
from nas_tf.data import load_digits
from nas_tf.models.enas_macro import EnasMacroSupernet
from nas_tf.tasks import ImageSupernetTask, SharedTrainingConfig
from nas_tf.spaces.enas_macro import EnasMacroSpace

space = EnasMacroSpace(num_layers=3)
data = load_digits()

def make_task(strategy, batch_size):
    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        net = EnasMacroSupernet(space, 10, filters=8, op_selection="all", weight_decay=1e-3)
    # A clip of 0.1 is active on every step: it must see the global gradient.
    return ImageSupernetTask(net, data, SharedTrainingConfig(batch_size=batch_size, grad_clip=0.1), strategy=strategy)

one, two = make_task(None, 32), make_task(mirrored, 16)
batches = [(x.numpy(), y.numpy()) for x, y in data.batches("train", 32, training=True, seed=1).take(3)]
archs = space.decisions.random_tokens(np.random.default_rng(0), 3)
losses = [[], []]
for (x, y), arch in zip(batches, archs):
    losses[0].append(one.shared_step(x, y, arch)[0])
    losses[1].append(two.shared_step(x, y, arch)[0])
weight_diff = max(float(np.abs(a.numpy() - b.numpy()).max())
                  for a, b in zip(one.supernet.trainable_variables, two.supernet.trainable_variables))
replica_diff = max(float(np.abs(np.asarray(r[0]) - np.asarray(r[1])).max())
                   for r in (mirrored.experimental_local_results(v.value) for v in two.supernet.trainable_variables))
synced = sum(1 for l in two.supernet._flatten_layers() if isinstance(l, keras.layers.BatchNormalization) and l.synchronized)
print(json.dumps({"losses": losses, "weight_diff": weight_diff, "replica_diff": replica_diff, "replicas": two.replicas,
                  "global_batch": two.global_batch_size, "synced": synced}))
"""


def test_shared_step_on_two_replicas_matches_one_device():
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", STEP_CHECK], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["global_batch"] == 32 and result["synced"] > 0
    one, two = result["losses"]
    # 2 replicas x 16 == 1 device x 32 for the same arch and seed, step after step (clipped, weight decay):
    # the same numbers up to float summation order (measured ~1e-7).
    assert two == pytest.approx(one, abs=1e-4)
    assert result["weight_diff"] < 1e-4
    assert result["replica_diff"] == 0.0  # the replicas hold identical shared weights


@pytest.mark.slow  # the library-level step test covers mirrored; keeps the default run short
def test_search_enas_mirrored_runs_to_the_end_and_retrains(tmp_path):
    model_dir = tmp_path / "run"
    out = run_script(
        "search_enas.py", f"--model_dir={model_dir}", *SMALL, "--strategy=mirrored", "--num_cpu_devices=2",
        "--final_epochs=1", "--noexport",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = _summary(out.stdout)
    assert summary["search"]["replicas"] == 2 and summary["search"]["controller_updates"] == 4
    assert summary["search"]["trace_counts"] == {"train_step": 1, "reward_step": 1}
    epochs = read_jsonl(model_dir / "epochs.jsonl")
    assert [e["steps"] for e in epochs] == [3, 3]  # global steps of 2 x 16 examples: one arch each
    assert len(read_jsonl(model_dir / "history.jsonl")) == ROWS
    assert 0.0 <= summary["final"]["test_accuracy"] <= 1.0  # the retrain ran under the strategy


def _multi_worker_args(model_dir, *extra):
    return [f"--model_dir={model_dir}", *SMALL, "--strategy=multi_worker", *extra]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted 2-worker search (the reference of the resume test)."""
    root = tmp_path_factory.mktemp("multi_worker")
    tmp = root / "tmp"  # the workers' temporary directories (the non-chief's checkpoint saves)
    tmp.mkdir()
    # With the retrain and its export after the search (under the same strategy).
    args = _multi_worker_args(root / "run", "--final_epochs=1")
    outs = run_cluster("search_enas.py", *args, env={"TMPDIR": str(tmp)}, timeout=600)
    return root, outs


def test_multi_worker_search_runs_to_the_end_and_only_the_chief_writes(uninterrupted):
    root, outs = uninterrupted
    for rc, _, stderr in outs:
        assert rc == 0, stderr[-3000:]
    chief, other = (_summary(stdout)["search"] for _, stdout, _ in outs)
    assert chief["worker"] == {"index": 0, "count": 2, "is_chief": True}
    assert other["worker"] == {"index": 1, "count": 2, "is_chief": False}
    assert chief["replicas"] == other["replicas"] == 2
    # Both workers report the same search: the same best arch and reward, identical scores.
    for key in ("best_reward", "controller_updates", "epochs", "best_arch"):
        assert chief[key] == other[key], key
    assert chief["workers_agree"] and other["workers_agree"]
    # Both workers retrained the winner together and report the same test accuracy.
    finals = [_summary(stdout)["final"] for _, stdout, _ in outs]
    assert finals[0]["test_accuracy"] == finals[1]["test_accuracy"]
    run = root / "run"
    # Only the chief wrote: every row once, one TensorBoard event file, no worker's temporary checkpoint left.
    rows = read_jsonl(run / "history.jsonl")
    assert len(rows) == ROWS and len({(r["update"], r["sample"]) for r in rows}) == ROWS
    assert [e["epoch"] for e in read_jsonl(run / "epochs.jsonl")] == [0, 1]
    assert len(read_jsonl(run / "derived.jsonl")) == 3
    assert len(os.listdir(run / "tensorboard")) == 1
    for name in ("best_arch.json", "best.json", "summary.json", "search_config.json", "flags.json"):
        assert (run / name).exists(), name
    assert not os.listdir(root / "tmp")
    assert sorted(os.listdir(run)) == sorted(
        ["best.json", "best_arch.json", "checkpoints", "derived.jsonl", "epochs.jsonl", "final", "flags.json",
         "history.jsonl", "search_config.json", "summary.json", "tensorboard"]
    )
    for name in ("metrics.json", "model.keras", "saved_model", "checkpoints"):  # the chief's export
        assert (run / "final" / name).exists(), name


def test_multi_worker_search_resumes_after_both_workers_are_killed(uninterrupted, tmp_path):
    model_dir = tmp_path / "run"
    args = _multi_worker_args(model_dir, "--final_epochs=0")
    procs = start_cluster("search_enas.py", *args)
    try:
        # Kill both once the controller phase of epoch 1 has begun (a checkpoint exists, history rows follow it).
        deadline = time.time() + 300
        while not (model_dir / "history.jsonl").exists() and time.time() < deadline:
            assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
            time.sleep(0.05)
        assert all(p.poll() is None for p in procs), "the search ended before it could be killed"
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.communicate()
    assert (model_dir / "checkpoints" / "checkpoint").exists()
    assert len(read_jsonl(model_dir / "history.jsonl", repair=False)) < ROWS
    # The same command on both workers finishes the search.
    for rc, _, stderr in run_cluster("search_enas.py", *args, timeout=600):
        assert rc == 0, stderr[-3000:]
    rows = read_jsonl(model_dir / "history.jsonl")
    reference = read_jsonl(uninterrupted[0] / "run" / "history.jsonl")
    keys = [(r["update"], r["sample"]) for r in rows]
    assert len(rows) == len(reference) == ROWS and len(set(keys)) == ROWS
    assert keys == [(r["update"], r["sample"]) for r in reference]
    assert [e["epoch"] for e in read_jsonl(model_dir / "epochs.jsonl")] == [0, 1]
    with open(model_dir / "summary.json") as f:
        assert json.load(f)["controller_updates"] == 4
