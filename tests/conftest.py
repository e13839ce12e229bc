"""Shared fixtures. TensorFlow's C++ INFO lines are silenced for readable logs."""

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def pytest_configure(config):
    """Splits the CPU into 2 logical devices before TensorFlow runs any op.

    Then the data-parallel tests (``--strategy=mirrored --num_cpu_devices=2``,
    ``make_strategy("mirrored", num_cpu_devices=2)``) run in this process,
    without a new interpreter each; everything else still runs on ``/cpu:0``
    (a one-device strategy, or none, never spreads over the logical devices).
    """
    from nas_tf.distribute import configure_cpu_devices

    configure_cpu_devices(LOGICAL_CPUS)


LOGICAL_CPUS = 2

# The files that take longest, longest first: pytest-xdist (--dist loadfile) hands out files in
# collection order, so these start at once and the short files fill the gaps instead of a long
# file starting last on one worker while the other idles. The slow run's longest (the soak, about 7 minutes
# on one worker) comes first; it has no test in the default run.
LONG_FILES = (
    "test_soak.py", "test_scripts_enas.py", "test_parallel.py", "test_scripts.py", "test_scripts_nasnet.py", "test_viz_runs.py",
    "test_export.py", "test_scripts_rnn.py", "test_train_final_distributed.py", "test_enas_rnn.py", "test_search.py",
    "test_controller.py", "test_bench_smoke.py", "test_nas_cell.py", "test_ops_export.py", "test_nasnet.py",
)


def pytest_collection_modifyitems(session, config, items):
    """Runs the long files first (a stable sort: the order inside a file is kept)."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))


@pytest.fixture(scope="session")
def digits():
    from nas_tf.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def small_digits(digits):
    """The digits with a 256-image training split, for fast child training."""
    return digits.subset("train", 256)


@pytest.fixture(scope="session")
def macro_one_shot(tmp_path_factory, small_digits):
    """A tiny one-shot ENAS macro search, run for 1 epoch and resumed to 2 (shared by test_enas and test_viz_runs).

    Returns ``{"dir": the run directory, "first": the first run's summary and files, "resumed": the second's summary}``.
    """
    import json

    import keras

    from nas_tf.controller import Reinforce, controller_for
    from nas_tf.models.enas_macro import EnasMacroSupernet
    from nas_tf.search import OneShotConfig, OneShotSearch
    from nas_tf.spaces import EnasMacroSpace
    from nas_tf.tasks import ImageSupernetTask, SharedTrainingConfig

    space = EnasMacroSpace(num_layers=3)
    model_dir = tmp_path_factory.mktemp("one_shot")

    def search(epochs):
        keras.utils.set_random_seed(0)
        supernet = EnasMacroSupernet(space, 10, filters=8)
        task = ImageSupernetTask(supernet, small_digits, SharedTrainingConfig(batch_size=32, steps_per_epoch=4, lr_t0=2))
        searcher = Reinforce(controller_for(space.decisions, seed=0, lstm_layers=1, lstm_units=32), seed=0,
                             learning_rate=1e-3, skip_weight=0.8, entropy_mode="reward", entropy_weight=1e-4,
                             baseline_update="before")
        config = OneShotConfig(str(model_dir), num_epochs=epochs, controller_steps=2, controller_aggregate=3,
                               derive_samples=4)
        return OneShotSearch(space, searcher, task, config).run()

    def lines(name):
        with open(model_dir / name) as f:
            return [json.loads(line) for line in f if line.strip()]

    first = search(1)
    with open(model_dir / "best_arch.json") as f:
        files = {"history": lines("history.jsonl"), "derived": lines("derived.jsonl"), "best_arch": json.load(f)}
    return {"dir": model_dir, "space": space, "first": {"summary": first, **files}, "resumed": search(2)}


@contextlib.contextmanager
def script_flags(name):
    """Defines the flags of scripts/<name> in this process; yields the script's globals.

    The script is run as a module (not as ``__main__``: its ``app.run`` does
    not start), its flags are removed again afterwards, so the next test can
    define another script's flags. Parse a command line with
    ``FLAGS(["prog", ...])`` and run the script with ``globals["main"](["prog"])``.
    """
    import runpy

    from absl import flags

    fv = flags.FLAGS
    run_name = f"script_{name[:-3]}"
    module = runpy.run_path(os.path.join(REPO, "scripts", name), run_name=run_name)
    try:
        yield module
    finally:
        fv.unparse_flags()
        ours = {
            f.name
            for owner, defined in fv.flags_by_module_dict().items()
            if owner.startswith("nas_tf") or owner == run_name
            for f in defined
        }
        for flag in ours:
            delattr(fv, flag)


def call_main(name, *args):
    """Parses ``args`` with the flags of scripts/<name> and calls its ``main`` in this process.

    Unlike :func:`run_main`, output and ``SystemExit`` go to the caller (for ``capsys`` and
    ``pytest.raises``); the script's flags are removed afterwards.
    """
    from absl import flags

    with script_flags(name) as script:
        argv = [name, *args]
        flags.FLAGS(argv)
        script["main"](argv[:1])


def outputs_and_input_gradient(model, x, weights, *args):
    """`model(x, *args)` in training mode and the gradient of `sum(logits * weights)` with respect to `x`.

    The input gradient goes through every op of the arch (the max pools' own gradient included), so the
    supernet-equals-child tests compare the backward pass too.
    """
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, *args, training=True)
        score = tf.reduce_sum(logits * weights)
    return logits, tape.gradient(score, x)


def run_main(name, *args):
    """Runs scripts/<name> in this process with ``args``; returns ``(exit code, stdout, stderr)``.

    A flag the parser refuses gives exit code 2 and absl's message, as on the
    command line; the script's own one-line errors give exit code 1.
    """
    import io

    from absl import flags

    from nas_tf.cli.drivers import parse_flags

    out, err = io.StringIO(), io.StringIO()
    code = 0
    argv = [os.path.join(REPO, "scripts", name), *args]  # what the script sees as its command line
    saved_argv, sys.argv = sys.argv, argv
    try:
        with script_flags(name) as script, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                parse_flags(argv)  # the script's parser: flag files checked, then absl's
                script["main"](argv[:1])
            except flags.Error as e:
                print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
                code = 2
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = saved_argv
    return code, out.getvalue(), err.getvalue()


def run_script(name, *args, timeout=900, env=None):
    """Runs scripts/<name> in a fresh interpreter; returns the CompletedProcess."""
    import subprocess

    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def start_cluster(name, *args, num_workers=2, env=None, worker_args=None):
    """Starts scripts/<name> as ``num_workers`` processes of a local multi-worker
    cluster on 127.0.0.1 (one ``TF_CONFIG`` each); returns the ``Popen`` s
    (stdout and stderr to pipes, text mode). ``worker_args``: ``{i: [more
    arguments of worker i only]}``."""
    import subprocess

    from nas_tf.distribute.cluster import local_tf_configs

    procs = []
    for i, tf_config in enumerate(local_tf_configs(num_workers)):
        extra = (worker_args or {}).get(i, [])
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.update(env or {})
        full_env["TF_CONFIG"] = tf_config
        procs.append(
            subprocess.Popen(
                [sys.executable, os.path.join(REPO, "scripts", name), *args, *extra],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=full_env,
            )
        )
    return procs


def run_cluster(name, *args, num_workers=2, timeout=900, env=None, worker_args=None):
    """Runs scripts/<name> on a local cluster to the end; returns ``[(returncode, stdout, stderr)]``."""
    procs = start_cluster(name, *args, num_workers=num_workers, env=env, worker_args=worker_args)
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            out.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return out
