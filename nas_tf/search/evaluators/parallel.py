"""Training several children at once, one worker process per device group.

:class:`ParallelEvaluator` is the evaluator behind ``--parallel_children=N``.
It keeps ``N`` worker processes, each a fresh interpreter
(``python -m nas_tf.search.evaluators._worker``, never a fork of a process that
runs TensorFlow, and never a re-import of the search script) talking to the
search over a private socket pair, with its devices fixed *before* TensorFlow
is imported there: ``CUDA_VISIBLE_DEVICES``
is its device group (one GPU, or several that it trains each child on with a
``MirroredStrategy``), GPU memory grows on demand, and on a machine without
GPUs the workers share the CPU (``TF_NUM_INTRAOP_THREADS`` = cores / N each).

Each worker builds its child trainer once from a picklable recipe
(:class:`~nas_tf.search.evaluator.TrainerRecipe`, e.g. a
:class:`~nas_tf.tasks.TrainerSpec`; data loaded in the worker) and then
trains the children it is sent, one at a time. What can go wrong with a child
never stops the search; it becomes a reward-0 result whose ``status`` and
``reason`` say why:

* the child fails inside the worker (cannot be built, too large, diverges, out
  of memory): the worker reports it as :class:`InProcessEvaluator` would;
* the worker process dies (killed, segfault, the kernel's OOM killer): the
  worker is replaced and the child is **retried** on the new worker up to
  ``retries`` times (default once: a dead machine is usually not the child's
  fault); after that it gets status ``worker_crashed``;
* no result within ``child_timeout`` seconds: the worker is killed and
  replaced, and the child gets status ``timeout`` (no retry: it would most
  likely hang again).

A child's seed comes from its index in the search (the request), never from
the worker that trains it, so the results do not depend on ``N`` or on which
worker took which child (up to the float noise of a different thread count).

Example:

>>> spec = nas_tf.tasks.TrainerSpec("image", "digits", config=ImageChildConfig(epochs=1))  # doctest: +SKIP
>>> with ParallelEvaluator(spec, num_workers=2) as evaluator:  # doctest: +SKIP
...     results = list(evaluator.evaluate(requests))
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import multiprocessing.connection
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from nas_tf.search.evaluator import TIMEOUT, WORKER_CRASHED, ChildRequest, ChildResult, Evaluator, TrainerRecipe

log = logging.getLogger("nas_tf.search")


class WorkerStartError(RuntimeError):
    """A worker process could not start (its trainer could not be built)."""


def parse_device_groups(groups: Sequence[str] | None, num_workers: int, num_gpus: int) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` value of every worker.

    Args:
        groups: one entry per worker: a GPU index (``"3"``) or several joined
            by ``+`` (``"0+1"``: that worker trains each child on both). None:
            worker ``i`` gets GPU ``i mod num_gpus``, or no GPU without GPUs.
        num_workers: the number of workers.
        num_gpus: GPUs on this machine.

    Returns:
        One comma-separated device list per worker (``""``: CPU only).

    Raises:
        ValueError: a malformed or out-of-range group, or a count that does
            not match ``num_workers``.

    Example:

    >>> parse_device_groups(["0+1", "2+3"], 2, 4)
    ['0,1', '2,3']
    >>> parse_device_groups(None, 3, 2)
    ['0', '1', '0']
    """
    if num_workers < 1:
        raise ValueError(f"parallel_children must be >= 1, got {num_workers}")
    if not groups:
        return [str(i % num_gpus) if num_gpus else "" for i in range(num_workers)]
    if len(groups) != num_workers:
        raise ValueError(f"{len(groups)} device groups for {num_workers} parallel children: give one group per child")
    out = []
    for group in groups:
        ids = []
        for part in str(group).split("+"):
            try:
                gpu = int(part)
            except ValueError:
                raise ValueError(f"device group {group!r}: {part!r} is not a GPU index") from None
            if gpu < 0 or gpu >= num_gpus:
                raise ValueError(f"device group {group!r}: GPU {gpu} does not exist (this machine has {num_gpus} GPU(s))")
            ids.append(gpu)
        if len(set(ids)) != len(ids):
            raise ValueError(f"device group {group!r} names a GPU twice")
        out.append(",".join(str(i) for i in ids))
    return out


@dataclasses.dataclass
class _Worker:
    slot: int
    devices: str
    process: Any
    conn: Any
    pid: int
    request: ChildRequest | None = None
    started: float = 0.0


