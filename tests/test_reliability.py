"""Reliability (issue #18), the fast part: bad paths and flags, damaged run directories, the lock, interrupts.

* A table of every unusable --model_dir, unreadable --arch, --data_dir or
  flag file, and contradictory settings, run in-process through each
  script's command line (``conftest.run_main``): the exact one line each
  gets, a non-zero exit, no traceback, nothing created.
* Damaged run directories of a real (tabular, so instant) search: each is
  recovered as an undamaged run would be, or refused with one line, and the
  user's files are left as they were.
* The run-directory lock, interrupts (SIGTERM, Ctrl-C) in the middle of a
  child, a child that killed the process twice, permissions, a write that
  fails on a full disk.

The slow part (kills at random points, a full disk during a search, a real
native abort) is tests/test_soak.py.
"""

import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys

import pytest

import nas_tf
from conftest import REPO, run_main
from nas_tf.spaces.arch import named_archs
from nas_tf.utils.io import RunLockedError, append_jsonl, atomic_write_json, hold_run_dir, read_jsonl

IS_ROOT = os.geteuid() == 0


def _strerror(code):
    return os.strerror(code)


def _mkdir_error(parent):
    """What creating a directory in ``parent`` fails with here (None: it works)."""
    try:
        os.rmdir(__import__("tempfile").mkdtemp(dir=parent))
    except OSError as e:
        return e.strerror
    return None


@pytest.fixture(scope="module")
def read_only_dir(tmp_path_factory):
    """A read-only file system (a tmpfs mounted read-only), or None where mounting is not allowed."""
    path = tmp_path_factory.mktemp("ro")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


# ---------------------------------------------------------------- the table

SCRIPTS = ["search_nas.py", "search_nasnet.py", "search_enas.py", "train_final.py"]
# The arguments each script needs to get as far as the paths.
NEEDS = {"train_final.py": ["--arch=enas_macro"]}


def _model_dir_cases():
    """(name, setup(tmp) -> (--model_dir value, expected message)), every script gets each."""

    def file(tmp):
        (tmp / "file").write_text("x")
        return str(tmp / "file"), f"--model_dir={tmp}/file: is a file, not a directory"

    def under_file(tmp):
        (tmp / "file").write_text("x")
        return str(tmp / "file" / "run"), f"--model_dir={tmp}/file/run: lies under {tmp}/file, which is a file, not a directory"

    def empty(tmp):
        return "", "--model_dir is empty: give the directory of the run"

    def proc(tmp):
        return "/proc/nas_tf_run", f"--model_dir=/proc/nas_tf_run: cannot create it in /proc ({_mkdir_error('/proc')})"

    def sys_dir(tmp):
        return "/sys/nas_tf_run", f"--model_dir=/sys/nas_tf_run: cannot create it in /sys ({_mkdir_error('/sys')})"

    def unwritable(tmp):
        if IS_ROOT:
            pytest.skip("root writes in a directory without write permission (the /sys and read-only cases stand in)")
        (tmp / "locked").mkdir()
        os.chmod(tmp / "locked", 0o500)
        return str(tmp / "locked" / "run"), f"--model_dir={tmp}/locked/run: cannot create it in {tmp}/locked (Permission denied)"

    return {"file": file, "under_file": under_file, "empty": empty, "proc": proc, "sys": sys_dir, "unwritable": unwritable}


MODEL_DIR_CASES = _model_dir_cases()


def _listing(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files)


def _one_line(err):
    """The error line, checking it is the only thing on stderr."""
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


@pytest.mark.parametrize("case", sorted(MODEL_DIR_CASES))
@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unusable_model_dir_gets_one_line(tmp_path, script, case):
    value, message = MODEL_DIR_CASES[case](tmp_path)
    before = _listing(tmp_path)
    code, out, err = run_main(script, f"--model_dir={value}", *NEEDS.get(script, []))
    assert code == 1 and _one_line(err) == f"error: {message}"
    assert _listing(tmp_path) == before  # nothing created
    if case == "unwritable":
        os.chmod(tmp_path / "locked", 0o700)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_read_only_model_dir_gets_one_line(tmp_path, read_only_dir, script):
    if read_only_dir is None:
        pytest.skip("no read-only file system: mounting a tmpfs is not allowed here")
    for value, message in [
        (read_only_dir, f"--model_dir={read_only_dir}: cannot write in it (Read-only file system)"),
        (f"{read_only_dir}/run", f"--model_dir={read_only_dir}/run: cannot create it in {read_only_dir} (Read-only file system)"),
    ]:
        code, _, err = run_main(script, f"--model_dir={value}", *NEEDS.get(script, []))
        assert code == 1 and _one_line(err) == f"error: {message}"


