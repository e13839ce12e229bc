"""Small end-to-end runs of the custom-op scripts (bench_ops.py, check_cuda_ops.py)."""

import os

import pytest
from absl import app

from conftest import run_main, run_script


def _require_library():
    import nas_tf.ops as O

    if not O.custom_ops_loaded():
        if os.environ.get("NAS_TF_REQUIRE_CUSTOM_OPS") == "1":
            pytest.fail(f"the compiled op library is required here but not in use: {O.load_error()}")
        pytest.skip(f"compiled op library not available: {O.load_error()}")


def test_bench_ops_quick_writes_its_section(tmp_path):
    _require_library()
    out_md = tmp_path / "bench.md"
    code, _, err = run_main("bench_ops.py", "--quick", f"--output={out_md}")
    assert code == 0, err[-3000:]
    text = out_md.read_text()
    assert "<!-- begin ops -->" in text and "pad+concat fwd ms" in text and "gather+matmul fwd ms" in text
    # Timed per application (two per call in --quick), less the cost of an empty call.
    assert "applies the op 2 times" in text and "call ms (subtracted)" in text
    assert "GPU**: not measured" in text and "check_cuda_ops.py" in text


def test_check_cuda_ops_harness_runs_on_the_cpu_kernels(tmp_path):
    """Without a GPU the same correctness harness runs on the CPU kernels (the GPU run needs a lent device)."""
    try:
        from nas_tf.kernels import _kernels
    except ImportError as e:
        if os.environ.get("NAS_TF_REQUIRE_CUSTOM_OPS") == "1":
            raise
        pytest.skip(f"nas_tf._kernels not available: {e}")
    out_md = tmp_path / "gpu.md"
    out = run_script("check_cuda_ops.py", "--device=cpu", "--random_cases=6", f"--output={out_md}",
                     f"--json_out={tmp_path / 'r.json'}")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert ", 0 failures" in out.stdout
    assert "<!-- begin ops-gpu -->" in out_md.read_text()
    # Asked for CUDA on a build without it: a clear usage error, not a crash.
    if not _kernels.cuda_available():
        bad = run_script("check_cuda_ops.py", "--device=cuda")
        assert bad.returncode != 0 and "built without CUDA" in bad.stderr


@pytest.mark.parametrize("size", ["8x8", "8x8xF", "0x8x8"])
def test_bench_enas_refuses_bad_branch_sizes_before_it_runs(tmp_path, size):
    _require_library()
    out_md = tmp_path / "bench.md"
    with pytest.raises(app.UsageError, match=f"--branch_sizes: '{size}'"):  # absl's app.run prints it and exits 1
        run_main("bench_enas.py", f"--branch_sizes={size}", f"--output={out_md}")
    assert not out_md.exists()


@pytest.mark.slow
def test_bench_enas_writes_trace_and_step_times_with_and_without_the_ops(tmp_path):
    """The default search's case, one arch, one step, a batch of 16 (in this process)."""
    _require_library()
    out_md = tmp_path / "bench.md"
    code, _, err = run_main("bench_enas.py", "--spaces=micro_digits", "--archs=1", "--steps=1", "--batch_size=16",
                            "--branch_sizes=4x4x4", f"--output={out_md}")
    assert code == 0, err[-3000:]
    text = out_md.read_text()
    assert "<!-- begin enas -->" in text and "Produced by: `python scripts/bench_enas.py --spaces=micro_digits" in text
    rows = [line for line in text.splitlines() if line.startswith("| micro_digits | switch |")]
    # The micro supernet concatenates same-size states only (a TensorList gather): no compiled op in either graph.
    # On the 8x8 digits "auto" runs the chosen ops as branch functions; the third row is the other mode.
    assert len(rows) == 3, rows
    assert "| auto: function | compiled | none |" in rows[0] and "| auto: function | fallback | none |" in rows[1]
    assert "| inlined | compiled | none |" in rows[2]
    assert all(line.rstrip(" |").endswith("| 1") for line in rows)  # one trace each
    assert "| 4x4x1 | 4 | 64 |" in text and "function in 5 of 5 cells" in text  # the size sweep
