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
* the **TensorBoard writer** (chief only).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Iterable

from nas_tf.distribute.cluster import WorkerInfo, all_gather_json, barrier
from nas_tf.utils.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl

log = logging.getLogger("nas_tf.search")

CONFIG = "search_config.json"


class ResumeMismatchError(ValueError):
    """The run directory holds a search with different settings."""


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
        self, record: dict, resumable: Iterable[tuple[str, ...]] = (), execution: Iterable[str] = ()
    ) -> None:
        """Refuses a directory that holds a search with other settings; then the chief writes ``record``.

        Every worker reads the old record and refuses a mismatch alike before
        the chief writes the new one.

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
        path = self.path(CONFIG)
        if os.path.exists(path):
            with open(path, "r", encoding="utf-8") as f:
                old = json.load(f)
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
        self.write_json(CONFIG, record)

    # ------------------------------------------------------------- logs

    def restore_rows(
        self, name: str, keep: Callable[[dict], bool] = lambda row: True, key: Callable[[dict], Any] | None = None
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

        Returns:
            The kept rows, in file order.
        """
        rows = read_jsonl(self.path(name), repair=self.is_chief)
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

    def read_json(self, name: str) -> Any | None:
        """The content of a JSON file (None when it does not exist)."""
        path = self.path(name)
        if not os.path.exists(path):
            return None
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)

    def remove(self, name: str) -> None:
        """Deletes a file if it exists (the chief)."""
        if self.is_chief and os.path.exists(self.path(name)):
            os.remove(self.path(name))

    def write_arch(self, name: str, arch) -> None:
        """Writes an arch file atomically (the chief)."""
        if self.is_chief:
            arch.to_json(self.path(name))

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
