"""NAS-Bench-201 as a table: the recorded metrics of all 15,625 cells.

Two sources, both read without running anyone else's code:

* ``source="analog_nasbench"``: the data file of the ``analog-nasbench``
  package (PyPI, 0.1.3; ``pip install "nas_tf[benchmarks]"``): every cell
  trained 200 epochs on CIFAR-10, ``baseline_accuracy`` the test accuracy in
  percent (plus the accuracies of the package's quantised and analog-hardware
  variants). Its records are keyed by NASLib op indices (0 skip, 1 none,
  2 conv 3x3, 3 conv 1x1, 4 avg pool) in NASLib's edge order (1-based nodes
  ``(1,2), (1,3), (1,4), (2,3), (2,4), (3,4)``, i.e. our ``1<-0, 2<-0, 3<-0,
  2<-1, 3<-1, 3<-2``), converted here to the benchmark's cell string. The
  package is located with ``importlib.util.find_spec`` and its data file read
  through the loader's resource reader (``importlib.resources.files`` would
  import, i.e. run, the package); the pickle is read by a restricted
  unpickler that admits only its two record classes.
* ``benchmark_dir=DIR``: the official NATS-Bench topology files a user has
  (``NATS-tss-v1_0-3ffb9-simple``: ``meta.pickle.pbz2`` listing the cells and
  one bz2-compressed pickle per cell, ``000000.pickle.pbz2`` ...), read
  lazily (one file per queried cell) without PyTorch or the ``nats_bench``
  package. A cell's metrics are the means over the recorded seeds at the last
  epoch of the chosen schedule (200 or 12 epochs).

Example:

>>> table = nb201()  # doctest: +SKIP
>>> resnet = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
>>> table.query(resnet)["test_accuracy"]  # doctest: +SKIP
93.4416
"""

from __future__ import annotations

import bz2
import collections
import functools
import importlib.metadata
import importlib.util
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from nas_tf.benchmarks.base import BenchmarkError, BenchmarkNotInstalled, TabularBenchmark
from nas_tf.benchmarks.unpickle import Record, restricted_loads
from nas_tf.spaces.arch import Arch, ArchError, load_arch
from nas_tf.spaces.nb201 import EDGES, NB201Arch, NB201Space, format_cell, parse_cell

SOURCES = ("analog_nasbench", "nats")

# ------------------------------------------------------------------ the table


def _cell_of(arch: Any, source: str) -> str:
    """The canonical cell string of an arch, its JSON, its dict or the cell string itself."""
    if isinstance(arch, str) and arch.lstrip().startswith("|"):
        try:
            return format_cell(parse_cell(arch.strip()))
        except ArchError as e:
            raise BenchmarkError(f"{source}: {e}") from None
    if not isinstance(arch, Arch):
        try:
            arch = load_arch(arch)
        except (ArchError, TypeError) as e:
            raise BenchmarkError(f"{source}: cannot read the arch {arch!r}: {e}") from None
    if not isinstance(arch, NB201Arch):
        raise BenchmarkError(f"{source}: holds nb201 cells only, got an arch of space {arch.space!r}")
    return arch.cell


class NB201Table(TabularBenchmark):
    """The NAS-Bench-201 table of one source.

    Args:
        records: ``{cell string: {metric: value}}`` (may load lazily).
        source: where the records come from, for messages.
        info: more about the source (version, dataset, epochs), for
            :meth:`describe`.

    Example:

    >>> table = NB201Table({"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": {"test_accuracy": 10.0}}, "hand")
    >>> table.query(NB201Arch(("none",) * 6))
    {'test_accuracy': 10.0}
    """

    space = NB201Space()

    def __init__(self, records: Mapping[str, Mapping[str, Any]], source: str, info: Mapping[str, Any] | None = None):
        self.records = records
        self.source = source
        self.info = dict(info or {})

    def query(self, arch: Arch | str | dict) -> dict[str, Any]:
        cell = _cell_of(arch, self.source)
        try:
            return dict(self.records[cell])
        except KeyError:
            raise BenchmarkError(f"{self.source}: cell {cell} is not in the table ({len(self)} cells)") from None

    def cells(self) -> list[str]:
        """The cell strings of the table, in its order."""
        return list(self.records)

    def __iter__(self) -> Iterator[NB201Arch]:
        return (NB201Arch.from_string(c) for c in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.info}


