"""scripts/train_final.py under tf.distribute: several workers (MultiWorkerMirroredStrategy, 2 local
processes), resume after both are killed, and recurrent cells (language models) under mirrored."""

import json
import os
import signal
import time

import pytest

from conftest import REPO, run_cluster, run_main, start_cluster

ARCH = {
    "space": "nas_cnn",
    "layers": [
        {"filter_height": 3, "filter_width": 3, "num_filters": 24, "inputs": []},
        {"filter_height": 3, "filter_width": 3, "num_filters": 24, "inputs": [0]},
    ],
}
# A constant learning rate: the first epochs of a longer run are those of a shorter one.
COMMON = ["--lr=0.05", "--lr_schedule=constant"]

# Loaded in every worker through PYTHONPATH: logs (Python audit events) every file or directory a
# worker creates, writes, renames or removes under the watched roots, one log per worker.
AUDIT = r'''
import json, os, sys

_roots = [os.path.realpath(p) for p in os.environ.get("NAS_TF_AUDIT_ROOTS", "").split(os.pathsep) if p]
if _roots:
    _task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0)
    _log = os.path.join(os.environ["NAS_TF_AUDIT_LOG"], f"worker{_task}.log")
    _busy = []
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _hook(event, args):
        if _busy or event not in ("open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree"):
            return
        if event == "open":
            path, mode, flags = args
            if isinstance(mode, str):
                if not any(c in mode for c in "wax+"):
                    return
            elif not (isinstance(flags, int) and flags & _WRITE):
                return
        else:
            path = args[1] if event == "os.rename" else args[0]  # a rename (or replace) writes its destination
        if not isinstance(path, (str, os.PathLike)):
            return
        full = os.path.realpath(os.fspath(path))
        if not any(full == r or full.startswith(r + os.sep) for r in _roots):
            return
        _busy.append(1)
        try:
            with open(_log, "a") as f:
                f.write(f"{event} {full}\n")
        finally:
            _busy.pop()

    sys.addaudithook(_hook)
'''


def _history(model_dir):
    with open(os.path.join(model_dir, "metrics.json")) as f:
        return json.load(f)["history"]


def _summary(stdout):
    return json.loads(stdout[stdout.index("{") :])


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("arch") / "arch.json"
    path.write_text(json.dumps(ARCH))
    return path


@pytest.fixture(scope="module")
def one_device(arch_file, tmp_path_factory):
    """Three epochs on one device at the global batch of 64 (in this process)."""
    model_dir = tmp_path_factory.mktemp("one_device")
    code, _, err = run_main(
        "train_final.py", f"--arch={arch_file}", f"--model_dir={model_dir}", "--epochs=3", "--batch_size=64",
        "--strategy=one_device", "--noexport", *COMMON,
    )
    assert code == 0, err[-3000:]
    return _history(model_dir)


def _audited_env(tmp_path, model_dir):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT)
    scratch = tmp_path / "scratch"  # the workers' temporary directory
    scratch.mkdir()
    logs = tmp_path / "audit"
    logs.mkdir()
    env = {
        "PYTHONPATH": os.pathsep.join([REPO, str(site), os.environ.get("PYTHONPATH", "")]),
        "NAS_TF_AUDIT_ROOTS": os.pathsep.join([str(model_dir), str(scratch)]),
        "NAS_TF_AUDIT_LOG": str(logs),
        "TMPDIR": str(scratch),
    }
    return env, scratch, logs


def _audit(logs, worker):
    path = logs / f"worker{worker}.log"
    return path.read_text().splitlines() if path.exists() else []