def _flag_file_cases(tmp):
    (tmp / "dir").mkdir()
    (tmp / "latin1.flags").write_bytes(b"--seed=1\n--model_dir=caf\xe9\n")
    (tmp / "outer.flags").write_text(f"--seed=2\n--flagfile={tmp}/missing.flags\n")
    return [
        (f"--flagfile={tmp}/missing.flags", f"--flagfile={tmp}/missing.flags: no such file"),
        (f"--flagfile={tmp}/dir", f"--flagfile={tmp}/dir: is a directory, not a flag file"),
        (f"--flagfile={tmp}/latin1.flags", f"--flagfile={tmp}/latin1.flags: line 2 is not UTF-8 text (byte 0xe9 at column 16)"),
        (f"--flagfile={tmp}/outer.flags", f"--flagfile={tmp}/missing.flags: no such file"),
        ("--flagfile=", "--flagfile=: empty; give a flag file"),
    ]


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unreadable_flag_file_gets_one_line(tmp_path, script):
    for arg, message in _flag_file_cases(tmp_path):
        before = _listing(tmp_path)
        code, _, err = run_main(script, f"--model_dir={tmp_path}/run", arg)
        assert code == 2 and _one_line(err) == f"FATAL Flags parsing error: {message}", arg
        assert _listing(tmp_path) == before


def _cases(tmp):
    """(script, arguments, the exact error line) of bad --arch, --data_dir and contradictory settings."""
    (tmp / "a_dir").mkdir()
    (tmp / "a_file").write_text("x")
    (tmp / "latin1.json").write_bytes(b'{"space": "nb201", "cell": "caf\xe9"}')
    (tmp / "big.json").write_bytes(b"{" + b" " * (1 << 20) + b"}")
    run = f"--model_dir={tmp}/run"
    return [
        # --arch
        ("train_final.py", [run, f"--arch={tmp}/a_dir"], f"--arch: {tmp}/a_dir: is a directory, not an arch file"),
        ("train_final.py", [run, f"--arch={tmp}/latin1.json"],
         f"--arch: {tmp}/latin1.json: not UTF-8 text (byte 0xe9 at line 1 column 32)"),
        ("train_final.py", [run, f"--arch={tmp}/big.json"],
         f"--arch: {tmp}/big.json: 1048578 bytes; arch files are read up to 1048576 bytes"),
        ("train_final.py", [run, f"--arch={tmp}/missing.json"],
         f"--arch: {tmp}/missing.json: no such arch file (named architectures: {', '.join(named_archs())})"),
        # --data_dir
        ("search_nas.py", [run, "--dataset=cifar10", f"--data_dir={tmp}/missing"], f"--data_dir={tmp}/missing: no such directory"),
        ("search_nas.py", [run, "--dataset=cifar10", f"--data_dir={tmp}/a_file"], f"--data_dir={tmp}/a_file: is a file, not a directory"),
        ("search_nas.py", [run, f"--data_dir={tmp}/a_dir"],
         f"--data_dir={tmp}/a_dir does not apply to --dataset=digits, which is embedded in nas_tf (no files are read); "
         "drop --data_dir, or choose a dataset that reads it"),
        ("search_nasnet.py", [run, f"--data_dir={tmp}/a_dir"],
         f"--data_dir={tmp}/a_dir does not apply to --dataset=digits, which is embedded in nas_tf (no files are read); "
         "drop --data_dir, or choose a dataset that reads it"),
        ("search_enas.py", [run, "--space=rnn", f"--data_dir={tmp}/a_dir"],
         f"--data_dir={tmp}/a_dir does not apply to --dataset=pydoc, which is embedded in nas_tf (no files are read); "
         "drop --data_dir, or choose a dataset that reads it"),
        ("train_final.py", [run, "--arch=nascell", "--dataset=ptb", f"--data_dir={tmp}/a_file"],
         f"--data_dir={tmp}/a_file: is a file, not a directory"),
        # contradictory settings
        ("search_nas.py", [run, "--start_depth=3", "--max_depth=1"], "--max_depth=1 is below --start_depth=3"),
        ("search_nas.py", [run, "--start_depth=3", "--max_pool_after=1,99"],
         "--max_pool_after=1,99: the networks of this search have at most 3 layers (--start_depth=3), so pooling "
         "after layer 99 never happens (layers are numbered from 0)"),
        ("search_nas.py", [run, "--start_depth=3", "--max_pool_after=5", "--num_architectures=2", "--archs_per_step=1",
                           "--depth_increment_every=1"],
         "--max_pool_after=5: the networks of this search have at most 5 layers (--start_depth=3 grown to 5 by the "
         "depth schedule), so pooling after layer 5 never happens (layers are numbered from 0)"),
        ("search_nas.py", [run, "--archs_per_step=1000", "--num_architectures=2"],
         "--archs_per_step=1000 is larger than --num_architectures=2: a controller step never gets that many children"),
        ("search_nasnet.py", [run, "--archs_per_step=5", "--num_architectures=4"],
         "--archs_per_step=5 is larger than --num_architectures=4: a controller step never gets that many children"),
        ("search_nas.py", [run, "--filter_heights=3,1007"], "--filter_heights: 1007 is larger than 64, the largest nas_tf builds"),
        ("search_nas.py", [run, "--child_batch_size=100000"],
         "--child_batch_size=100000 is larger than the training split of digits (1200 examples)"),
        ("search_enas.py", [run, "--space=macro", "--shared_batch_size=5000"],
         "--shared_batch_size=5000 is larger than the training split of digits (1200 examples)"),
        ("train_final.py", [run, "--arch=enas_macro", "--batch_size=100000"],
         "--batch_size=100000 is larger than the training split of digits (1200 examples)"),
    ]


