"""Reliability (issue #18), the slow part: SIGKILL at seeded random points, then the same command to the end.

A small NAS search, an ENAS search and a final training each run as a
script in a fresh interpreter, as a user runs them. First uninterrupted
(the reference, which also measures when the run starts writing and how
long it takes), then in another directory killed with SIGKILL at least
``KILLS`` times, at delays drawn from a seeded generator, and finally run
to the end. The results must equal the reference's: every history row
(rewards, archs, tokens; not the wall-clock fields), ``best_arch.json``,
the variables of the last checkpoint (controller, shared weights, model)
and, for the final training, the exported SavedModel's outputs on fixed
inputs.

How the kill points are chosen (``random.Random(seed)``, so CI repeats
them): ``S`` is how long the reference took to start writing (the
interpreter and TensorFlow start-up), ``W`` the rest of its run. Half the
kills land in the start-up, at a delay uniform in ``[0, S]`` from the
process start (a run killed there must resume too); the other half land
in the run itself, at a delay uniform in ``[0, 0.6 W]`` from the moment
the process took the run directory's lock, so over the kills they move
through the whole run (checkpoints, logs, result files, exports). One rule
bends the dice: a search is never killed twice in a row while the same
child trains. A SIGKILL cannot be told from a child that kills the process
(a native abort, the out-of-memory killer), so a child in training at two
deaths in a row is recorded as failed (``nas_tf.search.run_dir.CrashGuard``,
tested below) and the search would rightly differ from the uninterrupted
one. A start-up kill therefore comes at the latest when the process takes
the run directory (before any child starts), and after a kill during child
``c`` the next kill in the run comes only once ``c`` has its result. Once the
newest checkpoint is half-way to the reference's last, only start-up
kills (in ``[0, S / 2]``) are drawn, so that the run still has work left
for the remaining kills. Should a run end before its kill all the same (a
machine faster than during the reference), the directory is put back as
it was before that run and another delay is drawn. The final training is
also killed once while it exports (as soon as a temporary of its export
appears): the export must not be half-written, and no temporary may stay
behind.
"""

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO
from nas_tf.utils.io import read_jsonl

pytestmark = pytest.mark.slow

KILLS = 10
# Wall-clock fields: the only ones a resumed run may change.
CLOCK = {"time", "wall_time", "wall_seconds", "seconds"}


def _env():
    return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")


def _start(script, args, model_dir, log):
    cmd = [sys.executable, os.path.join(REPO, "scripts", script), f"--model_dir={model_dir}", *args]
    return subprocess.Popen(cmd, stdout=log, stderr=log, env=_env(), cwd=REPO)


def _newest_checkpoint(model_dir):
    ckpts = os.path.join(model_dir, "checkpoints")
    if not os.path.isdir(ckpts):
        return 0
    numbers = [int(n[5:-6]) for n in os.listdir(ckpts) if n.startswith("ckpt-") and n.endswith(".index")]
    return max(numbers, default=0)


def _reference(script, args, model_dir, log_path):
    """Runs uninterrupted; returns (S: seconds until it wrote its first file, T: seconds in all)."""
    with open(log_path, "w") as log:
        t0 = time.monotonic()
        proc = _start(script, args, model_dir, log)
        started = None
        while proc.poll() is None:
            if started is None and os.path.isdir(model_dir) and os.listdir(model_dir):
                started = time.monotonic() - t0
            time.sleep(0.02)
        total = time.monotonic() - t0
    assert proc.returncode == 0, open(log_path).read()[-3000:]
    return started or total, total


def _wait_for(proc, condition, limit=None):
    """Polls until ``condition()`` holds or ``limit`` seconds pass (True), or the process ends (False)."""
    end = None if limit is None else time.monotonic() + limit
    while proc.poll() is None:
        if condition() or (end is not None and time.monotonic() >= end):
            return True
        time.sleep(0.01)
    return False


def _holds(proc, model_dir):
    """Whether ``proc`` holds the run directory's lock (it has started its run)."""
    try:
        with open(os.path.join(model_dir, ".lock")) as f:
            return json.loads(f.read() or "{}").get("pid") == proc.pid
    except (OSError, ValueError):
        return False


def _in_flight(model_dir):
    """The child a search's in-process evaluator is training (``child_in_flight.json``), or None."""
    try:
        with open(os.path.join(model_dir, "child_in_flight.json")) as f:
            return json.load(f).get("child")
    except (OSError, ValueError):
        return None


