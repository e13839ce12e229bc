"""Shared fixtures. TensorFlow's C++ INFO lines are silenced for readable logs."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


@pytest.fixture(scope="session")
def digits():
    from nas_tf.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def small_digits(digits):
    """The digits with a 256-image training split, for fast child training."""
    return digits.subset("train", 256)


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