def test_bad_files_and_contradictory_settings_get_one_line(tmp_path):
    for script, args, message in _cases(tmp_path):
        code, _, err = run_main(script, *args)
        assert (code, _one_line(err)) == (1, f"error: {message}"), (script, args)
        assert not os.path.exists(tmp_path / "run" / "history.jsonl"), (script, args)


# ------------------------------------------------------ damaged run directories

# A real search whose children are read from a table (instant): the loop, its
# checkpoints and files are those of every multi-trial search.
TABULAR = ["--space=nb201", "--benchmark=analog_nasbench", "--algorithm=random", "--archs_per_step=2"]


def _search(model_dir, n, *extra):
    return run_main("search_nas.py", f"--model_dir={model_dir}", *TABULAR, f"--num_architectures={n}", *extra)


def _rows(model_dir):
    keep = ("child", "step", "reward", "status", "reason", "tokens", "arch")
    return [{k: r[k] for k in keep} for r in read_jsonl(os.path.join(model_dir, "history.jsonl"), repair=False)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An undamaged search of 6 children, and one stopped after 4 (copied by each test)."""
    root = tmp_path_factory.mktemp("reference")
    assert _search(root / "six", 6)[0] == 0
    assert _search(root / "four", 4)[0] == 0
    return root


def _copy(reference, tmp_path):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(reference / "four", target)
    return target


def _damage_checkpoint(run, how):
    ckpt = run / "checkpoints"
    data = next(p for p in ckpt.iterdir() if p.name.startswith("ckpt-2.data"))
    if how == "deleted":
        (ckpt / "ckpt-2.index").unlink()
        data.unlink()
    elif how == "garbage":
        data.write_bytes(b"\x00garbage" * 8)
    elif how == "index":
        (ckpt / "ckpt-2.index").write_bytes(b"")


@pytest.mark.parametrize("how", ["deleted", "garbage", "index"])
def test_a_damaged_newest_checkpoint_gives_way_to_the_one_before(reference, tmp_path, how):
    run = _copy(reference, tmp_path)
    _damage_checkpoint(run, how)
    code, _, err = _search(run, 6)
    assert code == 0, err[-2000:]
    assert f"checkpoint {run}/checkpoints/ckpt-2 cannot be read" in err and "resuming from the one before it, ckpt-1" in err
    assert _rows(run) == _rows(reference / "six")  # as if nothing had happened


def test_a_damaged_checkpoint_state_file_is_rebuilt(reference, tmp_path):
    run = _copy(reference, tmp_path)
    (run / "checkpoints" / "checkpoint").write_bytes(b"\xff\xfe not a state file")
    code, _, err = _search(run, 6)
    assert code == 0, err[-2000:]
    assert "was damaged: rewritten from the checkpoints there (ckpt-1, ckpt-2)" in err
    assert _rows(run) == _rows(reference / "six")


@pytest.mark.parametrize(
    "file, content, message",
    [
        ("history.jsonl", None, "{run}/history.jsonl is missing, but checkpoint ckpt-2 counts 4 children: resuming would "
         "forget them; put the file back (e.g. from a backup), or start a new search in another directory"),
        ("history.jsonl", "cut", "{run}/history.jsonl lacks children 3, but checkpoint ckpt-2 counts 4 children: resuming "
         "would forget them; put the file back (e.g. from a backup), or start a new search in another directory"),
        ("history.jsonl", "latin1", "{run}/history.jsonl: line 2 is not UTF-8 text (byte 0xe9 at column 1); repair or "
         "delete that line (a row no checkpoint counts yet is made again), or start a new search in another directory"),
        ("history.jsonl", "json", "{run}/history.jsonl: line 2 is not valid JSON (Expecting value at column 1): 'oops'; "
         "repair or delete that line (a row no checkpoint counts yet is made again), or start a new search in another "
         "directory"),
        ("history.jsonl", "field", "{run}/history.jsonl: line 2: field 'child' is missing; repair or delete that line (a "
         "row no checkpoint counts yet is made again), or start a new search in another directory"),
        ("search_config.json", b"{\n  \"space\": \xff\n}", "{run}/search_config.json: line 2 is not UTF-8 text (byte 0xff at "
         "column 12); it records the settings of the search there: put it back, or delete it to resume with this "
         "command's settings"),
        ("search_config.json", b"[1, 2", "{run}/search_config.json: line 1 is not valid JSON (Expecting ',' delimiter at "
         "column 6); it records the settings of the search there: put it back, or delete it to resume with this "
         "command's settings"),
        ("pending_step.json", b"garbage", "{run}/pending_step.json: line 1 is not valid JSON (Expecting value at column 1); "
         "delete it: the step in progress is then sampled again from the last checkpoint"),
        ("pending_step.json", b'{"step": 2, "tokens": [1, 2]}', "{run}/pending_step.json: field 'tokens' is damaged (expected a "
         "list of token lists, got 1 dimension(s)); delete it: the step in progress is then sampled again from the last "
         "checkpoint"),
        ("checkpoints", None, "{run}/history.jsonl holds children 2-3, which no checkpoint accounts for (there is no "
         "checkpoint): checkpoints/ was deleted or replaced, so resuming would forget them; put it back, or start a new "
         "search in another directory"),
        ("checkpoints", "garbage", "{run}/checkpoints: no checkpoint can be read (ckpt-2: "),
    ],
    ids=["history-missing", "history-cut", "history-latin1", "history-json", "history-field", "config-latin1",
         "config-json", "pending-json", "pending-tokens", "checkpoints-missing", "checkpoints-damaged"],
)
def test_a_damaged_run_directory_is_refused_with_one_line(reference, tmp_path, file, content, message):
    import shutil

    run = _copy(reference, tmp_path)
    path = run / file
    history = run / "history.jsonl"
    lines = history.read_bytes().split(b"\n")
    if file == "checkpoints":
        if content is None:
            shutil.rmtree(path)
        else:
            for p in path.iterdir():
                if p.name.startswith("ckpt-"):
                    p.write_bytes(b"garbage")
    elif content is None:
        path.unlink()
    elif content == "cut":
        history.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][:20])
    elif content == "latin1":
        history.write_bytes(b"\n".join(lines[:1] + [b"\xe9" + lines[1]] + lines[2:]))
    elif content == "json":
        history.write_bytes(b"\n".join(lines[:1] + [b"oops"] + lines[2:]))
    elif content == "field":
        row = json.loads(lines[1])
        del row["child"]
        history.write_bytes(b"\n".join(lines[:1] + [json.dumps(row).encode()] + lines[2:]))
    else:
        path.write_bytes(content)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    code, _, err = _search(run, 6)
    line = _one_line_tail(err)
    expected = "error: " + message.format(run=run)
    assert code == 1 and (line == expected if not expected.endswith(": ") else line.startswith(expected)), line
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before  # nothing the user wrote is changed or deleted


def test_damaged_best_files_of_a_finished_search_are_rewritten(reference, tmp_path):
    import shutil


    run = tmp_path / "run"
    shutil.copytree(reference / "six", run)
    (run / "best_arch.json").write_text("garbage")
    (run / "best.json").unlink()
    code, out, err = _search(run, 6)
    assert code == 0, err[-2000:]
    assert "best_arch.json or best.json is missing, damaged or behind the history: rewritten from it" in err
    assert (run / "best_arch.json").read_text() == (reference / "six" / "best_arch.json").read_text()
    assert json.loads((run / "best.json").read_text()) == json.loads((reference / "six" / "best.json").read_text())
    nas_tf.load_arch(str(run / "best_arch.json"))


def test_a_torn_last_line_of_an_unfinished_step_is_dropped_and_trained_again(reference, tmp_path):
    run = _copy(reference, tmp_path)
    rows = read_jsonl(reference / "six" / "history.jsonl")
    with open(run / "history.jsonl", "a") as f:  # child 4 written, then half of child 5: killed mid-append
        f.write(json.dumps(rows[4]) + "\n" + json.dumps(rows[5])[:30])
    code, _, err = _search(run, 6)
    assert code == 0, err[-2000:]
    assert _rows(run) == _rows(reference / "six")


# ------------------------------------------------------------- the lock


def _holder(directory):
    """A process holding ``directory``'s lock (until killed)."""
    code = (
        "import sys, time; from nas_tf.utils.io import hold_run_dir\n"
        f"with hold_run_dir({str(directory)!r}):\n    print('held', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_on_a_run_directory_stops_at_once(tmp_path):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        code, _, err = _search(run, 4)
        line = _one_line(err)
        prefix = f"error: {run} is in use by process {proc.pid} on {socket.gethostname()} (-c, since "
        assert code == 1 and line.startswith(prefix), line
        assert line.endswith("); two runs cannot share a run directory: wait for that one to end (or stop it), or "
                             "use another directory")
        assert not (run / "history.jsonl").exists()
        code, _, err = run_main("train_final.py", "--arch=enas_macro", f"--model_dir={run}", "--epochs=1")
        assert code == 1 and _one_line(err).startswith(prefix)
    finally:
        proc.send_signal(signal.SIGKILL)  # killed: the lock must not stay behind
        proc.wait()
    code, _, err = _search(run, 4)
    assert code == 0, err[-2000:]


def test_only_the_chief_of_a_cluster_holds_the_lock(tmp_path):
    from nas_tf.distribute.cluster import WorkerInfo
    from nas_tf.search.run_dir import RunDirectory

    proc = _holder(tmp_path)
    try:
        with RunDirectory(str(tmp_path), WorkerInfo(index=1, count=2, is_chief=False)).hold():
            pass  # a worker shares the chief's hold: no lock, no error
        with pytest.raises(RunLockedError, match="is in use by process"):
            with RunDirectory(str(tmp_path), WorkerInfo(index=0, count=2, is_chief=True)).hold():
                pass
    finally:
        proc.kill()
        proc.wait()
    with hold_run_dir(tmp_path), hold_run_dir(tmp_path):  # re-entrant in one process
        pass


# -------------------------------------------------- interrupts and crashes


def _interrupt_child(monkeypatch, at_child, signum, swallow=False):
    """Sends ``signum`` to this process while child ``at_child`` is read from the table."""
    from nas_tf.tasks.tabular.child import TabularTrainer

    original = TabularTrainer.__call__
    called = []

    def call(self, request):
        called.append(request.index)
        if request.index == at_child and called.count(at_child) == 1:
            try:
                os.kill(os.getpid(), signum)
            except BaseException:  # noqa: BLE001 -- what TensorFlow does to an exception inside its callbacks
                if not swallow:
                    raise
        return original(self, request)

    monkeypatch.setattr(TabularTrainer, "__call__", call)
    return called


@pytest.mark.parametrize("signum, swallow", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
                         ids=["sigterm", "ctrl-c", "swallowed"])
def test_an_interrupt_stops_cleanly_and_the_same_command_resumes(reference, tmp_path, monkeypatch, signum, swallow):
    run = tmp_path / "run"
    called = _interrupt_child(monkeypatch, 3, signum, swallow)
    code, _, err = _search(run, 6)
    name = signal.Signals(signum).name
    how = "Ctrl-C" if name == "SIGINT" else "kill"
    assert code == 128 + signum and _one_line_tail(err) == (
        f"error: stopped by {name} ({how}): the run stopped at a clean point; re-run the same command to resume"
    )
    assert [r["child"] for r in _rows(run)] == [0, 1, 2]  # child 3 never recorded (not even as failed)
    assert not (run / "child_in_flight.json").exists()
    monkeypatch.undo()
    code, _, err = _search(run, 6)
    assert code == 0, err[-2000:]
    assert _rows(run) == _rows(reference / "six")
    assert called[:4] == [0, 1, 2, 3]


def _one_line_tail(err):
    """The last line of stderr (progress lines of the children come before it)."""
    assert "Traceback" not in err, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.strip().endswith(errors[0]), err[-2000:]
    return errors[0]


def test_a_child_in_flight_at_two_deaths_of_the_process_is_recorded_as_failed(reference, tmp_path, monkeypatch):
    from nas_tf.search.run_dir import CRASHED_REASON, IN_FLIGHT
    from nas_tf.tasks.tabular.child import TabularTrainer

    run = _copy(reference, tmp_path)
    # What two deaths while child 5 trained leave: child 4 recorded, the record of child 5, started twice.
    append_jsonl(run / "history.jsonl", read_jsonl(reference / "six" / "history.jsonl")[4:5])
    atomic_write_json(run / IN_FLIGHT, {"child": 5, "step": 2, "starts": 2})
    trained = []
    original = TabularTrainer.__call__
    monkeypatch.setattr(TabularTrainer, "__call__", lambda self, r: trained.append(r.index) or original(self, r))
    code, _, err = _search(run, 6)
    assert code == 0, err[-2000:]
    assert trained == []  # child 5 is not trained a third time
    last = read_jsonl(run / "history.jsonl")[-1]
    assert (last["child"], last["reward"], last["status"], last["reason"]) == (5, 0.0, "worker_crashed", CRASHED_REASON)
    assert "child 5 was in training when the process died 2 times in a row: recorded as failed" in err
    # Once: a record of one death trains the child again.
    run = _copy(reference, tmp_path / "once")
    append_jsonl(run / "history.jsonl", read_jsonl(reference / "six" / "history.jsonl")[4:5])
    atomic_write_json(run / IN_FLIGHT, {"child": 5, "step": 2, "starts": 1})
    trained.clear()
    assert _search(run, 6)[0] == 0 and trained == [5]
    assert _rows(run) == _rows(reference / "six")


# ------------------------------------------------- files: modes, full disk


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_result_files_get_the_permissions_of_every_other_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "best.json", {"a": 1})
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
        append_jsonl(tmp_path / "history.jsonl", [{"a": 1}])
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
    assert modes == {"best.json": oct(0o666 & ~umask), "plain.txt": oct(0o666 & ~umask), "history.jsonl": oct(0o666 & ~umask)}
    os.chmod(tmp_path / "best.json", 0o600)  # a file the user restricted keeps its mode when rewritten
    atomic_write_json(tmp_path / "best.json", {"a": 2})
    assert (tmp_path / "best.json").stat().st_mode & 0o777 == 0o600


def test_a_search_writes_its_files_with_the_umask(reference):
    modes = {p.name: p.stat().st_mode & 0o777 for p in (reference / "six").iterdir() if p.is_file() and p.name != ".lock"}
    umask = os.umask(0)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_an_append_on_a_full_disk_leaves_no_torn_line(tmp_path):
    """A file-size limit (RLIMIT_FSIZE) makes the write fail half-way, as a full disk does."""
    path = tmp_path / "history.jsonl"
    append_jsonl(path, [{"child": 0}])
    size = path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, hard))
    try:
        with pytest.raises(OSError) as e:
            append_jsonl(path, [{"child": 1, "padding": "x" * 100}])
        assert e.value.errno == errno.EFBIG
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert path.stat().st_size == size and read_jsonl(path) == [{"child": 0}]
    from nas_tf.utils.io import disk_full_reason

    assert disk_full_reason(e.value) == "file too large (the file-size limit, ulimit -f)"
    assert disk_full_reason(OSError(errno.ENOSPC, "No space left on device")) == "no space left on device"


