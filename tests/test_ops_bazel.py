"""The Bazel build of the op library (BUILD, WORKSPACE, configure.py) and the op tests against it.

Slow (a Bazel build from scratch, about a minute on 2 cores): `.ci/run` runs it
as its own step after installing Debian's bazel-bootstrap.
"""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_bazel_builds_the_op_library_and_the_op_tests_pass_against_it(tmp_path):
    bazel = shutil.which("bazel")
    if bazel is None:
        if os.environ.get("NAS_TF_REQUIRE_BAZEL") == "1":
            pytest.fail("bazel is required here but not installed (apt-get install bazel-bootstrap)")
        pytest.skip("bazel is not installed (apt-get install bazel-bootstrap)")
    conf = subprocess.run([sys.executable, "configure.py"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert conf.returncode == 0, conf.stderr[-3000:]
    build = subprocess.run(
        [bazel, "--batch", f"--output_user_root={tmp_path / 'bazel_root'}", "build", "//:nas_tf_ops"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )
    assert build.returncode == 0, build.stderr[-5000:]
    built = os.path.join(REPO, "bazel-bin", "_nas_tf_ops.so")
    assert os.path.exists(built), build.stderr[-3000:]
    library = tmp_path / "_nas_tf_ops_bazel.so"
    shutil.copyfile(built, library)
    env = dict(os.environ, NAS_TF_OPS_LIBRARY=str(library), NAS_TF_REQUIRE_CUSTOM_OPS="1", PYTHONPATH=REPO)
    tests = subprocess.run(
        # The op tests in this one process (-n 0), without the three that start fresh interpreters to test
        # how the library is found and switched off (the default run covers them).
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "tests/test_ops.py",
         "-k", "not environment_variable_disables and not missing_library_falls_back and not stays_lazy"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=1800,
    )
    assert tests.returncode == 0, tests.stdout[-5000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout.splitlines()[-1]
