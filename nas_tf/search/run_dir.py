"""The run directory of a search: one place for what both search loops do with files.

A search loop (multi-trial or one-shot) keeps its results in ``model_dir``:
JSON-lines logs (``history.jsonl``, ...), JSON result files (``best.json``,
``summary.json``, ...), ``search_config.json`` (the settings, checked on
resume) and ``tensorboard/``. :class:`RunDirectory` does, for both loops:

* the **record check**: a directory that holds a search with other settings
  is refused with the list of differences (:class:`ResumeMismatchError`),
  except settings that may change on resume; under a multi-worker strategy
  every host must run the same settings;
* the **restore and trim** of a JSON-lines log: rows the last checkpoint does
  not account for are dropped, and the file is rewritten without them;
* **chief-only writes**: under a multi-worker strategy every worker runs the
  loop but only the chief writes files (every write here is atomic, or an
  fsync'ed append of whole lines);
* the **TensorBoard writer** (chief only);
* the **lock** (:meth:`RunDirectory.hold`): one process at a time writes the
  directory (the chief of a cluster holds it for every worker), and
  temporaries a killed write left are removed;
* **damage** is recovered or refused with one line saying what is damaged and
  what to do (:class:`~nas_tf.utils.io.RunDirError`): a newest checkpoint
  that cannot be read gives way to the one before it
  (:meth:`RunDirectory.restore_checkpoint`); a damaged ``search_config.json``,
  pending-step file or log line is named with its line; a log that lacks
  rows the checkpoint counts is refused (:func:`missing_rows`), never
  silently restarted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from nas_tf.distribute.cluster import WorkerInfo, all_gather_json, barrier
from nas_tf.search.evaluator import Evaluator
from nas_tf.utils.io import (
    RunDirError,
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    hold_run_dir,
    read_json_file,
    read_jsonl,
    remove_stale_temporaries,
)

log = logging.getLogger("nas_tf.search")

CONFIG = "search_config.json"


class ResumeMismatchError(ValueError):
    """The run directory holds a search with different settings."""


def ranges_text(numbers: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    out, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            out.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(out[:6]) + (", ..." if len(out) > 6 else "")


def missing_rows(path: str, what: str, missing: list[int], expected: int, checkpoint: str | None) -> RunDirError:
    """The error of a log that lacks rows a checkpoint counts (it was deleted, cut or damaged)."""
    state = "is missing" if not os.path.exists(path) else f"lacks {what} {ranges_text(missing)}"
    where = f"checkpoint {os.path.basename(checkpoint)}" if checkpoint else "the checkpoint"
    return RunDirError(
        f"{path} {state}, but {where} counts {expected} {what}: resuming would forget them; put the file back "
        "(e.g. from a backup), or start a new search in another directory"
    )


def record_diff(old: Any, new: Any, path: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    """The leaves where two JSON-able records differ: ``[(path, old value, new value)]``.

    Example:

    >>> record_diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}})
    [(('b', 'c'), 2, 3)]
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += record_diff(old.get(k), new.get(k), path + (k,))
        return out
    return [] if old == new else [(path, old, new)]


def _lines(changes: list[tuple], first: str, second: str) -> str:
    return "\n".join(f"  {'.'.join(map(str, p))}: {first} {o!r}, {second} {n!r}" for p, o, n in changes[:10])


