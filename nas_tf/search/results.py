"""A search run directory read back as an object: history, best archs, settings, model.

:func:`open_run` reads what a multi-trial search (NAS, NASNet) or a one-shot
search (ENAS) wrote into its ``--model_dir``, finished or still running, and
never writes there::

    from nas_tf.search.results import open_run

    run = open_run("runs/nas")
    run.summary()                  # the best architectures, like KerasTuner's results_summary()
    arch = run.best_archs(1)[0]    # a typed Arch
    rows = run.history             # one dict per child (or controller sample)
    model = run.load_model()       # final/model.keras, when the run retrained its winner

What each kind of directory holds:

* multi-trial: ``history.jsonl`` (one row per child: child, step, reward,
  status, val_accuracy, params, wall_time, arch, ...), ``best.json``,
  ``best_arch.json``, ``summary.json`` (once finished), ``search_config.json``;
* one-shot: ``history.jsonl`` (one row per controller sample: epoch, update,
  sample, reward, arch), ``epochs.jsonl``, ``derived.jsonl`` (the archs
  sampled at the end, scored on the same batches), ``best.json``,
  ``best_arch.json``, ``summary.json``, ``search_config.json``;
* both: ``flags.json`` (scripts), ``tensorboard/``, ``checkpoints/`` and
  ``final/`` (``metrics.json``, ``model.keras``) when the winner was retrained.

This module imports no TensorFlow; :meth:`SearchRun.load_model` imports Keras
when it is called.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from nas_tf.spaces.arch import Arch, arch_from_dict
from nas_tf.utils.io import read_jsonl

MULTI_TRIAL = "multi_trial"
ONE_SHOT = "one_shot"

#: The TensorBoard tag under which the search loops log the controller's moving baseline.
BASELINE_TAG = "controller/baseline"


class RunDirectoryError(ValueError):
    """The directory is not a search run (the message names it and what is missing)."""


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The controller's moving-average baseline, one value per controller update.

    Args:
        x: position of each value on the reward plot's x axis (the index of
            the last child / sample the update learned from).
        values: the baseline each update compared its rewards with.
        source: where the values come from (a sentence, for legends).
        recomputed: False when read from the run's files, True when
            recomputed from the rewards.
    """

    x: list[int]
    values: list[float]
    source: str
    recomputed: bool


@dataclasses.dataclass(frozen=True)
class Session:
    """One process that ran (part of) the search, as its TensorBoard events file shows it.

    Args:
        events_file: the file's name.
        host: host name (from the file name).
        pid: process id (from the file name).
        start: wall time of the file's first event (seconds since the epoch).
        end: wall time of its last event.
        first_step: the first step logged under the progress tag.
        last_step: the last step logged under the progress tag (children
            done for a multi-trial search, controller updates for one-shot).
        epochs: for one-shot searches, the shared-weights epochs it logged.
    """

    events_file: str
    host: str
    pid: int | None
    start: float
    end: float
    first_step: int | None
    last_step: int | None
    epochs: tuple[int, ...] = ()


def _read_json(path: str) -> Any:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise RunDirectoryError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}") from None


def _arch_key(arch: dict) -> str:
    return json.dumps(arch, sort_keys=True, separators=(",", ":"))


def read_events(path: str) -> Iterator[Any]:
    """The ``Event`` protos of a TensorBoard events file, without TensorFlow.

    Uses TensorBoard's own TF-free record reader (CRC-checked); a torn last
    record (a file still being written) ends the iteration.
    """
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub import errors
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

    reader = PyRecordReader_New(path)
    while True:
        try:
            reader.GetNext()
        except (errors.OutOfRangeError, errors.DataLossError):
            return
        yield event_pb2.Event.FromString(reader.record())


def _scalar(value) -> float | None:
    if value.HasField("tensor"):
        from tensorboard.util import tensor_util

        return float(np.asarray(tensor_util.make_ndarray(value.tensor)).reshape(-1)[0])
    if value.WhichOneof("value") == "simple_value":
        return float(value.simple_value)
    return None