def nb201(
    source: str = "analog_nasbench",
    *,
    benchmark_dir: str | os.PathLike | None = None,
    dataset: str = "cifar10",
    epochs: int = 200,
) -> NB201Table:
    """The NAS-Bench-201 table.

    Args:
        source: ``"analog_nasbench"`` (the PyPI package's data) or ``"nats"``
            (official NATS-Bench files; implied by ``benchmark_dir``).
        benchmark_dir: the ``NATS-tss-v1_0-3ffb9-simple`` directory.
        dataset: NATS only: ``"cifar10"``, ``"cifar100"`` or
            ``"ImageNet16-120"`` (analog-nasbench has CIFAR-10 alone).
        epochs: NATS only: the training schedule, 200 or 12.

    Returns:
        The table; ``table.query(arch)["test_accuracy"]`` is in percent.

    Raises:
        BenchmarkNotInstalled: the package or directory is missing.
        BenchmarkError: a bad argument or an unreadable file (named).
    """
    if benchmark_dir is not None:
        if source not in ("nats", "analog_nasbench"):
            raise BenchmarkError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        return NB201Table(
            _NatsRecords(os.fspath(benchmark_dir), dataset, epochs),
            os.fspath(benchmark_dir),
            {"source_kind": "nats", "dataset": dataset, "epochs": epochs},
        )
    if source == "nats":
        raise BenchmarkError("source 'nats' needs benchmark_dir (the NATS-tss-v1_0-3ffb9-simple directory)")
    if source != "analog_nasbench":
        raise BenchmarkError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if dataset != "cifar10" or epochs != 200:
        raise BenchmarkError(
            f"analog_nasbench records CIFAR-10 after 200 epochs only, got dataset={dataset!r} epochs={epochs}"
        )
    path = analog_nasbench_path()
    stat = os.stat(path)
    records = _read_analog_nasbench(path, stat.st_mtime_ns, stat.st_size)
    return NB201Table(
        records,
        f"analog-nasbench ({path})",
        {"source_kind": "analog_nasbench", "version": _version("analog-nasbench"), "dataset": "cifar10", "epochs": 200},
    )


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------ analog-nasbench

# NASLib's op order, and for every edge of the cell string (EDGES order) the
# position of that edge in NASLib's op-index tuple.
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
_NASLIB_EDGES = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))
NASLIB_POSITION = tuple(_NASLIB_EDGES.index(e) for e in EDGES)  # (0, 1, 3, 2, 4, 5)


def cell_from_naslib(indices: Sequence[int]) -> str:
    """The cell string of NASLib op indices (NASLib's op and edge order).

    Example:

    >>> cell_from_naslib((2, 1, 0, 2, 1, 0))  # NAS-Bench-201's ResNet cell
    '|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|'
    """
    return format_cell(tuple(NASLIB_OPS[indices[p]] for p in NASLIB_POSITION))


class _AnalogArchitecture(Record):
    """Stands in for ``analognasbench.data.Architecture``."""


class _AnalogDrift(Record):
    """Stands in for ``analognasbench.data.DriftMeasurement``."""


_ANALOG_ADMITTED = {
    ("analognasbench.data", "Architecture"): _AnalogArchitecture,
    ("analognasbench.data", "DriftMeasurement"): _AnalogDrift,
}
_ANALOG_ACCURACIES = ("ptq_accuracy", "qat_accuracy", "noisy_accuracy", "analog_accuracy")
_ANALOG_DRIFTS = tuple(f"{k}_drift_{t}" for k in ("baseline", "analog") for t in (60, 3600, 86400, 2592000))


def analog_nasbench_path() -> str:
    """The path of the installed analog-nasbench data file (the package is not imported).

    Raises:
        BenchmarkNotInstalled: the package is not installed.
    """
    spec = importlib.util.find_spec("analognasbench")
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkNotInstalled(
            "the analog_nasbench source needs the analog-nasbench package (0.1.3): "
            'pip install "nas_tf[benchmarks]" (or pip install analog-nasbench==0.1.3)'
        )
    reader = spec.loader.get_resource_reader(spec.name) if hasattr(spec.loader, "get_resource_reader") else None
    root = reader.files() if reader is not None else None
    if root is not None:
        path = os.fspath(root / "data.anb")
    else:
        path = os.path.join(spec.submodule_search_locations[0], "data.anb")
    if not os.path.isfile(path):
        raise BenchmarkNotInstalled(f"analog-nasbench is installed but has no data file {path}")
    return path