# ------------------------------------------------------- one-shot, final training


def _counting_task():
    """A shared-weights task with one variable (no network): the one-shot loop's files and checkpoints, instantly."""
    from nas_tf.search.one_shot import SharedWeightsTask

    class CountingTask(SharedWeightsTask):
        def __init__(self):
            import tensorflow as tf

            self.w = tf.Variable(0.0)

        def train_epoch(self, epoch, sample_tokens):
            for _ in range(2):
                self.w.assign_add(float(sum(sample_tokens())) / 10.0)
            return {"loss": float(self.w.numpy())}

        def reward_batches(self, epoch):
            import itertools

            return itertools.count(epoch * 100)

        def reward(self, tokens, batch):
            return ((sum(int(t) for t in tokens) * 7 + batch) % 10 + float(self.w.numpy()) % 1) / 10.0, {}

        def trackables(self):
            return {"w": self.w}

    return CountingTask()


def _one_shot(model_dir, epochs):
    from nas_tf.controller import RandomSearch
    from nas_tf.search import OneShotConfig, OneShotSearch
    from nas_tf.spaces import EnasMacroSpace

    config = OneShotConfig(str(model_dir), num_epochs=epochs, controller_steps=2, controller_aggregate=2,
                           derive_samples=3)
    return OneShotSearch(EnasMacroSpace(num_layers=2), RandomSearch(seed=3), _counting_task(), config).run()


