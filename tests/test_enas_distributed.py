"""ENAS shared weights data-parallel: mirrored over 2 logical CPU devices, multi_worker over 2 local processes."""

import json
import os
import time

import pytest

from conftest import run_cluster, run_main, start_cluster
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


@pytest.mark.slow
def test_shared_step_on_two_replicas_matches_one_device():
    """2 replicas x 16 == 1 device x 32 for the same arch and seed, step after step (clipped, weight decay)."""
    import contextlib

    import keras
    import numpy as np

    from nas_tf.data import load_digits
    from nas_tf.distribute import make_strategy
    from nas_tf.models.enas_macro import EnasMacroSupernet
    from nas_tf.spaces.enas_macro import EnasMacroSpace
    from nas_tf.tasks import ImageSupernetTask, SharedTrainingConfig
    from nas_tf.utils.keras_private import sublayers

    mirrored = make_strategy("mirrored", num_cpu_devices=2)  # the session's 2 logical CPU devices
    space = EnasMacroSpace(num_layers=3)
    data = load_digits()

    def make_task(strategy, batch_size):
        keras.utils.set_random_seed(0)
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            net = EnasMacroSupernet(space, 10, filters=8, op_selection="all", weight_decay=1e-3)
        # A clip of 0.1 is active on every step: it must see the global gradient.
        return ImageSupernetTask(net, data, SharedTrainingConfig(batch_size=batch_size, grad_clip=0.1), strategy=strategy)

    one, two = make_task(None, 32), make_task(mirrored, 16)
    assert two.replicas == 2 and two.global_batch_size == 32
    assert any(isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized for layer in sublayers(two.supernet))
    batches = [(x.numpy(), y.numpy()) for x, y in data.batches("train", 32, training=True, seed=1).take(3)]
    archs = space.decisions.random_tokens(np.random.default_rng(0), 3)
    losses = [[], []]
    for (x, y), arch in zip(batches, archs):
        losses[0].append(one.shared_step(x, y, arch)[0])
        losses[1].append(two.shared_step(x, y, arch)[0])
    # The same numbers up to float summation order (measured ~1e-7).
    assert losses[1] == pytest.approx(losses[0], abs=1e-4)
    weight_diff = max(float(np.abs(a.numpy() - b.numpy()).max())
                      for a, b in zip(one.supernet.trainable_variables, two.supernet.trainable_variables))
    assert weight_diff < 1e-4
    replica_diff = max(float(np.abs(np.asarray(r[0]) - np.asarray(r[1])).max())
                       for r in (mirrored.experimental_local_results(v.value) for v in two.supernet.trainable_variables))
    assert replica_diff == 0.0  # the replicas hold identical shared weights


@pytest.mark.slow  # the library-level step test covers mirrored; keeps the default run short
@pytest.mark.parametrize("space", ["macro", "micro"])
def test_search_enas_mirrored_runs_to_the_end(tmp_path, space):
    """The search under mirrored (the retrain under a strategy: the multi-worker test below).

    Micro: the default search's supernet, whose chosen ops run as branch functions on its small cells.
    """
    model_dir = tmp_path / "run"
    args = SMALL if space == "macro" else ["--space=micro", "--enas_filters=4", *SMALL[3:]]
    code, out, err = run_main(
        "search_enas.py", f"--model_dir={model_dir}", *args, "--strategy=mirrored", "--num_cpu_devices=2",
        "--final_epochs=0",
    )
    assert code == 0, err[-3000:]
    summary = _summary(out)
    assert summary["search"]["replicas"] == 2 and summary["search"]["controller_updates"] == 4
    assert summary["search"]["trace_counts"] == {"train_step": 1, "reward_step": 1}
    epochs = read_jsonl(model_dir / "epochs.jsonl")
    assert [e["steps"] for e in epochs] == [3, 3]  # global steps of 2 x 16 examples: one arch each
    assert len(read_jsonl(model_dir / "history.jsonl")) == ROWS


def _multi_worker_args(model_dir, *extra):
    return [f"--model_dir={model_dir}", *SMALL, "--strategy=multi_worker", *extra]


@pytest.mark.slow
def test_multi_worker_search_killed_and_resumed_runs_to_the_end_and_only_the_chief_writes(tmp_path):
    """2 workers killed in the controller phase of epoch 1; the same command on both finishes the search."""
    root = tmp_path
    tmp = root / "tmp"  # the workers' temporary directories (the non-chief's checkpoint saves)
    tmp.mkdir()
    model_dir = root / "run"
    env = {"TMPDIR": str(tmp)}
    procs = start_cluster("search_enas.py", *_multi_worker_args(model_dir, "--final_epochs=0"), env=env)
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
    # The same command on both workers finishes the search (the retrain and export of the winner under
    # multi_worker, chief-only writes included: test_train_final_distributed.py).
    outs = run_cluster("search_enas.py", *_multi_worker_args(model_dir, "--final_epochs=0"), env=env, timeout=600)
    for rc, _, stderr in outs:
        assert rc == 0, stderr[-3000:]
    assert "resumed" in outs[0][2]  # the chief says so (the other worker restores the same checkpoint)
    chief, other = (_summary(stdout)["search"] for _, stdout, _ in outs)
    assert chief["worker"] == {"index": 0, "count": 2, "is_chief": True}
    assert other["worker"] == {"index": 1, "count": 2, "is_chief": False}
    assert chief["replicas"] == other["replicas"] == 2
    # Both workers report the same search: the same best arch and reward, identical scores.
    for key in ("best_reward", "controller_updates", "epochs", "best_arch"):
        assert chief[key] == other[key], key
    assert chief["workers_agree"] and other["workers_agree"] and chief["controller_updates"] == 4
    # Only the chief wrote: every row once, in order, over both runs; one TensorBoard event file per run;
    # no worker's temporary checkpoint left.
    rows = read_jsonl(model_dir / "history.jsonl")
    keys = [(r["update"], r["sample"]) for r in rows]
    assert keys == [(u, s) for u in range(4) for s in range(2)] and len(rows) == ROWS
    assert [e["epoch"] for e in read_jsonl(model_dir / "epochs.jsonl")] == [0, 1]
    assert len(read_jsonl(model_dir / "derived.jsonl")) == 3
    events = [n for n in os.listdir(model_dir / "tensorboard") if n.startswith("events.out")]
    assert len(events) == 2  # one file per run of the chief (the workers write none)
    trials = {n for n in os.listdir(model_dir / "tensorboard" / "children") if not n.startswith("events.out")}
    assert trials == {f"derived_{i:03d}" for i in range(3)}  # the derived archs as HParams trials
    # (TensorFlow's autograph writes its generated sources there too: not nas_tf's files.)
    assert not [name for name in os.listdir(tmp) if not name.startswith("__autograph_generated_file")]
    assert sorted(os.listdir(model_dir)) == sorted(
        [".lock", "best.json", "best_arch.json", "best_arch.png", "best_arch.svg", "checkpoints", "derived.jsonl", "epochs.jsonl",
         "flags.json", "history.jsonl", "search_config.json", "summary.json", "tensorboard"]
    )
    with open(model_dir / "summary.json") as f:
        assert json.load(f)["controller_updates"] == 4