@functools.lru_cache(maxsize=2)
def _read_analog_nasbench(path: str, mtime_ns: int, size: int) -> Mapping[str, Mapping[str, Any]]:
    """``{cell: metrics}`` of the data file (cached per file version)."""
    with open(path, "rb") as f:
        data = restricted_loads(f.read(), _ANALOG_ADMITTED, path)
    if not isinstance(data, dict):
        raise BenchmarkError(f"{path}: expected a dict of architectures, got {type(data).__name__}")
    records: dict[str, Mapping[str, Any]] = {}
    for key, rec in data.items():
        if (
            not isinstance(key, tuple)
            or len(key) != 6
            or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(NASLIB_OPS) for i in key)
        ):
            raise BenchmarkError(f"{path}: key {key!r} is not six NASLib op indices in [0, {len(NASLIB_OPS)})")
        if not isinstance(rec, _AnalogArchitecture):
            raise BenchmarkError(f"{path}: the record of {key} is a {type(rec).__name__}, not an Architecture")
        fields = vars(rec)
        if tuple(fields.get("architecture", ())) != key:
            raise BenchmarkError(f"{path}: the record of {key} names architecture {fields.get('architecture')!r}")
        metrics = {"test_accuracy": _percent(path, key, "baseline_accuracy", fields.get("baseline_accuracy"))}
        for name in _ANALOG_ACCURACIES:
            metrics[name] = _percent(path, key, name, fields.get(name))
        for name in _ANALOG_DRIFTS:
            drift = fields.get(name)
            if isinstance(drift, _AnalogDrift) and isinstance(vars(drift).get("value"), (int, float)):
                metrics[name] = float(drift.value)
        records[cell_from_naslib(key)] = metrics
    if len(records) != 15625:
        raise BenchmarkError(f"{path}: expected the 15625 NAS-Bench-201 cells, got {len(records)}")
    return records


