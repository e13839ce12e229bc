"""Strategies from flags (:mod:`nas_tf.distribute.strategy`) and multi-worker roles and collectives (:mod:`nas_tf.distribute.cluster`)."""

from nas_tf.distribute.cluster import (
    WorkerInfo,
    all_gather_bytes,
    all_gather_json,
    barrier,
    broadcast_from_chief,
    float_variables,
    local_tf_configs,
    save_checkpoint,
    worker_info,
)
from nas_tf.distribute.strategy import (
    STRATEGIES,
    cluster_resolver,
    configure_cpu_devices,
    make_strategy,
    num_replicas,
    synchronize_batch_norm,
)

__all__ = [
    "WorkerInfo",
    "all_gather_bytes",
    "all_gather_json",
    "barrier",
    "broadcast_from_chief",
    "float_variables",
    "local_tf_configs",
    "save_checkpoint",
    "worker_info",
    "STRATEGIES",
    "cluster_resolver",
    "configure_cpu_devices",
    "make_strategy",
    "num_replicas",
    "synchronize_batch_norm",
]
