"""Tabular benchmarks: the restricted unpickler, the NATS-Bench reader, the analog-nasbench table."""

import bz2
import collections
import importlib.util
import itertools
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import nas_tf
from nas_tf.benchmarks import BenchmarkError, BenchmarkNotInstalled, nb201, read_nats_file, restricted_loads, reward_for
from nas_tf.spaces import NB201Arch, NB201Space

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_ANALOG = importlib.util.find_spec("analognasbench") is not None
needs_analog = pytest.mark.skipif(not HAS_ANALOG, reason='analog-nasbench is not installed (pip install ".[benchmarks]")')


class _Boom:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


# --------------------------------------------------------------- the unpickler


def test_restricted_unpickler_refuses_code_and_unlisted_classes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchmarkError, match=r"x\.pkl: refused to load (posix|nt)\.system"):
        restricted_loads(pickle.dumps(_Boom()), {}, "x.pkl")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(BenchmarkError, match="refused to load collections.Counter .*admits only: collections.OrderedDict"):
        restricted_loads(pickle.dumps(collections.Counter("ab")), {("collections", "OrderedDict"): dict}, "x.pkl")
    with pytest.raises(BenchmarkError, match="x.pkl: not a readable pickle"):
        restricted_loads(pickle.dumps({"a": 1})[:-3], {}, "x.pkl")
    # Plain containers and numbers need no global.
    assert restricted_loads(pickle.dumps({"a": [1, 2.5, ("b", None)]}), {}, "x.pkl") == {"a": [1, 2.5, ("b", None)]}


# ------------------------------------------------------------------ NATS files

CELLS = [
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|",
]
RUNS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",), "cifar100": ("ori-test", "x-valid", "x-test")}


def _trial(run, seed, epochs, base, params):
    """One trial in the layout of NATS-Bench's ResultsCount.state_dict()."""
    evals = {}
    for k, name in enumerate(RUNS[run]):
        for e in range(epochs):
            evals[f"{name}@{e}"] = base + k + e / epochs + seed / 1000.0
    return {
        "name": run,
        "net_state_dict": None,
        "train_acc1es": {e: base + 5.0 + e + seed / 1000.0 for e in range(epochs)},
        "train_acc5es": None,
        "train_losses": {e: 1.0 / (e + 1) for e in range(epochs)},
        "train_times": {e: np.float64(0.5) for e in range(epochs)},
        "arch_config": {"channel": 16, "num_cells": 5, "class_num": 10},
        "params": params,
        "flop": np.float64(15.6),
        "seed": seed,
        "epochs": epochs,
        "latency": [np.float64(0.0139)],
        "eval_names": list(RUNS[run]),
        "eval_acc1es": evals,
        "eval_times": {k: np.float64(0.1) for k in evals},
        "eval_losses": {k: 0.5 for k in evals},
    }


def _arch_file(index, cell, base):
    out = collections.OrderedDict()
    for hp, epochs in (("12", 12), ("200", 200)):
        seeds = {"cifar10-valid": [777, 888], "cifar10": [777, 888, 999], "cifar100": [777]}
        out[hp] = {
            "arch_index": index,
            "arch_str": cell,
            "all_results": {
                (run, s): _trial(run, s, epochs, base + (0 if hp == "200" else -20), 0.129306)
                for run, ss in seeds.items()
                for s in ss
            },
            "dataset_seed": seeds,
            "clear_net_done": True,
        }
    return out


