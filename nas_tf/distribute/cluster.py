"""Who is who in a multi-worker run, and the few collectives the search loops need.

Under ``--strategy=multi_worker`` every host runs the same command. The search
loops use these helpers to agree with each other through the strategy's own
collective ops (no sockets of ours):

* :func:`worker_info`: this worker's index, the number of workers, and whether
  it is the chief -- the only one that writes checkpoints, history and exports;
* :func:`all_gather_bytes`: every worker contributes a byte string and every
  worker receives all of them (the results of the children each host trained);
* :func:`broadcast_from_chief`: the chief's values of some variables are copied
  to every worker (the controller after an update);
* :func:`barrier`: waits until every worker gets there;
* :func:`save_checkpoint`: every worker takes part in a save, only the
  chief's is kept; :func:`float_variables`: what to broadcast of a state.

With any other strategy (or none) there is one worker, the chief, and the
collectives are the identity, so the loops call them unconditionally.

Example:

>>> info = worker_info(None)
>>> (info.index, info.count, info.is_chief)
(0, 1, True)
>>> all_gather_bytes(None, b"abc")
[b'abc']
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import tempfile
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """This process's place in the cluster.

    Args:
        index: 0 for the chief, then 1, 2, ... (the chief is the ``chief``
            task if the cluster has one, else worker 0).
        count: number of workers (hosts) in the cluster.
        is_chief: whether this worker writes the run directory.
    """

    index: int
    count: int
    is_chief: bool


def _is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and worker_info(strategy).count > 1


def worker_info(strategy: tf.distribute.Strategy | None) -> WorkerInfo:
    """The index, count and chief flag of this worker under ``strategy``."""
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return WorkerInfo(0, 1, True)
    spec = resolver.cluster_spec().as_dict()
    chiefs = len(spec.get("chief", []))
    workers = len(spec.get("worker", []))
    count = chiefs + workers
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    if count <= 1 or task_type is None:
        return WorkerInfo(0, max(count, 1), True)
    if task_type == "chief":
        index = 0
    elif task_type == "worker":
        index = task_id + chiefs
    else:
        raise ValueError(f"strategy=multi_worker: task type {task_type!r} cannot train (only chief and worker tasks)")
    return WorkerInfo(index, count, index == 0)


_ALL_REDUCE_FNS: dict = {}


def _replica_all_reduce_sum(strategy, values: np.ndarray) -> np.ndarray:
    """Sums ``values`` over every replica of the cluster (each local replica adds this worker's copy)."""
    fn = _ALL_REDUCE_FNS.get(id(strategy))
    if fn is None:
        # The tensor reaches the replicas captured and copied inside the replica
        # function: passed as an argument of ``strategy.run``, the collective
        # fails with "destinations can not be empty" (TF 2.21).
        def all_reduce(x):
            def replica_fn():
                return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(x))

            return strategy.run(replica_fn)

        fn = _ALL_REDUCE_FNS[id(strategy)] = tf.function(all_reduce, reduce_retracing=True)
    # One flat float64 vector whatever is summed (exact for integers below
    # 2**53): one trace serves every call instead of one per dtype and shape.
    flat = tf.constant(np.reshape(values, -1).astype(np.float64))
    out = strategy.experimental_local_results(fn(flat))[0].numpy()
    return np.reshape(out, values.shape).astype(values.dtype)