def _percent(path: str, key: Any, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 100.0:
        raise BenchmarkError(f"{path}: architecture {key}: {name} must be a percentage, got {value!r}")
    return float(value)


# ------------------------------------------------------------------ NATS-Bench

NATS_EXT = ".pickle.pbz2"
NATS_DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
# dataset -> ((training run, eval set) of test, of validation)
_NATS_SETS = {
    "cifar10": (("cifar10", "ori-test"), ("cifar10-valid", "x-valid")),
    "cifar100": (("cifar100", "x-test"), ("cifar100", "x-valid")),
    "ImageNet16-120": (("ImageNet16-120", "x-test"), ("ImageNet16-120", "x-valid")),
}
_NUMERIC_DTYPES = frozenset(np.dtype(c).str for c in "?bBhHiIlLqQefd") | frozenset(
    np.dtype(c).newbyteorder(">").str for c in "hHiIlLqQefd"
)


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype`` for the numeric dtypes of pickled numpy scalars only."""
    try:
        dtype = np.dtype(spec) if isinstance(spec, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.str not in _NUMERIC_DTYPES:
        raise BenchmarkError(f"refused numpy dtype {spec!r} (numbers only)")
    return dtype


def _numpy_scalar(dtype: Any, data: Any = b"") -> float | int | bool:
    """A pickled numpy scalar, as the Python number (numeric dtypes only)."""
    if not isinstance(dtype, np.dtype) or dtype.str not in _NUMERIC_DTYPES:
        raise BenchmarkError(f"refused a numpy scalar of dtype {dtype!r} (numbers only)")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise BenchmarkError(f"refused a numpy scalar with {type(data).__name__} data")
    return np.frombuffer(data, dtype=dtype)[0].item()


_NATS_ADMITTED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}


def read_nats_file(path: str) -> Any:
    """Decompresses and unpickles one NATS-Bench file with the restricted unpickler."""
    try:
        with open(path, "rb") as f:
            data = bz2.decompress(f.read())
    except FileNotFoundError:
        raise BenchmarkNotInstalled(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise BenchmarkError(f"{path}: not a bz2 file ({e})") from None
    return restricted_loads(data, _NATS_ADMITTED, path)


def _get(mapping: Any, key: Any, where: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise BenchmarkError(f"{where}: expected a dict, got {type(mapping).__name__}")
    if key not in mapping:
        raise BenchmarkError(f"{where}: no {key!r} (has: {', '.join(map(str, mapping))})")
    return mapping[key]


def _final(result: Any, eval_set: str, where: str) -> float:
    """The metric of one trial after its last epoch."""
    epochs = _get(result, "epochs", where)
    if eval_set == "train":
        return float(_get(_get(result, "train_acc1es", where), epochs - 1, where + ".train_acc1es"))
    return float(_get(_get(result, "eval_acc1es", where), f"{eval_set}@{epochs - 1}", where + ".eval_acc1es"))


class _NatsRecords(Mapping):
    """``{cell: metrics}`` of a NATS-Bench topology directory, one file read per cell on first use."""

    def __init__(self, directory: str, dataset: str, epochs: int):
        if dataset not in NATS_DATASETS:
            raise BenchmarkError(f"dataset must be one of {', '.join(NATS_DATASETS)}, got {dataset!r}")
        if isinstance(epochs, bool) or epochs not in (12, 200):
            raise BenchmarkError(f"epochs must be 200 or 12 (the NATS-Bench topology schedules), got {epochs!r}")
        if not os.path.isdir(directory):
            raise BenchmarkNotInstalled(f"{directory}: no such directory (expected NATS-tss-v1_0-3ffb9-simple)")
        self.directory, self.dataset, self.epochs = directory, dataset, epochs
        meta_path = os.path.join(directory, "meta" + NATS_EXT)
        meta = read_nats_file(meta_path)
        archs = _get(meta, "meta_archs", meta_path)
        if not isinstance(archs, list):
            raise BenchmarkError(f"{meta_path}: meta_archs must be a list of cell strings")
        self._index: dict[str, int] = {}
        for i, cell in enumerate(archs):
            try:
                self._index[format_cell(parse_cell(cell))] = i
            except ArchError as e:
                raise BenchmarkError(f"{meta_path}: meta_archs[{i}]: {e}") from None
        self._cache: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __contains__(self, cell: object) -> bool:
        return cell in self._index

    def __getitem__(self, cell: str) -> dict[str, Any]:
        if cell not in self._cache:
            self._cache[cell] = self._load(cell, self._index[cell])
        return self._cache[cell]

    def path(self, index: int) -> str:
        path = os.path.join(self.directory, f"{index:06d}{NATS_EXT}")
        if not os.path.exists(path) and os.path.exists(os.path.join(self.directory, f"{index}{NATS_EXT}")):
            path = os.path.join(self.directory, f"{index}{NATS_EXT}")
        return path

    def _load(self, cell: str, index: int) -> dict[str, Any]:
        path = self.path(index)
        data = read_nats_file(path)
        info = _get(data, str(self.epochs), path)
        where = f"{path}[{self.epochs!r}]"
        arch_str = _get(info, "arch_str", where)
        if not isinstance(arch_str, str) or format_cell(parse_cell(arch_str)) != cell:
            raise BenchmarkError(f"{where}: records cell {arch_str!r}, the meta file says {cell}")
        results = _get(info, "all_results", where)
        seeds = _get(info, "dataset_seed", where)
        (test_run, test_set), (valid_run, valid_set) = _NATS_SETS[self.dataset]

        def mean(run: str, eval_set: str) -> float:
            run_seeds = _get(seeds, run, f"{where}.dataset_seed")
            trials = [_get(results, (run, s), f"{where}.all_results") for s in run_seeds]
            if not trials:
                raise BenchmarkError(f"{where}: no trial of {run}")
            return float(np.mean([_final(t, eval_set, f"{where}.all_results[{run!r}]") for t in trials]))

        first = _get(results, (test_run, _get(seeds, test_run, f"{where}.dataset_seed")[0]), f"{where}.all_results")
        return {
            "test_accuracy": mean(test_run, test_set),
            "valid_accuracy": mean(valid_run, valid_set),
            "train_accuracy": mean(test_run, "train"),
            "params": int(round(float(_get(first, "params", where)) * 1e6)),
            "flops": float(_get(first, "flop", where)) * 1e6,
        }
