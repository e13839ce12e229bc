"""Turning flags into a ``tf.distribute.Strategy`` (see :mod:`nas_tf.distribute.strategy`)."""

from nas_tf.distribute.strategy import (
    STRATEGIES,
    cluster_resolver,
    configure_cpu_devices,
    make_strategy,
    num_replicas,
    synchronize_batch_norm,
)

__all__ = [
    "STRATEGIES",
    "cluster_resolver",
    "configure_cpu_devices",
    "make_strategy",
    "num_replicas",
    "synchronize_batch_norm",
]