def _sum_over_workers(strategy, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums one array per worker into a ``[workers, ...]`` array (row ``w``: worker ``w``'s
    array times its number of local replicas), and those replica counts."""
    info = worker_info(strategy)
    per_worker = np.zeros((info.count,) + values.shape, dtype=values.dtype)
    per_worker[info.index] = values
    local = np.zeros((info.count,), dtype=np.int64)
    local[info.index] = 1
    total = _replica_all_reduce_sum(strategy, per_worker)
    replicas = _replica_all_reduce_sum(strategy, local)
    return total, replicas


def all_gather_bytes(strategy: tf.distribute.Strategy | None, payload: bytes) -> list[bytes]:
    """Every worker's ``payload``, in worker order, on every worker.

    Args:
        strategy: the run's strategy (one worker unless multi-worker).
        payload: this worker's bytes.

    Returns:
        The list of all workers' payloads (index = worker index).
    """
    if not _is_multi_worker(strategy):
        return [bytes(payload)]
    info = worker_info(strategy)
    lengths, replicas = _sum_over_workers(strategy, np.array([len(payload)], dtype=np.int64))
    lengths = (lengths[:, 0] // replicas).astype(np.int64)
    width = int(lengths.max()) if len(lengths) else 0
    if width == 0:
        return [b""] * info.count
    row = np.zeros((width,), dtype=np.int32)
    row[: len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    rows, replicas = _sum_over_workers(strategy, row)
    rows = rows // replicas[:, None]
    return [rows[w, : lengths[w]].astype(np.uint8).tobytes() for w in range(info.count)]


def all_gather_json(strategy: tf.distribute.Strategy | None, obj) -> list:
    """:func:`all_gather_bytes` of a JSON-able object: every worker's object."""
    return [json.loads(b.decode("utf-8")) for b in all_gather_bytes(strategy, json.dumps(obj).encode("utf-8"))]


def broadcast_from_chief(strategy: tf.distribute.Strategy | None, variables: Sequence[tf.Variable]) -> int:
    """Gives every worker the chief's values of ``variables`` (floating point ones).

    Returns:
        The number of bytes each worker contributed (0 with one worker).
    """
    if not _is_multi_worker(strategy):
        return 0
    info = worker_info(strategy)
    floats = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
    if not floats:
        return 0
    values = [np.asarray(v.numpy()) for v in floats]
    flat = np.concatenate([np.reshape(x, -1) for x in values]).astype(np.result_type(*values))
    mine = flat if info.is_chief else np.zeros_like(flat)
    per_worker, replicas = _sum_over_workers(strategy, mine)
    # The others added zeros: every worker gets the same values (exactly the
    # chief's when the local replica count is a power of two).
    chief = per_worker[0] / replicas[0]
    offset = 0
    for v, x in zip(floats, values):
        v.assign(np.reshape(chief[offset : offset + x.size], x.shape).astype(x.dtype))
        offset += x.size
    return int(flat.nbytes)


def float_variables(trackables: dict[str, Any]) -> list[tf.Variable]:
    """The floating-point ``tf.Variable`` s held by ``trackables`` (models, optimizers, variables).

    Keras variables are unwrapped to their TensorFlow variables; integer and
    boolean variables and random generators are left out.

    Example:

    >>> v = tf.Variable(1.0)
    >>> [x is v for x in float_variables({"baseline": v, "ready": tf.Variable(True)})]
    [True]
    """
    out: list[tf.Variable] = []
    seen: set[int] = set()

    def add(v):
        if isinstance(v, keras.Variable):
            v = v.value
        if isinstance(v, tf.Variable) and v.dtype.is_floating and id(v) not in seen:
            seen.add(id(v))
            out.append(v)

    for value in trackables.values():
        if isinstance(value, (keras.layers.Layer, keras.optimizers.Optimizer)):
            for v in value.variables:
                add(v)
        elif isinstance(value, (tf.Variable, keras.Variable)):
            add(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                add(v)
    return out


def save_checkpoint(
    manager: tf.train.CheckpointManager, checkpoint: tf.train.Checkpoint, info: WorkerInfo, number: int
) -> None:
    """Saves ``checkpoint`` as number ``number``: the chief through ``manager``, the others into a scratch directory.

    TensorFlow needs every worker to take part in saving distributed variables
    (the save may run collectives), but only the chief's copy is kept: another
    worker writes into a temporary directory of its own and deletes it at once.
    """
    if info.is_chief:
        manager.save(checkpoint_number=number)
        return
    scratch = tempfile.mkdtemp(prefix=f"nas_tf_worker{info.index}_checkpoint_")
    try:
        tf.train.CheckpointManager(checkpoint, scratch, max_to_keep=1).save(checkpoint_number=number)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def barrier(strategy: tf.distribute.Strategy | None) -> None:
    """Returns when every worker has called it."""
    if _is_multi_worker(strategy):
        _replica_all_reduce_sum(strategy, np.ones((1,), dtype=np.int64))


def free_ports(n: int) -> list[int]:
    """``n`` free TCP ports on 127.0.0.1 (for a local test cluster)."""
    sockets, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def local_tf_configs(num_workers: int) -> list[str]:
    """``TF_CONFIG`` values of a cluster of ``num_workers`` processes on 127.0.0.1.

    Example:

    >>> configs = local_tf_configs(2)
    >>> json.loads(configs[1])["task"]
    {'type': 'worker', 'index': 1}
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    hosts = [f"127.0.0.1:{p}" for p in free_ports(num_workers)]
    return [json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}) for i in range(num_workers)]