def test_a_one_shot_search_falls_back_to_its_previous_checkpoint(tmp_path):
    from nas_tf.utils.io import RunDirError

    whole = _one_shot(tmp_path / "whole", 3)
    run = tmp_path / "run"
    _one_shot(run, 2)
    for p in (run / "checkpoints").glob("ckpt-4.*"):  # the newest: after epoch 1's controller phase
        p.unlink()
    resumed = _one_shot(run, 3)
    assert read_jsonl(run / "history.jsonl") == read_jsonl(tmp_path / "whole" / "history.jsonl")
    assert resumed["best_reward"] == whole["best_reward"]
    assert (run / "best_arch.json").read_text() == (tmp_path / "whole" / "best_arch.json").read_text()
    # A history that lacks counted controller updates is refused (not restarted).
    (run / "history.jsonl").unlink()
    with pytest.raises(RunDirError, match=r"history.jsonl is missing, but checkpoint ckpt-6 counts 6 controller updates"):
        _one_shot(run, 4)
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.endswith(".index")) == ["ckpt-5.index",
                                                                                                   "ckpt-6.index"]


def _epochs(model_dir, done, damage=None):
    """EpochCheckpoints of a one-variable model after ``done`` epochs (each adds 1 to the variable)."""
    import tensorflow as tf

    from nas_tf.training.checkpointing import EpochCheckpoints

    w = tf.Variable(0.0)
    ckpt = EpochCheckpoints(str(model_dir), w=w)
    for e in range(done):
        w.assign_add(1.0)
        ckpt.save(e + 1, {"epochs_done": e + 1, "history": {"loss": [float(i) for i in range(e + 1)], "steps": 10 * (e + 1)}})
    return ckpt


