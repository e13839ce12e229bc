"""Evaluators that train children elsewhere: worker processes on this host, and the hosts of a cluster."""

from nas_tf.search.evaluators.cluster import MultiWorkerEvaluator
from nas_tf.search.evaluators.parallel import ParallelEvaluator, WorkerStartError, parse_device_groups

__all__ = ["MultiWorkerEvaluator", "ParallelEvaluator", "WorkerStartError", "parse_device_groups"]
