"""One ``tf.distribute.Strategy`` for every training path, chosen by name.

* ``one_device``: the first GPU, else the CPU.
* ``mirrored``: synchronous data parallelism over the local GPUs (the first
  ``num_gpus`` of them), or over ``num_cpu_devices`` logical CPU devices on a
  machine without GPUs (so every path can be tried and tested on a laptop).
* ``multi_worker``: ``MultiWorkerMirroredStrategy`` with the cluster from
  ``TF_CONFIG`` or, inside a Slurm allocation, from Slurm's variables, through
  the cluster resolvers that TensorFlow ships.
* ``auto``: ``mirrored`` when there are several local GPUs (or several
  logical CPU devices were asked for), else ``one_device``.

Training under a strategy (``nas_tf.tasks.image.train.train_classifier``)
follows what ../TF-NOTES found with TF 2.21 / Keras 3: model and optimizer are
built inside ``strategy.scope()``, the optimizer's slots are built before the
first step, batch norm is switched to synchronised statistics (Keras 3 does
not synchronise the moving averages of replicas otherwise), the global batch
is the per-replica batch times the replicas and the loss is averaged over the
global batch.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


def configure_cpu_devices(n: int) -> list:
    """Splits the first physical CPU into ``n`` logical devices.

    Must run before TensorFlow executes any op (TensorFlow fixes the devices
    then); calling it again with the same ``n`` is harmless.

    Raises:
        RuntimeError: the runtime is already initialised with another split.
    """
    if n < 1:
        raise ValueError(f"num_cpu_devices must be >= 1, got {n}")
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == n:
        return tf.config.list_logical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as e:
        raise RuntimeError(
            f"num_cpu_devices={n}: TensorFlow is already initialised; split the CPU before any TensorFlow op runs"
        ) from e
    return tf.config.list_logical_devices("CPU")


def cluster_resolver():
    """The cluster of a multi-worker run: ``TF_CONFIG`` if set, else a Slurm allocation.

    Raises:
        ValueError: neither ``TF_CONFIG`` nor ``SLURM_JOB_ID`` is set, or
            ``TF_CONFIG`` is not valid JSON with a cluster.
    """
    if os.environ.get("TF_CONFIG"):
        try:
            config = json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
        if not isinstance(config, dict) or "cluster" not in config:
            raise ValueError(f"TF_CONFIG needs a 'cluster' field, got {os.environ['TF_CONFIG'][:200]!r}")
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if os.environ.get("SLURM_JOB_ID"):
        return tf.distribute.cluster_resolver.SlurmClusterResolver()
    raise ValueError("strategy=multi_worker needs a cluster: set TF_CONFIG, or run inside a Slurm allocation")


def make_strategy(name: str = "auto", num_gpus: int | None = None, num_cpu_devices: int = 0) -> tf.distribute.Strategy:
    """Builds the strategy ``name`` (one of :data:`STRATEGIES`).

    Args:
        name: ``auto``, ``one_device``, ``mirrored`` or ``multi_worker``.
        num_gpus: local GPUs to use (default: all).
        num_cpu_devices: on a machine without GPUs, split the CPU into this
            many logical devices (0: leave it whole).

    Returns:
        The strategy.

    Example:

    >>> strategy = make_strategy("mirrored", num_cpu_devices=2)  # doctest: +SKIP
    >>> strategy.num_replicas_in_sync  # doctest: +SKIP
    2
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if num_gpus is not None and num_gpus < 0:
        raise ValueError(f"num_gpus must be >= 0, got {num_gpus}")
    if num_cpu_devices < 0:
        raise ValueError(f"num_cpu_devices must be >= 0, got {num_cpu_devices}")
    gpus = tf.config.list_physical_devices("GPU")
    if num_gpus is not None:
        if num_gpus > len(gpus):
            raise ValueError(f"num_gpus={num_gpus}, but this machine has {len(gpus)} GPU(s)")
        gpus = gpus[:num_gpus]
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised: keep its setting
    cpu_split = num_cpu_devices > 1 and not gpus
    if cpu_split:
        configure_cpu_devices(num_cpu_devices)
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 or cpu_split else "one_device"
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster_resolver())
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if gpus:
        devices = [f"/gpu:{i}" for i in range(len(gpus))]
    elif cpu_split:
        devices = [f"/cpu:{i}" for i in range(num_cpu_devices)]
    else:
        devices = ["/cpu:0"]
    # One MirroredStrategy per device list and process: TensorFlow numbers the collectives of every
    # MirroredStrategy from the same start (TF 2.21), so two instances used in one process (a notebook,
    # a test session) collide ("Shape mismatch in the collective instance ...") and abort every later one.
    key = tuple(devices)
    if key not in _MIRRORED:
        _MIRRORED[key] = tf.distribute.MirroredStrategy(devices)
    return _MIRRORED[key]


_MIRRORED: dict[tuple[str, ...], tf.distribute.MirroredStrategy] = {}


def num_replicas(strategy: tf.distribute.Strategy | None) -> int:
    """Replicas in sync (1 without a strategy)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def synchronize_batch_norm(model: keras.Model) -> int:
    """Makes every ``BatchNormalization`` of ``model`` use cross-replica statistics.

    Call it before the model's first training step. Returns the number of
    layers switched.
    """
    from nas_tf.utils.keras_private import sublayers

    count = 0
    for layer in sublayers(model, include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            count += 1
    return count