def test_final_training_resumes_from_the_checkpoint_its_metrics_record(tmp_path):
    import tensorflow as tf

    from nas_tf.training.checkpointing import EpochCheckpoints
    from nas_tf.utils.io import RunDirError

    _epochs(tmp_path, 3)

    def resume():
        w = tf.Variable(0.0)
        ckpt = EpochCheckpoints(str(tmp_path), w=w)
        metrics = ckpt.restore()
        return ckpt.epochs_done, float(w.numpy()), metrics

    assert resume()[:2] == (3, 3.0)
    # A kill between the checkpoint and its metrics: the metrics say 2 epochs, the checkpoint of epoch 2 is used.
    atomic_write_json(tmp_path / "metrics.json", {"epochs_done": 2, "history": {"loss": [0.0, 1.0], "steps": 20}})
    assert resume() == (2, 2.0, {"epochs_done": 2, "history": {"loss": [0.0, 1.0], "steps": 20}})
    # The newest checkpoint damaged: the one before, the metrics cut back to it.
    atomic_write_json(tmp_path / "metrics.json", {"epochs_done": 3, "history": {"loss": [0.0, 1.0, 2.0], "steps": 30}})
    next((tmp_path / "checkpoints").glob("ckpt-3.data*")).write_bytes(b"garbage")
    assert resume() == (2, 2.0, {"epochs_done": 2, "history": {"loss": [0.0, 1.0], "steps": 20}})
    # Damaged metrics, or metrics without checkpoints: refused with what to do.
    (tmp_path / "metrics.json").write_bytes(b"{\xff")
    with pytest.raises(RunDirError, match=r"metrics.json: line 1 is not UTF-8 text .*; put it back, or move .* away"):
        resume()
    atomic_write_json(tmp_path / "metrics.json", {"epochs_done": 3, "history": {}})
    import shutil

    shutil.rmtree(tmp_path / "checkpoints")
    with pytest.raises(RunDirError, match="records 3 trained epochs but .* holds no checkpoint"):
        resume()


