"""Tabular benchmarks: the recorded metrics of every arch of a space (no training).

``nas_tf.benchmarks.nb201()`` returns the NAS-Bench-201 table;
``table.query(arch)["test_accuracy"]`` is the recorded CIFAR-10 test accuracy
in percent. This subpackage imports no TensorFlow.
"""

from nas_tf.benchmarks.base import BenchmarkError, BenchmarkNotInstalled, TabularBenchmark, reward_for
from nas_tf.benchmarks.nb201 import NB201Table, analog_nasbench_path, cell_from_naslib, nb201, read_nats_file
from nas_tf.benchmarks.search import TokenLookup, best_so_far, run_on_table, summarize
from nas_tf.benchmarks.unpickle import Record, RestrictedUnpickler, restricted_loads

__all__ = [
    "BenchmarkError",
    "BenchmarkNotInstalled",
    "NB201Table",
    "Record",
    "RestrictedUnpickler",
    "TabularBenchmark",
    "TokenLookup",
    "analog_nasbench_path",
    "best_so_far",
    "cell_from_naslib",
    "nb201",
    "read_nats_file",
    "restricted_loads",
    "reward_for",
    "run_on_table",
    "summarize",
]