def _soak(script, args, model_dir, reference_dir, log_path, seed, on_start=None):
    """Kills a run of ``script`` at least KILLS times at seeded random points, then runs it to the end.

    Returns the kills: ("start-up", seconds after the process started) or
    ("run", seconds after it took the run directory).
    """
    import shutil

    startup, total = _reference(script, args, reference_dir, log_path + ".reference")
    work = total - startup
    last = _newest_checkpoint(reference_dir)
    rng = random.Random(seed)
    kills, undone, in_flight = [], 0, None
    snapshot = log_path + ".snapshot"
    with open(log_path, "w") as log:
        proc = None
        try:
            while len(kills) < KILLS:
                late = _newest_checkpoint(model_dir) * 2 >= last
                in_run = not late and rng.random() < 0.5
                delay = rng.uniform(0, 0.6 * work) if in_run else rng.uniform(0, startup / 2 if late else startup)
                kind = "run" if in_run else "start-up"
                print(f"--- kill {len(kills) + 1}: {delay:.2f}s into its {kind}", file=log, flush=True)
                shutil.rmtree(snapshot, ignore_errors=True)
                if os.path.exists(model_dir):
                    shutil.copytree(model_dir, snapshot, symlinks=True)
                proc = _start(script, args, model_dir, log)
                if in_run:
                    # Not twice in a row while one child trains: that is a child that kills the process (see the module).
                    alive = (_wait_for(proc, lambda: _holds(proc, model_dir))
                             and _wait_for(proc, lambda: in_flight is None or _in_flight(model_dir) != in_flight)
                             and _wait_for(proc, lambda: False, delay))
                else:  # before the run starts, at the latest when it takes the directory
                    alive = _wait_for(proc, lambda: _holds(proc, model_dir), delay)
                if alive:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills.append((kind, round(delay, 2)))
                    in_flight = _in_flight(model_dir)
                    print(f"--- killed{'' if in_flight is None else f' while child {in_flight} trained'}", file=log, flush=True)
                    continue
                # A faster run than the reference ended before its kill: put the directory back as it was, draw again.
                assert proc.returncode == 0 and undone < 3, open(log_path).read()[-3000:]
                undone += 1
                print(f"--- it ended first (exit {proc.returncode}): the directory is put back", file=log, flush=True)
                shutil.rmtree(model_dir)
                if os.path.exists(snapshot):
                    shutil.copytree(snapshot, model_dir, symlinks=True)
            if on_start is not None:
                on_start(lambda: _start(script, args, model_dir, log))
            print("--- to the end", file=log, flush=True)
            proc = _start(script, args, model_dir, log)
            proc.wait(timeout=max(600.0, 5 * total))
        finally:
            if proc is not None and proc.poll() is None:  # a failed test leaves no script running
                proc.kill()
                proc.wait()

    assert proc.returncode == 0, open(log_path).read()[-3000:]
    print(f"{script}: reference {total:.1f}s (start-up {startup:.1f}s); kills {kills}; runs that ended first {undone}")
    return kills


def _rows(path):
    return [{k: v for k, v in row.items() if k not in CLOCK} for row in read_jsonl(path, repair=False)]