def test_final_training_keeps_two_checkpoints_and_holds_the_lock(tmp_path):
    import gc

    ckpt = _epochs(tmp_path, 3)
    assert ckpt.keep == 2 and sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index")) == ["ckpt-2.index",
                                                                                                    "ckpt-3.index"]
    code = (
        "from nas_tf.utils.io import take_run_dir\n"
        f"try:\n    take_run_dir({str(tmp_path)!r})\nexcept Exception as e:\n    print(type(e).__name__)\n"
        "else:\n    print('took it')\n"
    )

    def another_process():
        env = dict(os.environ, PYTHONPATH=REPO)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip()

    assert another_process() == "RunLockedError"  # held while the run's checkpoints object lives
    del ckpt
    gc.collect()
    assert another_process() == "took it"


def test_the_temporaries_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    """What a kill during an atomic write or an export leaves (the names nas_tf's writers give their temporaries)."""
    import tempfile

    from nas_tf.export.files import atomic_file
    from nas_tf.utils.io import remove_stale_temporaries

    keras_tmp = None
    with pytest.raises(KeyboardInterrupt):  # killed while Keras writes model.keras: the temporary stays
        with atomic_file(str(tmp_path / "model.keras")) as keras_tmp:
            open(keras_tmp, "w").write("half")
            os.rename(keras_tmp, keras_tmp + ".keep")  # keep it from atomic_file's own clean-up
            raise KeyboardInterrupt
    os.rename(keras_tmp + ".keep", keras_tmp)
    export_tmp = tempfile.mkdtemp(prefix=".saved_model.", dir=tmp_path)
    text_tmp = tmp_path / ".best.json.abcd1234.tmp"
    text_tmp.write_text("{")
    user = [".model.keras.abcd1234.h5", ".notes.abcd1234", "model.keras.abcd1234.keras", "notes.txt"]
    (tmp_path / user[1]).mkdir()  # a folder of that shape, but not among the names given below
    for name in (user[0], user[2], user[3]):
        (tmp_path / name).write_text("mine")
    removed = remove_stale_temporaries(tmp_path, ("model.keras", "saved_model", "best.json"))
    assert sorted(removed) == sorted([os.path.basename(keras_tmp), os.path.basename(export_tmp), text_tmp.name])
    assert sorted(os.listdir(tmp_path)) == sorted(user)


