"""Every benchmark script runs end to end with tiny settings and writes its section (a smoke test).

The numbers of a smoke run mean nothing and are not checked; what is checked
is that the script runs as documented, writes the section it names into the
markdown file, and records the command that produced it. Scripts run in this
process (``conftest.run_main``); those that need other processes start them
themselves. bench_nb201.py, bench_ops.py, bench_enas_rnn.py and
check_cuda_ops.py have their own tests (tests/test_bench_nb201.py,
tests/test_ops_scripts.py, tests/test_enas_rnn.py).
"""

import pytest

from conftest import run_main

CASES = {
    "bench_search.py": (
        ["--num_architectures=2", "--archs_per_step=1", "--child_epochs=1", "--start_depth=1"], ["search"],
    ),
    "bench_cells.py": (["--units=8", "--steps=3", "--repeats=1", "--noxla"], ["cells"]),
    "bench_controller.py": (["--layers=2", "--samples=10", "--steps=1", "--archs=2"], ["controller"]),
    "bench_distributed.py": (["--controller_depths=1", "--controller_batches=2", "--tables=controller"], ["distributed"]),
}
# Every table of the scripts whose full tiny run takes a minute or more (the slow suite).
SLOW_CASES = {
    "bench_enas_distributed.py": (
        ["--layers=1", "--filters=4", "--image_size=8", "--global_batch=8", "--steps=1", "--repeats=1",
         "--op_selections=all", "--noper_replica_archs"],
        ["distributed_enas"],
    ),
    # (the models table's parameter counts are tested against keras.applications in test_nasnet.py)
    "bench_nasnet.py": (["--tiny", "--tables=controller,search"], ["nasnet_controller", "nasnet_search"]),
    "bench_main_job.py": (
        ["--variants=ops",
         "--search_flags=--num_epochs=1,--controller_steps=1,--controller_aggregate=2,--derive_samples=2,"
         "--derive_batches=1,--shared_steps_per_epoch=2,--enas_nodes=2,--enas_filters=4,--final_epochs=0"],
        ["main_job"],
    ),
    "bench_distributed.py": (
        ["--workers=1", "--children=2", "--child_epochs=1", "--depth=1", "--train_subset=64", "--archs_per_step=2",
         "--controller_depths=1", "--controller_batches=2", "--tables=children,collectives,controller"],
        ["distributed"],
    ),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_end_to_end_and_writes_its_section(script, tmp_path):
    _check(script, *CASES[script], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SLOW_CASES))
def test_every_table_of_a_benchmark_runs_end_to_end(script, tmp_path):
    _check(script, *SLOW_CASES[script], tmp_path)


def _check(script, args, sections, tmp_path):
    output = tmp_path / "benchmarks.md"
    code, out, err = run_main(script, *args, f"--output={output}")
    assert code == 0, err[-3000:]
    text = output.read_text()
    for section in sections:
        assert f"<!-- begin {section} -->" in text and f"<!-- end {section} -->" in text, section
        body = text.split(f"<!-- begin {section} -->")[1].split(f"<!-- end {section} -->")[0]
        assert f"Produced by: `python scripts/{script}" in body, body[:500]
        assert "|---" in body  # a table