_EVENTS_NAME = re.compile(r"events\.out\.tfevents\.(?P<time>\d+)\.(?P<host>.+)\.(?P<pid>\d+)\.(?P<n>\d+)(\.v2)?$")


class SearchRun:
    """A search run directory (multi-trial or one-shot), finished or running.

    Use :func:`open_run`. Every attribute is read when the object is made;
    call :meth:`reload` to read a running search again.

    Attributes:
        directory: the run directory (absolute).
        kind: ``"multi_trial"`` or ``"one_shot"``.
        settings: ``search_config.json`` (space, searcher, evaluator or task, loop).
        flags: ``flags.json`` (the script's resolved flags) or None.
        history: the rows of ``history.jsonl`` (a torn last line is skipped).
        epochs: one-shot: the rows of ``epochs.jsonl``.
        derived: one-shot: the rows of ``derived.jsonl``.
        best: ``best.json`` or None.
        finished: whether ``summary.json`` exists (the search ran to its end).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.path.abspath(os.fspath(directory))
        self.reload()

    def _path(self, *names: str) -> str:
        return os.path.join(self.directory, *names)

    def reload(self) -> SearchRun:
        """Reads the directory again (a running search has moved on)."""
        if not os.path.isdir(self.directory):
            raise RunDirectoryError(f"{self.directory}: no such run directory")
        settings = _read_json(self._path("search_config.json"))
        if settings is None:
            raise RunDirectoryError(
                f"{self.directory}: not a search run directory (no search_config.json; a search writes it when it starts)"
            )
        self.settings: dict = settings
        self.flags: dict | None = _read_json(self._path("flags.json"))
        self.history: list[dict] = read_jsonl(self._path("history.jsonl"), repair=False)
        self.epochs: list[dict] = read_jsonl(self._path("epochs.jsonl"), repair=False)
        self.derived: list[dict] = read_jsonl(self._path("derived.jsonl"), repair=False)
        self.best: dict | None = _read_json(self._path("best.json"))
        self.summary_file: dict | None = _read_json(self._path("summary.json"))
        one_shot = "task" in settings or os.path.exists(self._path("epochs.jsonl")) or (
            self.history and "update" in self.history[0] and "child" not in self.history[0]
        )
        self.kind: str = ONE_SHOT if one_shot else MULTI_TRIAL
        return self

    # -------------------------------------------------------------- settings

    @property
    def finished(self) -> bool:
        return self.summary_file is not None

    @property
    def space(self) -> dict:
        """The search space's settings (``{"name": ..., ...}``)."""
        return dict(self.settings.get("space", {}))

    @property
    def searcher(self) -> dict:
        """The search algorithm's settings (recorded as ``"searcher"``; older runs say ``"strategy"``)."""
        return dict(self.settings.get("searcher", self.settings.get("strategy", {})))

    @property
    def loop(self) -> dict:
        """The loop's settings (the ``"search"`` record: budget, steps, seeds)."""
        return dict(self.settings.get("search", {}))

    def describe(self) -> str:
        """One line: kind, space, searcher, progress."""
        kind = "multi-trial" if self.kind == MULTI_TRIAL else "one-shot (ENAS)"
        state = "finished" if self.finished else "running or interrupted"
        space, algorithm = self.space.get("name", "?"), self.searcher.get("algorithm", "?")
        return f"{kind} search of space {space} with {algorithm}: {self.progress()}, {state}"

    def progress(self) -> str:
        """How far the search got, in its own units."""
        if self.kind == MULTI_TRIAL:
            failed = sum(1 for r in self.history if r.get("status", "ok") != "ok")
            total = self.loop.get("num_architectures")
            steps = len({r.get("update", r.get("step")) for r in self.history})
            return f"{len(self.history)}/{total} children ({failed} failed), {steps} controller steps"
        updates = len({r["update"] for r in self.history})
        total = self.loop.get("num_epochs")
        return f"{len(self.epochs)}/{total} epochs, {updates} controller updates, {len(self.history)} sampled archs"

    # --------------------------------------------------------------- results

    def rewards(self) -> np.ndarray:
        """The reward of every child (multi-trial) or controller sample (one-shot), in order."""
        return np.asarray([float(r["reward"]) for r in self.history], dtype=np.float64)

    def running_best(self) -> np.ndarray:
        """The best reward so far after every child (failed children count with their reward, 0)."""
        rewards = self.rewards()
        return np.maximum.accumulate(rewards) if rewards.size else rewards

    def _candidates(self) -> tuple[list[dict], str]:
        if self.kind == ONE_SHOT and self.derived:
            return self.derived, "derived"
        rows = [r for r in self.history if r.get("status", "ok") == "ok"]
        return rows, "history"

    def top(self, k: int = 5) -> list[dict]:
        """The ``k`` best distinct architectures, best first, as rows.

        Multi-trial: the children (failed ones left out). One-shot: the archs
        derived at the end (all scored on the same validation batches) once
        there are any, else the controller's samples. An arch met several
        times appears once, with its best row and ``"times"``, how often it
        was met. Ties keep the earliest.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        rows, _ = self._candidates()
        best: dict[str, dict] = {}
        counts: dict[str, int] = {}
        for r in rows:
            key = _arch_key(r["arch"])
            counts[key] = counts.get(key, 0) + 1
            if key not in best or r["reward"] > best[key]["reward"]:
                best[key] = r
        ranked = sorted(best.items(), key=lambda kv: -kv[1]["reward"])  # stable: earliest first on ties
        return [dict(row, times=counts[key]) for key, row in ranked[:k]]

    def best_archs(self, k: int = 5) -> list[Arch]:
        """The ``k`` best distinct architectures as typed archs (see :meth:`top`)."""
        return [arch_from_dict(r["arch"]) for r in self.top(k)]

    def best_arch(self) -> Arch | None:
        """The arch of ``best_arch.json`` (what the search hands to final training), or None."""
        path = self._path("best_arch.json")
        if not os.path.exists(path):
            return None
        from nas_tf.spaces.arch import load_arch

        return load_arch(path)

    def summary(self, k: int = 5, print_fn: Callable[[str], Any] = print) -> None:
        """Prints the ``k`` best architectures and their numbers (as KerasTuner's ``results_summary()``)."""
        # The one-line arch form lives with the pictures (nas_tf.viz); imported here only to print.
        from nas_tf.spaces.short_form import arch_short_form

        rows = self.top(k) if self.history or self.derived else []
        _, source = self._candidates()
        print_fn("Results summary")
        print_fn(f"Results in {self.directory}")
        print_fn(self.describe())
        what = "derived architectures (scored on the same validation batches)" if source == "derived" else "architectures"
        print_fn(f"Showing {len(rows)} best {what}; reward: higher is better")
        for rank, row in enumerate(rows, start=1):
            print_fn("")
            where = (
                f"child {row['child']} (step {row['step']})" if "child" in row
                else f"epoch {row['epoch']}, update {row['update']}" if "update" in row
                else "derived"
            )
            print_fn(f"#{rank}: {where}" + (f", met {row['times']} times" if row["times"] > 1 else ""))
            numbers = [f"reward {row['reward']:.6g}"]
            for key in ("val_accuracy", "val_perplexity", "params", "wall_time"):
                value = row.get(key, (row.get("metrics") or {}).get(key))
                if value is not None:
                    numbers.append(f"{key} {value:.6g}" if isinstance(value, float) else f"{key} {value}")
            print_fn("  " + "  ".join(numbers))
            print_fn("  arch: " + arch_short_form(row["arch"]))
        final = self.final_metrics()
        if final is not None:
            print_fn("")
            print_fn("Retrained (final/): " + ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}"
                                                      for k, v in final_numbers(final).items()))

    # ----------------------------------------------------------------- final

    @property
    def final_dir(self) -> str:
        return self._path("final")

    def final_metrics(self) -> dict | None:
        """``final/metrics.json`` (test and validation metrics of the retrained winner), or None."""
        return _read_json(os.path.join(self.final_dir, "metrics.json"))

    def load_model(self):
        """The retrained model, ``final/model.keras`` (imports Keras and nas_tf's layers now)."""
        path = os.path.join(self.final_dir, "model.keras")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no retrained model (the search ran without final training, or it is not done)")
        import keras

        import nas_tf.layers  # noqa: F401  (registers nas_tf's layers for deserialisation)
        import nas_tf.models  # noqa: F401

        return keras.saving.load_model(path)

    def export(self, format: str = "saved_model", output: str | None = None, *, quantize: bool = False,
               data_dir: str | None = None, check: bool = True):
        """Exports the retrained winner, ``final/`` (see :func:`nas_tf.export.export_from_dir`).

        Args:
            format: ``"saved_model"``, ``"keras"`` or ``"tflite"``.
            output: the destination (default: ``final/export/<saved_model|model.keras|model.tflite>``).
            quantize: TFLite with dynamic-range int8 weights.
            data_dir: where the dataset lives (for the check batch and the vocabulary).
            check: load the export back and compare it with the Keras model.

        Returns:
            The :class:`nas_tf.export.ExportReport` (path, size, largest difference, latency).

        Example:

        >>> open_run("runs/enas").export("tflite").path  # doctest: +SKIP
        'runs/enas/final/export/model.tflite'
        """
        if not os.path.exists(os.path.join(self.final_dir, "metrics.json")):
            raise FileNotFoundError(f"{self.final_dir}: no retrained model to export (the search ran without "
                                    "final training, or it is not done)")
        from nas_tf.export import export_from_dir

        return export_from_dir(self.final_dir, output, format, quantize=quantize, data_dir=data_dir, check=check)

    # ------------------------------------------------------ baseline, resume

    def _update_groups(self) -> list[tuple[int, list[float]]]:
        """(x of the last row of the update, rewards of the update) for every controller update, in order."""
        key = "update" if (self.kind == ONE_SHOT or any("update" in r for r in self.history)) else "step"
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(self.history):
            groups.setdefault(int(r[key]), []).append(i)
        return [(max(ix), [float(self.history[i]["reward"]) for i in ix]) for _, ix in sorted(groups.items())]

    def _x_of_step(self, step: int, groups: list[tuple[int, list[float]]]) -> int | None:
        """The x position (row of the history) of the update that a TensorBoard step belongs to."""
        if self.kind == MULTI_TRIAL:
            # Multi-trial loops log at step = children done after the update.
            return step - 1 if 0 < step <= len(self.history) else None
        # One-shot loops log at step = controller updates done.
        return groups[step - 1][0] if 0 < step <= len(groups) else None

    def baseline(self) -> Baseline | None:
        """The controller's moving-average baseline per update, or None (e.g. random search).

        Read from the run's TensorBoard events (``controller/baseline``) when
        they hold it; otherwise recomputed from the rewards in the history
        with the ``baseline_decay`` and ``baseline_update`` recorded in
        ``search_config.json``, as the controller computes it (the first
        update's baseline is its mean reward). The recomputation cannot add
        an entropy bonus that ``entropy_mode="reward"`` adds to the rewards.
        """
        scalars = self.tensorboard_scalars(BASELINE_TAG)
        if scalars:
            groups = self._update_groups()
            points = [(self._x_of_step(s, groups), v) for s, v in scalars]
            points = [(x, v) for x, v in points if x is not None]
            if points:
                return Baseline([x for x, _ in points], [v for _, v in points],
                                f"TensorBoard {BASELINE_TAG}", recomputed=False)
        decay = self.searcher.get("baseline_decay")
        if decay is None or not self.history:
            return None
        before = self.searcher.get("baseline_update", "after") == "before"
        per_arch = self.searcher.get("baseline_mode", "per_batch") == "per_arch"  # runs before it moved per batch
        xs, values, b = [], [], None
        for x, rewards in self._update_groups():
            rewards = np.asarray(rewards, dtype=np.float32)
            if per_arch:  # b_k = decay * b_{k-1} + (1 - decay) * R_k in sampling order; the metric is their mean
                used = []
                b = float(rewards[0]) if b is None else b
                for r in rewards:
                    new_b = decay * b + (1.0 - decay) * float(r)
                    used.append(new_b if before else b)
                    b = new_b
                values.append(float(np.mean(used)))
            else:
                mean = float(np.mean(rewards))
                b = mean if b is None else b
                new_b = decay * b + (1.0 - decay) * mean
                values.append(new_b if before else b)
                b = new_b
            xs.append(x)
        note = f"recomputed: moving average of the rewards, decay {decay:g}"
        if self.searcher.get("entropy_mode") == "reward" and self.searcher.get("entropy_weight"):
            note += ", without the entropy bonus"
        return Baseline(xs, values, note + " (not in the run's files)", recomputed=True)

    def _events_files(self) -> list[str]:
        directory = self._path("tensorboard")
        if not os.path.isdir(directory):
            return []
        return sorted(
            os.path.join(directory, f) for f in os.listdir(directory)
            if f.startswith("events.out.tfevents") and os.path.isfile(os.path.join(directory, f))
        )

    def tensorboard_scalars(self, tag: str) -> list[tuple[int, float]]:
        """``(step, value)`` of the scalar ``tag`` in the run's ``tensorboard/`` events (the top level), by step.

        A step logged twice (an update redone after a restart) keeps the last value written.
        """
        values: dict[int, tuple[float, float]] = {}
        for path in self._events_files():
            for event in read_events(path):
                for v in event.summary.value:
                    if v.tag == tag:
                        value = _scalar(v)
                        if value is not None and (event.step not in values or event.wall_time >= values[event.step][0]):
                            values[event.step] = (event.wall_time, value)
        return [(s, v) for s, (_, v) in sorted(values.items())]

    def sessions(self) -> list[Session]:
        """Every process that ran the search, in order: one TensorBoard events file each.

        A search process opens one events file when it logs its first step,
        so a run resumed twice has three. A process that crashed before
        logging a step left no file.
        """
        progress = "reward/best_so_far" if self.kind == MULTI_TRIAL else "controller/reward"
        out = []
        for path in self._events_files():
            times, steps, epochs = [], [], set()
            for event in read_events(path):
                times.append(event.wall_time)
                for v in event.summary.value:
                    if v.tag in (progress, BASELINE_TAG):
                        steps.append(int(event.step))
                    elif v.tag.startswith("shared/"):
                        epochs.add(int(event.step))
            if not times:
                continue
            m = _EVENTS_NAME.search(os.path.basename(path))
            out.append(
                Session(
                    events_file=os.path.basename(path),
                    host=m.group("host") if m else "?",
                    pid=int(m.group("pid")) if m else None,
                    start=min(times),
                    end=max(times),
                    first_step=min(steps) if steps else None,
                    last_step=max(steps) if steps else None,
                    epochs=tuple(sorted(epochs)),
                )
            )
        return sorted(out, key=lambda s: s.start)

    def checkpoints(self) -> list[tuple[str, float]]:
        """``(checkpoint name, wall time)`` of the checkpoints kept in ``checkpoints/`` (from its index file)."""
        path = self._path("checkpoints", "checkpoint")
        if not os.path.exists(path):
            return []
        names, stamps = [], []
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "all_model_checkpoint_paths":
                    names.append(os.path.basename(value.strip().strip('"')))
                elif key.strip() == "all_model_checkpoint_timestamps":
                    stamps.append(float(value))
        return list(zip(names, stamps))


def final_numbers(metrics: dict) -> dict[str, Any]:
    """The headline numbers of a ``final/metrics.json``, in a fixed order."""
    keys = ("test_accuracy", "test_loss", "test_perplexity", "val_accuracy", "val_perplexity", "params",
            "epochs_done", "wall_time", "dataset")
    return {k: metrics[k] for k in keys if metrics.get(k) is not None}


def open_run(directory: str | os.PathLike) -> SearchRun:
    """Opens a search run directory (finished or running) for reading.

    Args:
        directory: the search's ``--model_dir``.

    Returns:
        A :class:`SearchRun`.

    Raises:
        RunDirectoryError: no such directory, or not a search run.

    Example:

    >>> run = open_run("runs/nas")  # doctest: +SKIP
    >>> run.summary(k=3)  # doctest: +SKIP
    """
    return SearchRun(directory)