class ParallelEvaluator(Evaluator):
    """Trains up to ``num_workers`` children at once in spawned worker processes.

    Args:
        spec: how each worker builds its child trainer (a picklable
            :class:`~nas_tf.search.evaluator.TrainerRecipe`).
        num_workers: worker processes (children in flight).
        device_groups: ``CUDA_VISIBLE_DEVICES`` of every worker (see
            :func:`parse_device_groups`); None: round robin over the GPUs, or
            CPU only.
        child_timeout: seconds a child may take before its worker is killed
            and the child gets reward 0 (0: no limit).
        retries: times a child is retried after its worker died.
        threads_per_worker: TensorFlow intra-op threads of each worker
            (0: the machine's cores divided by ``num_workers``).
        settings: the trainer's JSON-able settings (the run record).
        start_timeout: seconds a new worker may take to get ready.
    """

    def __init__(
        self,
        spec: TrainerRecipe,
        num_workers: int,
        device_groups: Sequence[str] | None = None,
        child_timeout: float = 0.0,
        retries: int = 1,
        threads_per_worker: int = 0,
        settings: dict[str, Any] | None = None,
        start_timeout: float = 600.0,
    ):
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if child_timeout < 0:
            raise ValueError(f"child_timeout must be >= 0, got {child_timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if threads_per_worker < 0:
            raise ValueError(f"threads_per_worker must be >= 0, got {threads_per_worker}")
        self.spec = spec
        self.num_workers = int(num_workers)
        self.device_groups = list(device_groups) if device_groups is not None else [""] * self.num_workers
        if len(self.device_groups) != self.num_workers:
            raise ValueError(f"{len(self.device_groups)} device groups for {self.num_workers} workers")
        self.child_timeout = float(child_timeout)
        self.retries = int(retries)
        self.threads = threads_per_worker or max(1, (os.cpu_count() or 1) // self.num_workers)
        self.settings = dict(settings or {})
        self.start_timeout = float(start_timeout)
        self._spec_bytes = pickle.dumps(spec)
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker | None] = [None] * self.num_workers
        self._pending: collections.deque[ChildRequest] = collections.deque()
        self._attempts: dict[int, int] = {}
        self._outstanding = 0
        self.restarts = 0

    # ------------------------------------------------------------ workers

    def _start(self, slot: int) -> _Worker:
        return self._await_ready(slot, *self._launch(slot))

    def _launch(self, slot: int):
        devices = self.device_groups[slot]
        env = dict(os.environ)
        env.update(
            {
                "CUDA_VISIBLE_DEVICES": devices,
                "TF_FORCE_GPU_ALLOW_GROWTH": "true",
                "TF_NUM_INTRAOP_THREADS": str(self.threads),
                "TF_NUM_INTEROP_THREADS": str(max(1, min(2, self.threads))),
                "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            }
        )
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "nas_tf.search.evaluators._worker", str(theirs.fileno()), str(slot)],
                env=env,
                stdin=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
            )
        finally:
            theirs.close()
        conn = multiprocessing.connection.Connection(ours.detach())
        conn.send_bytes(self._spec_bytes)
        return process, conn

    def _await_ready(self, slot: int, process, conn) -> _Worker:
        devices = self.device_groups[slot]
        deadline = time.time() + self.start_timeout
        while not conn.poll(1.0):
            if process.poll() is not None:
                raise WorkerStartError(f"child worker {slot} exited with code {process.returncode} before it was ready")
            if time.time() > deadline:
                process.kill()
                raise WorkerStartError(f"child worker {slot} was not ready after {self.start_timeout:.0f}s")
        try:
            kind, value = conn.recv()
        except (EOFError, OSError):
            process.wait(10)
            raise WorkerStartError(f"child worker {slot} exited with code {process.returncode} before it was ready") from None
        if kind != "ready":
            process.wait(10)
            raise WorkerStartError(f"child worker {slot} could not build its trainer: {value}")
        worker = _Worker(slot, devices, process, conn, process.pid)
        log.info("child worker %d ready (pid %d, devices %s)", slot, worker.pid, devices or "cpu")
        self._workers[slot] = worker
        return worker

    def _ensure_workers(self) -> None:
        """Starts the missing workers, all at once (each imports TensorFlow: seconds)."""
        launched = [(slot, *self._launch(slot)) for slot in range(self.num_workers) if self._workers[slot] is None]
        try:
            for slot, process, conn in launched:
                self._await_ready(slot, process, conn)
        except WorkerStartError:
            for slot, process, _conn in launched:
                if self._workers[slot] is None and process.poll() is None:
                    process.kill()
            raise

    def _kill(self, worker: _Worker) -> None:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait(30)
        worker.conn.close()
        self._workers[worker.slot] = None

    def _replace(self, worker: _Worker) -> None:
        self._kill(worker)
        self.restarts += 1
        self._start(worker.slot)

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (-1 for a slot without one)."""
        return [w.pid if w is not None else -1 for w in self._workers]

    def busy_pids(self) -> dict[int, int]:
        """``{child index: worker pid}`` of the children being trained."""
        return {w.request.index: w.pid for w in self._workers if w is not None and w.request is not None}

    # ------------------------------------------------------- the interface

    @property
    def capacity(self) -> int:
        return self.num_workers

    def submit(self, request: ChildRequest) -> None:
        self._ensure_workers()
        self._pending.append(request)
        self._outstanding += 1
        self._dispatch()

    def in_flight(self) -> int:
        return self._outstanding

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._pending:
                return
            if worker is not None and worker.request is None:
                request = self._pending.popleft()
                self._attempts[request.index] = self._attempts.get(request.index, 0) + 1
                worker.request, worker.started = request, time.time()
                payload = {"index": request.index, "step": request.step, "arch": request.arch.to_dict(), "seed": request.seed}
                try:
                    worker.conn.send(("child", payload))
                except (BrokenPipeError, OSError):
                    pass  # found dead by next_result, which retries the child

    def _finish(self, worker: _Worker, result: ChildResult) -> ChildResult:
        attempts = self._attempts.pop(worker.request.index, 1)
        if attempts > 1:
            result.metrics["attempts"] = attempts
        worker.request = None
        self._outstanding -= 1
        self._dispatch()
        return result

    def _crashed(self, worker: _Worker) -> ChildResult | None:
        request = worker.request
        try:
            code = worker.process.wait(10)
        except subprocess.TimeoutExpired:
            code = None  # the pipe broke but the process lives on: killed below
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        attempt = self._attempts.get(request.index, 1)
        log.warning("child worker %d (pid %d) %s while training child %d (attempt %d)",
                    worker.slot, worker.pid, how, request.index, attempt)
        pid = worker.pid
        self._replace(worker)
        if attempt <= self.retries:
            self._pending.appendleft(request)
            worker = self._workers[worker.slot]
            worker.request = None
            self._dispatch()
            return None
        self._attempts.pop(request.index, None)
        self._outstanding -= 1
        self._dispatch()
        reason = f"worker process (pid {pid}) {how} while training the child ({attempt} attempt(s))"
        return ChildResult(index=request.index, reward=0.0, status=WORKER_CRASHED, reason=reason,
                           metrics={"attempts": attempt}, wall_time=0.0)

    def _timed_out(self, worker: _Worker) -> ChildResult:
        request = worker.request
        elapsed = time.time() - worker.started
        log.warning("child %d: no result after %.0fs (child_timeout); replacing worker %d (pid %d)",
                    request.index, elapsed, worker.slot, worker.pid)
        self._attempts.pop(request.index, None)
        self._replace(worker)
        self._outstanding -= 1
        self._dispatch()
        reason = f"no result after {elapsed:.0f}s (child_timeout={self.child_timeout:g}s); worker killed"
        return ChildResult(index=request.index, reward=0.0, status=TIMEOUT, reason=reason, wall_time=elapsed)

    def next_result(self) -> ChildResult:
        if self._outstanding <= 0:
            raise RuntimeError("next_result: no child was submitted")
        while True:
            busy = [w for w in self._workers if w is not None and w.request is not None]
            if not busy:
                self._dispatch()
                continue
            wait = 5.0
            if self.child_timeout:
                now = time.time()
                wait = max(0.0, min([wait] + [w.started + self.child_timeout - now for w in busy]))
            handles = {w.conn: w for w in busy}  # a dead worker's socket reads as end-of-file
            ready = multiprocessing.connection.wait(list(handles), timeout=wait)
            for handle in ready:
                worker = handles[handle]
                if worker.request is None or self._workers[worker.slot] is not worker:
                    continue
                if worker.conn.poll():
                    try:
                        kind, fields = worker.conn.recv()
                    except (EOFError, OSError):
                        kind = None
                    if kind == "result":
                        return self._finish(worker, ChildResult(**fields))
                result = self._crashed(worker)
                if result is not None:
                    return result
                break  # the worker list changed
            else:
                if self.child_timeout:
                    now = time.time()
                    for worker in busy:
                        if worker.request is not None and now - worker.started >= self.child_timeout:
                            return self._timed_out(worker)

    def evaluate(self, requests: Sequence[ChildRequest]) -> Iterator[ChildResult]:
        for request in requests:
            self.submit(request)
        for _ in requests:
            yield self.next_result()

    def config(self) -> dict[str, Any]:
        return {"evaluator": "parallel", **self.settings}

    def execution(self) -> dict[str, Any]:
        return {
            "parallel_children": self.num_workers,
            "device_groups": self.device_groups,
            "child_timeout": self.child_timeout,
            "retries": self.retries,
            "threads_per_worker": self.threads,
        }

    def close(self) -> None:
        for worker in self._workers:
            if worker is None:
                continue
            try:
                worker.conn.send(("stop", None))
            except (BrokenPipeError, OSError):
                pass
        for worker in self._workers:
            if worker is None:
                continue
            try:
                worker.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self._kill(worker)
        self._pending.clear()
        self._outstanding = 0

    def __enter__(self) -> ParallelEvaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