def _checkpoint_values(model_dir):
    """The values of the newest checkpoint's variables (not its save counter or object graph)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if not n.startswith(("save_counter", "_CHECKPOINTABLE"))]
    return {n: reader.get_tensor(n) for n in names}


def _assert_same_checkpoint(run, reference):
    got, want = _checkpoint_values(run), _checkpoint_values(reference)
    assert sorted(got) == sorted(want)
    different = [n for n in want if not np.array_equal(got[n], want[n])]
    assert not different, different


def _assert_same_files(run, reference, names):
    for name in names:
        assert open(os.path.join(run, name), "rb").read() == open(os.path.join(reference, name), "rb").read(), name


def _leftovers(model_dir):
    """Temporaries a killed write could leave: hidden export folders, *.tmp files, checkpoint temps."""
    found = []
    for root, dirs, files in os.walk(model_dir):
        for name in dirs + files:
            if (name.startswith(".") and name != ".lock") or name.endswith(("_temp", ".tmp")) or ".tempstate" in name:
                found.append(os.path.relpath(os.path.join(root, name), model_dir))
    return found


# One child per controller step: a checkpoint after every child, so kills in the run meet checkpoint writes.
NAS = ["--num_architectures=5", "--archs_per_step=1", "--child_epochs=1", "--child_steps_per_epoch=4", "--start_depth=1",
       "--num_filters=4,8", "--child_batch_size=32", "--seed=3"]


def test_a_nas_search_killed_ten_times_ends_as_an_uninterrupted_one(tmp_path):
    run, reference = str(tmp_path / "run"), str(tmp_path / "reference")
    kills = _soak("search_nas.py", NAS, run, reference, str(tmp_path / "log"), seed=18)
    assert len(kills) >= KILLS
    assert _rows(os.path.join(run, "history.jsonl")) == _rows(os.path.join(reference, "history.jsonl"))
    assert [r["child"] for r in _rows(os.path.join(run, "history.jsonl"))] == list(range(5))
    _assert_same_files(run, reference, ["best_arch.json", "best.json"])
    _assert_same_checkpoint(run, reference)  # the controller, its optimizer and the searcher's state
    assert not os.path.exists(os.path.join(run, "child_in_flight.json"))
    assert _leftovers(run) == []


ENAS = ["--space=macro", "--enas_layers=2", "--enas_filters=4", "--num_epochs=2", "--controller_steps=2",
        "--controller_aggregate=2", "--derive_samples=3", "--derive_batches=1", "--shared_steps_per_epoch=3",
        "--final_epochs=0", "--seed=3"]


def test_an_enas_search_killed_ten_times_ends_as_an_uninterrupted_one(tmp_path):
    run, reference = str(tmp_path / "run"), str(tmp_path / "reference")
    kills = _soak("search_enas.py", ENAS, run, reference, str(tmp_path / "log"), seed=1018)
    assert len(kills) >= KILLS
    for name in ("history.jsonl", "epochs.jsonl", "derived.jsonl"):
        assert _rows(os.path.join(run, name)) == _rows(os.path.join(reference, name)), name
    assert len(_rows(os.path.join(run, "history.jsonl"))) == 2 * 2 * 2  # epochs x steps x archs per step
    _assert_same_files(run, reference, ["best_arch.json", "best.json"])
    _assert_same_checkpoint(run, reference)  # the shared weights (the supernet), the controller, their optimizers
    assert _leftovers(run) == []


ARCH = {
    "space": "nas_cnn",
    "layers": [
        {"filter_height": 3, "filter_width": 3, "num_filters": 8, "inputs": []},
        {"filter_height": 3, "filter_width": 3, "num_filters": 8, "stride_height": 2, "stride_width": 2, "inputs": [0]},
    ],
}


def _kill_during_export(start):
    """Starts the run and kills it as soon as a temporary of its export appears."""
    proc = start()
    model_dir = next(a.split("=", 1)[1] for a in proc.args if a.startswith("--model_dir="))
    seen = []
    while proc.poll() is None and not seen:
        if os.path.isdir(model_dir):
            seen = [n for n in os.listdir(model_dir) if n.startswith((".saved_model", ".model.keras"))]
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert seen and proc.returncode == -signal.SIGKILL, "the run ended before its export could be killed"


def test_a_final_training_killed_ten_times_ends_as_an_uninterrupted_one(tmp_path, digits):
    import tensorflow as tf

    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(ARCH))
    args = [f"--arch={arch}", "--epochs=6", "--batch_size=128", "--seed=3"]
    run, reference = str(tmp_path / "run"), str(tmp_path / "reference")
    kills = _soak("train_final.py", args, run, reference, str(tmp_path / "log"), seed=2018, on_start=_kill_during_export)
    assert len(kills) >= KILLS
    got, want = (json.load(open(os.path.join(d, "metrics.json"))) for d in (run, reference))
    for metrics in (got, want):
        metrics.pop("wall_time")
        metrics["history"].pop("wall_time", None)
    assert got == want and got["epochs_done"] == 6
    _assert_same_files(run, reference, ["arch.json"])
    _assert_same_checkpoint(run, reference)  # the model and its optimizer after the last epoch
    images = tf.constant(digits.splits["test"][0][:64], tf.float32)
    models = [tf.saved_model.load(os.path.join(d, "saved_model")) for d in (run, reference)]
    outputs = [m.serve(images).numpy() for m in models]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert _leftovers(run) == []  # the export killed half-way left nothing behind


# ------------------------------------------------ a child that aborts the process

# The script's command line, with the table's trainer patched to abort the
# process (SIGABRT, as a native abort inside TensorFlow does) on one child.
ABORTING = """
import os, runpy, sys
from nas_tf.tasks.tabular.child import TabularTrainer
original = TabularTrainer.__call__
def call(self, request):
    if request.index == int(os.environ["ABORT_AT_CHILD"]):
        os.abort()
    return original(self, request)
TabularTrainer.__call__ = call
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
TABULAR = ["--space=nb201", "--benchmark=analog_nasbench", "--algorithm=random", "--archs_per_step=2",
           "--num_architectures=6", "--seed=5"]


