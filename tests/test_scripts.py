"""Small end-to-end runs of the scripts, as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_script
from nas_tf.utils import read_jsonl

TINY = ["--num_architectures=4", "--archs_per_step=2", "--child_epochs=1", "--child_steps_per_epoch=6", "--start_depth=2"]


def test_search_nas_end_to_end_and_resume(tmp_path):
    model_dir = str(tmp_path / "run")
    out = run_script("search_nas.py", f"--model_dir={model_dir}", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout[out.stdout.index("{") :])
    assert summary["children"] == 4 and summary["steps"] == 2
    # Progress is visible while it runs.
    assert "child 1/4" in out.stderr and "step 2 done" in out.stderr
    for name in ("history.jsonl", "best_arch.json", "best.json", "flags.json", "search_config.json", "checkpoints", "tensorboard"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    with open(os.path.join(model_dir, "flags.json")) as f:
        flags = json.load(f)
    assert flags["num_architectures"] == 4 and flags["child_epochs"] == 1 and flags["model_dir"] == model_dir
    import nas_tf

    assert nas_tf.load_arch(os.path.join(model_dir, "best_arch.json")).space == "nas_cnn"
    # The same command again: nothing to do; a larger budget continues.
    again = run_script("search_nas.py", f"--model_dir={model_dir}", *TINY)
    assert again.returncode == 0 and len(read_jsonl(os.path.join(model_dir, "history.jsonl"))) == 4
    more = run_script("search_nas.py", f"--model_dir={model_dir}", *TINY[1:], "--num_architectures=6")
    assert more.returncode == 0, more.stderr[-3000:]
    rows = read_jsonl(os.path.join(model_dir, "history.jsonl"))
    assert [r["child"] for r in rows] == list(range(6))


def test_search_nas_survives_kill_9(tmp_path):
    model_dir = str(tmp_path / "run")
    args = [f"--model_dir={model_dir}", "--num_architectures=6", "--archs_per_step=3", "--child_epochs=1", "--child_steps_per_epoch=6", "--start_depth=2"]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "search_nas.py"), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = os.path.join(model_dir, "history.jsonl")
    deadline = time.time() + 300
    while time.time() < deadline and len(read_jsonl(history, repair=False)) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(read_jsonl(history, repair=False))
    assert 2 <= killed_at < 6
    out = run_script("search_nas.py", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_jsonl(history)
    assert sorted(r["child"] for r in rows) == list(range(6))


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--child_epochs=0", "child_epochs"),
        ("--filter_heights=3,x", "filter_heights"),
        ("--num_filters=", "num_filters"),
        ("--algorithm=evolution", "algorithm"),
        ("--dataset=imagenet", "dataset"),
    ],
)
def test_bad_flags_are_named(tmp_path, flag, message):
    out = run_script("search_nas.py", f"--model_dir={tmp_path}", flag)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_cifar10_gives_a_clear_error(tmp_path):
    out = run_script("search_nas.py", f"--model_dir={tmp_path / 'run'}", "--dataset=cifar10", f"--data_dir={tmp_path}")
    assert out.returncode == 1
    assert "--dataset=cifar10" in out.stderr and "--data_dir" in out.stderr and "Traceback" not in out.stderr


def test_resume_with_changed_flags_is_refused(tmp_path):
    model_dir = str(tmp_path / "run")
    assert run_script("search_nas.py", f"--model_dir={model_dir}", *TINY[:1], "--num_architectures=2", *TINY[2:]).returncode == 0
    out = run_script("search_nas.py", f"--model_dir={model_dir}", "--num_architectures=2", *TINY[2:], "--num_filters=8,16")
    assert out.returncode == 1
    assert "num_filters" in out.stderr and "other settings" in out.stderr