def _epochs_done(model_dir):
    try:
        with open(os.path.join(model_dir, "metrics.json")) as f:
            return json.load(f).get("epochs_done", 0)
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_multi_worker_killed_and_resumed_matches_one_device_and_only_the_chief_writes(arch_file, one_device, tmp_path):
    """2 workers, both killed after the first checkpoint, the same command resumes: one device's training."""
    model_dir = tmp_path / "run"
    env, scratch, logs = _audited_env(tmp_path, model_dir)
    args = [
        f"--arch={arch_file}", f"--model_dir={model_dir}", "--epochs=3",
        "--batch_size=32",  # per worker (one replica each): the global batch of 64
        "--strategy=multi_worker", *COMMON,
    ]
    procs = start_cluster("train_final.py", *args, env=env)
    try:
        deadline = time.time() + 300
        while _epochs_done(model_dir) < 1 and time.time() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.05)
        killed_after = _epochs_done(model_dir)
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        for p in procs:
            p.communicate(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert 1 <= killed_after < 3, f"killed after epoch {killed_after} (the first checkpoint was expected)"
    # A worker killed while it saved leaves its temporary checkpoint directory (nothing runs after SIGKILL).
    left_by_the_kill = {name for name in os.listdir(scratch) if name.startswith("nas_tf_worker")}
    out = run_cluster("train_final.py", *args, env=env, timeout=600)
    for rc, _, stderr in out:
        assert rc == 0, stderr[-3000:]
        assert f"after epoch {killed_after}" in stderr and "epoch 1/3" not in stderr and "epoch 3/3" in stderr
    summaries = [_summary(stdout) for _, stdout, _ in out]
    assert [(s["worker"], s["workers"], s["replicas"]) for s in summaries] == [(0, 2, 2), (1, 2, 2)]
    assert summaries[0]["test_accuracy"] == summaries[1]["test_accuracy"]
    # Each worker trained on its half of every global batch, resumed from the chief's checkpoint:
    # the uninterrupted one-device run on the whole batch.
    history = _history(model_dir)
    assert len(history["train_loss"]) == 3 and len(history["val_accuracy"]) == 3
    assert history["train_loss"] == pytest.approx(one_device["train_loss"], rel=1e-4, abs=1e-4)
    assert sorted(os.listdir(model_dir)) == [
        ".lock", "arch.json", "checkpoints", "flags.json", "metrics.json", "model.keras", "saved_model", "tensorboard",
    ]
    with open(model_dir / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["epochs_done"] == 3 and metrics["saved_model"] == "saved_model"
    assert any(name.startswith("ckpt-3") for name in os.listdir(model_dir / "checkpoints"))
    # Only the chief wrote the run directory (in both runs); the other worker saved its checkpoints
    # (every worker must) into temporary directories of its own and removed them.
    chief, other = _audit(logs, 0), _audit(logs, 1)
    run_dir = os.path.realpath(model_dir)
    for name in ("arch.json", "flags.json", "metrics.json", "model.keras", "saved_model"):
        path = os.path.join(run_dir, name)
        assert f"os.rename {path}" in chief or f"open {path}" in chief, name
    # (Every worker checks that it could write --model_dir: a probe directory made and removed at once.)
    assert not [line for line in other if run_dir in line and ".nas_tf_probe." not in line]
    made = [line for line in other if line.startswith("os.mkdir") and "nas_tf_worker1_checkpoint_" in line]
    # One per epoch saved, over both runs: the resumed run saves epochs killed_after+1..3, the killed one saved
    # every epoch before killed_after and may or may not have saved epoch killed_after itself (the kill comes
    # as soon as the chief has, and the other worker may still be on its way).
    assert 2 <= len(made) <= 3, made
    assert {name for name in os.listdir(scratch) if name.startswith("nas_tf_worker")} <= left_by_the_kill
    # The saved model is the trained one (a plain copy of the distributed model).
    import keras

    from nas_tf.data import load_digits
    from nas_tf.export import network_of
    from nas_tf.tasks.image.train import evaluate_classifier

    model = keras.models.load_model(model_dir / "model.keras")  # raw pixels in: the network inside it
    _, accuracy = evaluate_classifier(network_of(model), load_digits().batches("test", 256))
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)


@pytest.mark.slow  # the library-level mirrored test (test_distribute.py) stays in the default run
def test_language_model_under_mirrored_matches_one_device(tmp_path):
    common = ["--arch=nascell", "--lm_units=16", "--epochs=2", "--lm_output_dropout=0", "--noexport"]
    code, one, err = run_main(
        "train_final.py", *common, f"--model_dir={tmp_path / 'one'}", "--strategy=one_device", "--batch_size=16"
    )
    assert code == 0, err[-3000:]
    code, two, err = run_main(
        "train_final.py", *common, f"--model_dir={tmp_path / 'two'}", "--strategy=mirrored", "--num_cpu_devices=2",
        "--batch_size=8",  # rows per replica: the 16 rows of one device
    )
    assert code == 0, err[-3000:]
    assert _summary(one)["replicas"] == 1 and _summary(two)["replicas"] == 2
    a, b = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert a["steps"] == b["steps"]
    # Same rows, loss over the global window, clipping (--lm_clip_norm 0.25, on at lr 20) of the
    # all-reduced gradient: one device up to float summation order (measured ~1e-8).
    for key in ("train_perplexity", "val_perplexity"):
        assert a[key] == pytest.approx(b[key], rel=1e-4)
    assert _summary(one)["test_perplexity"] == pytest.approx(_summary(two)["test_perplexity"], rel=1e-4)