def test_a_damaged_final_training_directory_is_refused_naming_the_file(tmp_path):
    """Rows of the table in docs/reliability.md: metrics.json missing beside checkpoints; arch.json damaged."""
    import gc

    import tensorflow as tf

    from nas_tf.training.checkpointing import EpochCheckpoints, claim_run_dir
    from nas_tf.utils.io import RunDirError

    _epochs(tmp_path, 2)  # two epochs; the lock goes with the object
    gc.collect()
    (tmp_path / "metrics.json").unlink()
    with pytest.raises(RunDirError) as e:
        EpochCheckpoints(str(tmp_path), w=tf.Variable(0.0)).restore()
    assert str(e.value) == (f"{tmp_path}/metrics.json is missing beside the checkpoints in {tmp_path}/checkpoints; put it "
                            f"back, or move {tmp_path} away to train from scratch")
    gc.collect()
    run = tmp_path / "arch"
    run.mkdir()
    (run / "arch.json").write_bytes(b'{"space": "nas_cnn", "layers": [')
    before = (run / "arch.json").read_bytes()
    with pytest.raises(RunDirError, match=r"arch.json.*; .* is the final training of the arch in arch.json: put it back, "
                                          r"or use another directory$"):
        claim_run_dir(str(run), nas_tf.load_arch("enas_macro"))
    assert (run / "arch.json").read_bytes() == before