def _write(path, obj):
    with bz2.BZ2File(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


@pytest.fixture
def nats_dir(tmp_path):
    d = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    d.mkdir()
    _write(d / "meta.pickle.pbz2", {"meta_archs": CELLS, "total_archs": len(CELLS), "arch2infos": {}, "evaluated_indexes": set()})
    for i, cell in enumerate(CELLS[:2]):  # the third cell's file is missing
        _write(d / f"{i:06d}.pickle.pbz2", _arch_file(i, cell, 80.0 + i))
    return d


def test_nats_reader_averages_the_seeds_at_the_last_epoch(nats_dir):
    table = nb201(benchmark_dir=nats_dir)
    assert len(table) == 3 and table.cells() == CELLS
    m = table.query(CELLS[1])
    # cifar10 ori-test (first eval set of the run, k = 0) at epoch 199, seeds 777/888/999.
    assert m["test_accuracy"] == pytest.approx(81.0 + 199 / 200 + np.mean([0.777, 0.888, 0.999]))
    # Validation: the cifar10-valid run, x-valid, seeds 777/888.
    assert m["valid_accuracy"] == pytest.approx(81.0 + 199 / 200 + np.mean([0.777, 0.888]))
    assert m["train_accuracy"] == pytest.approx(81.0 + 5.0 + 199 + np.mean([0.777, 0.888, 0.999]))
    assert m["params"] == 129306 and m["flops"] == pytest.approx(15.6e6)
    # The same cell given as an Arch, as JSON and as a dict.
    arch = NB201Arch.from_string(CELLS[1])
    assert table.query(arch) == table.query(arch.to_json()) == table.query(arch.to_dict()) == m
    short = nb201(benchmark_dir=nats_dir, epochs=12)
    assert short.query(CELLS[0])["test_accuracy"] == pytest.approx(60.0 + 11 / 12 + np.mean([0.777, 0.888, 0.999]))
    c100 = nb201(benchmark_dir=nats_dir, dataset="cifar100")
    assert c100.query(CELLS[0])["test_accuracy"] == pytest.approx(80.0 + 2 + 199 / 200 + 0.777)  # x-test is k = 2
    assert reward_for(table, arch) == (pytest.approx(m["test_accuracy"] / 100), m)


def test_nats_reader_errors_name_the_file(nats_dir, tmp_path):
    table = nb201(benchmark_dir=nats_dir)
    with pytest.raises(BenchmarkNotInstalled, match=r"000002\.pickle\.pbz2: no such file"):
        table.query(CELLS[2])
    with pytest.raises(BenchmarkError, match=r"cell \|none~0\|.* is not in the table \(3 cells\)"):
        table.query(NB201Arch(("none",) * 6))
    with pytest.raises(BenchmarkError, match="holds nb201 cells only, got an arch of space 'enas_macro'"):
        table.query(nas_tf.load_arch("enas_macro"))
    with pytest.raises(BenchmarkError, match="dataset must be one of"):
        nb201(benchmark_dir=nats_dir, dataset="mnist")
    with pytest.raises(BenchmarkError, match="epochs must be 200 or 12"):
        nb201(benchmark_dir=nats_dir, epochs=50)
    with pytest.raises(BenchmarkNotInstalled, match="no such directory"):
        nb201(benchmark_dir=tmp_path / "nowhere")
    with pytest.raises(BenchmarkError, match="no metric 'latency'"):
        reward_for(table, CELLS[0], metric="latency")
    # A file whose recorded cell disagrees with the meta file.
    _write(nats_dir / "000002.pickle.pbz2", _arch_file(2, CELLS[0], 70.0))
    with pytest.raises(BenchmarkError, match="records cell .* the meta file says"):
        table.query(CELLS[2])


def test_nats_reader_refuses_anything_but_its_records(nats_dir):
    bad = _arch_file(0, CELLS[0], 80.0)
    bad["200"]["all_results"][("cifar10", 777)]["latency"] = [_Boom()]
    _write(nats_dir / "000000.pickle.pbz2", bad)
    with pytest.raises(BenchmarkError, match=r"000000\.pickle\.pbz2: refused to load (posix|nt)\.system"):
        nb201(benchmark_dir=nats_dir).query(CELLS[0])
    # numpy scalars are admitted for numbers only: no arrays, no strings.
    _write(nats_dir / "000001.pickle.pbz2", {"200": np.zeros(3)})
    with pytest.raises(BenchmarkError, match=r"refused to load numpy\.(_)?core\.multiarray\._reconstruct"):
        read_nats_file(str(nats_dir / "000001.pickle.pbz2"))
    _write(nats_dir / "000001.pickle.pbz2", {"200": np.array(["abc"])[0]})
    with pytest.raises(BenchmarkError, match="refused numpy dtype"):
        read_nats_file(str(nats_dir / "000001.pickle.pbz2"))
    (nats_dir / "000001.pickle.pbz2").write_bytes(b"not bz2")
    with pytest.raises(BenchmarkError, match="not a bz2 file"):
        read_nats_file(str(nats_dir / "000001.pickle.pbz2"))


def test_nb201_argument_errors(monkeypatch):
    with pytest.raises(BenchmarkError, match="source must be one of analog_nasbench, nats, got 'nb101'"):
        nb201("nb101")
    with pytest.raises(BenchmarkError, match="source 'nats' needs benchmark_dir"):
        nb201("nats")
    with pytest.raises(BenchmarkError, match="CIFAR-10 after 200 epochs only"):
        nb201(dataset="cifar100")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "analognasbench" else real(name, *a))
    with pytest.raises(BenchmarkNotInstalled, match=r'pip install "nas_tf\[benchmarks\]"'):
        nb201()