class RunDirectory:
    """The files of one search run, written by the chief only.

    Args:
        model_dir: the run directory.
        worker: this process's role (:func:`nas_tf.distribute.worker_info`).
        cluster: the multi-worker ``tf.distribute`` strategy (None: one host);
            its collectives make the workers agree.
    """

    def __init__(self, model_dir: str, worker: WorkerInfo, cluster=None):
        self.model_dir = os.path.abspath(model_dir)
        self.worker = worker
        self.cluster = cluster
        self._writer = None
        self.fell_back = False  # the last restore passed over a damaged newest checkpoint

    @property
    def is_chief(self) -> bool:
        return self.worker.is_chief

    def path(self, name: str) -> str:
        """The absolute path of ``name`` in the run directory."""
        return os.path.join(self.model_dir, name)

    def exists(self, name: str) -> bool:
        return os.path.exists(self.path(name))

    def barrier(self) -> None:
        """Every worker waits for every other (nothing on one host)."""
        barrier(self.cluster)

    # ------------------------------------------------------------ settings

    def check_workers_agree(self, record: dict, execution: Iterable[str] = ()) -> None:
        """Every host of a cluster must run the same search (``execution`` sections may differ).

        Raises:
            ResumeMismatchError: a worker runs other settings than the chief
                (every worker raises it, naming the fields).
        """
        if self.worker.count == 1:
            return
        skip = set(execution)
        mine = json.dumps({k: v for k, v in record.items() if k not in skip}, sort_keys=True)
        records = all_gather_json(self.cluster, mine)
        others = [w for w, r in enumerate(records) if r != records[0]]
        if others:
            changes = record_diff(json.loads(records[0]), json.loads(records[others[0]]))
            raise ResumeMismatchError(
                f"worker(s) {others} were started with other settings than the chief; run the same command on "
                "every host:\n" + _lines(changes, "chief", f"worker {others[0]}")
            )

    def check_record(
        self, record: dict, resumable: Iterable[tuple[str, ...]] = (), execution: Iterable[str] = (),
        write: bool = True,
    ) -> None:
        """Refuses a directory that holds a search with other settings; then the chief writes ``record``.

        Every worker reads the old record and refuses a mismatch alike before
        the chief writes the new one. With ``write=False`` the caller writes
        it (:meth:`write_record`) once the rest of the directory proved sound,
        so that a refused resume leaves every file as it was.

        Args:
            record: the JSON-able settings of this run.
            resumable: paths (tuples of keys) of settings that may change on
                resume (e.g. ``("search", "num_architectures")``).
            execution: top-level sections that say how the search runs, not
                what it computes (workers, devices): they may change.

        Raises:
            ResumeMismatchError: the directory holds other settings.
        """
        resumable, execution = {tuple(p) for p in resumable}, set(execution)
        record = json.loads(json.dumps(record))  # as it reads back (tuples become lists)
        path = self.path(CONFIG)
        old = read_json_file(
            path, expect=dict,
            advice="it records the settings of the search there: put it back, or delete it to resume with this "
            "command's settings",
        )
        if old is not None:
            changes = [
                (p, o, n)
                for p, o, n in record_diff(old, record)
                if tuple(p) not in resumable and not (p and p[0] in execution)
            ]
            if changes:
                raise ResumeMismatchError(
                    f"{self.model_dir} holds a search with other settings; resume it with the same "
                    "flags, or use another --model_dir:\n" + _lines(changes, "was", "now")
                )
        self.barrier()
        if write:
            self.write_record(record)

    def write_record(self, record: dict) -> None:
        """Writes the search's settings (``search_config.json``; the chief)."""
        self.write_json(CONFIG, record)

    # ------------------------------------------------------------- logs

    def restore_rows(
        self,
        name: str,
        keep: Callable[[dict], bool] = lambda row: True,
        key: Callable[[dict], Any] | None = None,
        require: dict[str, type | tuple] | None = None,
    ) -> list[dict]:
        """The rows of a JSON-lines log that the last checkpoint accounts for.

        A torn last line (a crash during an append) is dropped. Rows for
        which ``keep`` is false are dropped, and with ``key`` only the first
        row of each key is kept; if any row was dropped the chief rewrites the
        file without it.

        Args:
            name: the log's file name.
            keep: which rows to keep.
            key: rows with equal keys are repeats (the first is kept).
            require: ``{field: type}`` every row must have.

        Returns:
            The kept rows, in file order.

        Raises:
            RunDirError: a line is not UTF-8, not JSON or lacks a field (the
                message names the line).
        """
        rows = self.read_rows(name, require, repair=self.is_chief)
        kept, seen = [], set()
        for row in rows:
            if not keep(row):
                continue
            if key is not None:
                k = key(row)
                if k in seen:
                    continue
                seen.add(k)
            kept.append(row)
        if len(kept) != len(rows) and self.is_chief:
            log.warning("%s: dropping %d rows written after the last checkpoint", name, len(rows) - len(kept))
            self.write_text(name, "".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def read_rows(self, name: str, require: dict[str, type | tuple] | None = None, repair: bool = False) -> list[dict]:
        """The rows of a JSON-lines log (a torn last line left out; ``repair``: the chief removes it).

        Raises:
            RunDirError: a line is not UTF-8, not JSON or lacks a field (the
                message names the line and what to do).
        """
        try:
            return read_jsonl(self.path(name), repair=repair and self.is_chief, require=require)
        except RunDirError as e:
            raise RunDirError(
                f"{e}; repair or delete that line (a row no checkpoint counts yet is made again), or start a new "
                "search in another directory"
            ) from None

    def append(self, name: str, rows: list[dict]) -> None:
        """Appends whole lines to a JSON-lines log (the chief)."""
        if self.is_chief:
            append_jsonl(self.path(name), rows)

    # ------------------------------------------------------------ files

    def write_json(self, name: str, obj: Any) -> None:
        """Writes a JSON file atomically (the chief)."""
        if self.is_chief:
            atomic_write_json(self.path(name), obj)

    def write_text(self, name: str, text: str) -> None:
        """Writes a text file atomically (the chief)."""
        if self.is_chief:
            atomic_write_text(self.path(name), text)

    def read_json(self, name: str, advice: str = "", expect: type | None = None) -> Any | None:
        """The content of a JSON file (None when it does not exist).

        Raises:
            RunDirError: the file is not UTF-8 or not JSON (or not ``expect``);
                ``advice`` says what to do.
        """
        return read_json_file(self.path(name), advice=advice, expect=expect)

    def remove(self, name: str) -> None:
        """Deletes a file if it exists (the chief)."""
        if self.is_chief and os.path.exists(self.path(name)):
            os.remove(self.path(name))

    def write_arch(self, name: str, arch) -> None:
        """Writes an arch file atomically (the chief)."""
        if self.is_chief:
            arch.to_json(self.path(name))

    # ------------------------------------------------------- lock, checkpoints

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Holds the directory's lock while the ``with`` block runs (the chief's hold covers every worker).

        On entry the temporaries a killed write left here are removed.

        Raises:
            RunLockedError: another process runs in the directory.
        """
        with hold_run_dir(self.model_dir, enabled=self.is_chief):
            if self.is_chief:
                for name in remove_stale_temporaries(self.model_dir):
                    log.info("removed %s, left by an interrupted write", self.path(name))
            yield

    def checkpoint_manager(self, checkpoint, keep: int, name: str = "checkpoints"):
        """The ``CheckpointManager`` of ``name/`` (at least 2 kept; a damaged state file rebuilt first)."""
        from nas_tf.training.checkpointing import make_manager

        return make_manager(checkpoint, self.path(name), keep)

    def restore_checkpoint(self, checkpoint, name: str = "checkpoints") -> str | None:
        """Restores the newest readable checkpoint of ``name/``; returns its path (None: a fresh search).

        A newest checkpoint that is missing or damaged gives way to the one
        before it, with a warning; :attr:`fell_back` says whether one did.

        Raises:
            RunDirError: checkpoints are there, but none can be read.
        """
        from nas_tf.training.checkpointing import newest_readable, no_readable_checkpoint, report_skipped

        directory = self.path(name)
        prefix, _, skipped = newest_readable(directory)
        if self.is_chief:
            report_skipped(skipped, prefix)
        self.fell_back = bool(skipped)
        if prefix is None:
            if skipped:
                raise no_readable_checkpoint(directory, skipped, "the search")
            return None
        checkpoint.restore(prefix).assert_existing_objects_matched()
        return prefix

    # ------------------------------------------------------- TensorBoard

    def summary_writer(self):
        """The TensorBoard writer of ``tensorboard/`` (created on first use; write with it on the chief only)."""
        if self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(self.path("tensorboard"))
        return self._writer

    def scalars(self, values: dict[str, float | None], step: int) -> None:
        """Logs scalars to ``tensorboard/`` (the chief; None values are skipped)."""
        if not self.is_chief:
            return
        import tensorflow as tf

        writer = self.summary_writer()
        with writer.as_default():
            for k, v in values.items():
                if v is not None:
                    tf.summary.scalar(k, float(v), step=step)
        writer.flush()


# ------------------------------------------------------ children in flight

IN_FLIGHT = "child_in_flight.json"
CRASHED_REASON = "crashed the process"


class CrashGuard(Evaluator):
    """Wraps an in-process evaluator so that a child that kills the process cannot stop the search for good.

    Before a child trains, ``child_in_flight.json`` records its index and how
    often its training started. A child that kills the process (a native
    abort inside TensorFlow, the out-of-memory killer) is started again on
    resume; if it was in flight at two deaths of the process in a row, it is
    recorded as failed -- reward 0, status ``"worker_crashed"``, reason
    ``"crashed the process"`` -- without training it a third time. A Python
    exception or an interrupt (Ctrl-C, SIGTERM) is not a crash: the record is
    taken back.

    Args:
        evaluator: the evaluator training children in this process.
        run_dir: the run directory (its chief writes the record).
        crashes: deaths of the process while one child trains before it is
            recorded as failed.
    """

    def __init__(self, evaluator: Evaluator, run_dir: RunDirectory, crashes: int = 2):
        self.inner = evaluator
        self.run_dir = run_dir
        self.crashes = crashes

    def _starts(self, index: int) -> int:
        record = self.run_dir.read_json(
            IN_FLIGHT, expect=dict, advice="delete it (it only records the child in training when the process died)"
        )
        if record and record.get("child") == index and isinstance(record.get("starts"), int):
            return record["starts"]
        return 0

    def evaluate(self, requests):
        return self._guarded(requests, self.inner.evaluate)

    # The asynchronous path keeps the inner evaluator's own queue and order; its children train guarded too.
    def submit(self, request) -> None:
        self.inner.submit(request)

    def in_flight(self) -> int:
        return self.inner.in_flight()

    def next_result(self):
        train = self.inner.evaluate
        self.inner.evaluate = lambda requests: self._guarded(requests, train)
        try:
            return self.inner.next_result()
        finally:
            del self.inner.evaluate  # the class's method again

    def _guarded(self, requests, train):
        from nas_tf.search.evaluator import WORKER_CRASHED, ChildResult

        for request in requests:
            crashed = self._starts(request.index)
            if crashed >= self.crashes:
                log.warning(
                    "child %d was in training when the process died %d times in a row: recorded as failed "
                    "(reward 0) without training it again", request.index, crashed,
                )
                self.run_dir.remove(IN_FLIGHT)
                yield ChildResult(index=request.index, reward=0.0, status=WORKER_CRASHED, reason=CRASHED_REASON,
                                  metrics={"crashes": crashed})
                continue
            self.run_dir.write_json(IN_FLIGHT, {"child": request.index, "step": request.step, "starts": crashed + 1})
            done = False
            try:
                for result in train([request]):
                    done = True
                    self.run_dir.remove(IN_FLIGHT)
                    yield result
            except BaseException:
                if not done:
                    # Not a crash of the process (an interrupt, an error of the search): taken back.
                    if crashed:
                        self.run_dir.write_json(IN_FLIGHT, {"child": request.index, "step": request.step,
                                                            "starts": crashed})
                    else:
                        self.run_dir.remove(IN_FLIGHT)
                raise

    @property
    def capacity(self) -> int:
        return self.inner.capacity

    def execution(self) -> dict[str, Any]:
        return getattr(self.inner, "execution", dict)()

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def close(self) -> None:
        self.inner.close()