def test_a_child_that_aborts_the_process_is_recorded_as_failed(tmp_path):
    from conftest import run_main
    from nas_tf.search.run_dir import CRASHED_REASON, IN_FLIGHT

    run, reference = tmp_path / "run", tmp_path / "reference"
    code, _, err = run_main("search_nas.py", f"--model_dir={reference}", *TABULAR)
    assert code == 0, err[-3000:]
    command = [sys.executable, "-c", ABORTING, os.path.join(REPO, "scripts", "search_nas.py"), f"--model_dir={run}",
               *TABULAR]
    env = dict(_env(), ABORT_AT_CHILD="3")

    def no_core_file():
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    for death in (1, 2):
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600, preexec_fn=no_core_file)
        assert done.returncode == -signal.SIGABRT, done.stderr[-3000:]
        assert [r["child"] for r in read_jsonl(run / "history.jsonl")] == [0, 1, 2]
        assert json.loads((run / IN_FLIGHT).read_text()) == {"child": 3, "step": 1, "starts": death}
    # The third run still aborts on child 3 if it trains it: it must not.
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600, preexec_fn=no_core_file)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "child 3 was in training when the process died 2 times in a row: recorded as failed" in done.stderr
    rows, want = _rows(run / "history.jsonl"), _rows(reference / "history.jsonl")
    assert [r["child"] for r in rows] == list(range(6))
    failed = rows[3]
    assert (failed["reward"], failed["status"], failed["reason"]) == (0.0, "worker_crashed", CRASHED_REASON)
    assert failed["arch"] == want[3]["arch"]  # the child the search sampled, recorded as failed
    same = ("child", "step", "reward", "status", "arch")
    assert [{k: r[k] for k in same} for r in rows[:3] + rows[4:]] == [{k: r[k] for k in same} for r in want[:3] + want[4:]]
    assert not (run / IN_FLIGHT).exists()


# ------------------------------------------------------------------ a full disk


def _limited(limit):
    def start():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return start


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 48 KiB tmpfs (a file system that really fills up), or None where mounting is not allowed."""
    path = tmp_path / "tmpfs"
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(path)], capture_output=True).returncode:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def _assert_one_disk_line(done, model_dir, reason):
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in done.stderr and len(lines) == 1 and done.stderr.strip().endswith(lines[0]), done.stderr[-3000:]
    assert lines[0] == (f"error: {reason} on the file system of --model_dir={model_dir}; free some space and re-run the "
                        "same command to resume (nothing written so far is lost)")


def test_a_full_disk_stops_a_search_with_one_line_and_it_resumes(tmp_path, small_tmpfs):
    """A file-size limit (RLIMIT_FSIZE) makes a write fail half-way, as a full disk does; a small tmpfs really fills."""
    from conftest import run_main

    reference = tmp_path / "reference"
    assert run_main("search_nas.py", f"--model_dir={reference}", *TABULAR)[0] == 0
    want = _rows(reference / "history.jsonl")
    script = os.path.join(REPO, "scripts", "search_nas.py")
    for limit in (3000,):  # stops the search after its first children
        run = tmp_path / f"limit{limit}"
        done = subprocess.run([sys.executable, script, f"--model_dir={run}", *TABULAR], capture_output=True, text=True,
                              env=_env(), cwd=REPO, timeout=600, preexec_fn=_limited(limit))
        assert done.returncode == 1
        _assert_one_disk_line(done, run, "file too large (the file-size limit, ulimit -f)")
        written = _rows(run / "history.jsonl")  # no torn line (read without repair)
        assert written == want[: len(written)] and len(written) < len(want)
        code, _, err = run_main("search_nas.py", f"--model_dir={run}", *TABULAR)  # space freed: the same command
        assert code == 0, err[-3000:]
        assert _rows(run / "history.jsonl") == want
        _assert_same_files(run, reference, ["best_arch.json"])
    if small_tmpfs is None:
        return
    run = small_tmpfs / "run"
    done = subprocess.run([sys.executable, script, f"--model_dir={run}", *TABULAR], capture_output=True, text=True,
                          env=_env(), cwd=REPO, timeout=600)
    assert done.returncode == 1
    _assert_one_disk_line(done, run, "no space left on device")
    written = _rows(run / "history.jsonl") if (run / "history.jsonl").exists() else []
    assert written == want[: len(written)] and len(written) < len(want)
    assert subprocess.run(["mount", "-o", "remount,size=8m", str(small_tmpfs)]).returncode == 0  # space freed
    code, _, err = run_main("search_nas.py", f"--model_dir={run}", *TABULAR)
    assert code == 0, err[-3000:]
    assert _rows(run / "history.jsonl") == want
    _assert_same_files(run, reference, ["best_arch.json"])