def test_benchmarks_import_no_tensorflow():
    code = "import sys, nas_tf.benchmarks; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------- analog-nasbench


class _Rec:
    pass


class _TestUnpickler(pickle.Unpickler):
    """The test's own reader of the package file (independent of nas_tf's)."""

    def find_class(self, module, name):
        assert module == "analognasbench.data" and name in ("Architecture", "DriftMeasurement"), (module, name)
        return _Rec


def _naslib_to_string(indices):
    """NASLib's rule (conversions.py): edges (u, v) of 1-based nodes, listed by target node."""
    ops = ["skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"]
    edges = [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]
    by_edge = dict(zip(edges, (ops[i] for i in indices)))
    items = [f"{by_edge[(u, v)]}~{u - 1}" for u, v in sorted(by_edge, key=lambda e: e[1])]
    return "|{}|+|{}|{}|+|{}|{}|{}|".format(*items)


@pytest.fixture(scope="module")
def analog():
    from nas_tf.benchmarks import analog_nasbench_path

    with open(analog_nasbench_path(), "rb") as f:
        raw = _TestUnpickler(f).load()
    return nb201(), raw


@needs_analog
def test_analog_table_matches_the_package_file(analog):
    table, raw = analog
    assert len(table) == len(raw) == 15625
    assert "analognasbench" not in sys.modules  # the package's code never ran
    for key, rec in raw.items():
        assert table.query(_naslib_to_string(key))["test_accuracy"] == rec.baseline_accuracy
    key = (2, 1, 0, 2, 1, 0)
    assert table.query(_naslib_to_string(key))["analog_accuracy"] == raw[key].analog_accuracy


def _output_reachable(arch):
    """Whether some path of non-zero edges leads from the cell input to its output (node 3)."""
    reach = {0}
    for j in (1, 2, 3):
        if any(i in reach and arch.op(j, i) != "none" for i in range(j)):
            reach.add(j)
    return 3 in reach


@needs_analog
def test_analog_edge_order_by_the_zero_cells(analog):
    table, _ = analog
    # A cell whose output no path of non-"none" edges reaches outputs zeros:
    # chance accuracy (10 %) exactly; every other cell learns something. Read
    # with the wrong edge order, many cells would break this rule.
    for tokens in itertools.product(range(5), repeat=6):
        arch = NB201Space().from_tokens(tokens)
        acc = table.query(arch)["test_accuracy"]
        assert (acc > 10.0) == _output_reachable(arch), (arch.cell, acc)


@needs_analog
def test_analog_table_against_published_records(analog):
    table, _ = analog
    # CIFAR-10 test accuracy after 200 epochs, mean of seeds 777/888/999, in
    # the NATS-Bench sample files (fake_torch_dir/NATS-tss-v1_0-3ffb9-simple,
    # archs 0, 11, 284). The package trained the cells again: close, not equal.
    published = {
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|": 85.863,
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|": 91.583,
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|": 88.790,
        # NAS-Bench-201 paper: the ResNet cell, 93.97.
        "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|": 93.97,
    }
    for cell, acc in published.items():
        assert abs(table.query(cell)["test_accuracy"] - acc) < 0.6, cell
    # The benchmark's optimum (94.37 in NAS-Bench-201) is among the package's five best cells.
    ranked = sorted(table.cells(), key=lambda c: -table.query(c)["test_accuracy"])
    best_published = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert best_published in ranked[:5]
    best, value = table.optimum()
    assert best.cell == ranked[0] and value == table.query(ranked[0])["test_accuracy"]
    assert 93.5 < value < 94.6


@needs_analog
def test_analog_table_errors(analog):
    table, _ = analog
    with pytest.raises(BenchmarkError, match="node 1, edge 1<-0: unknown op 'conv'"):
        table.query("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert table.describe()["version"] == "0.1.3"
    assert json.loads(json.dumps(table.describe()))["archs"] == 15625
