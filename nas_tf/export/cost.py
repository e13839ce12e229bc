"""What a child costs to serve: latency, FLOPs and parameters, cached per arch.

* ``latency_ms`` -- measured on the child *as exported* (its dataset's
  preprocessing in front, :func:`~nas_tf.export.image_serving_model`), batch
  1, median after warm-up (:mod:`nas_tf.export.latency`: the TFLite
  interpreter on this CPU by default, or a SavedModel);
* ``flops`` -- floating-point operations of one image through the network,
  counted from its graph by TensorFlow's profiler
  (``tf.compat.v1.profiler``, ``float_operation``) on the frozen concrete
  function at batch 1: a multiply-accumulate of a convolution or a matrix
  product counts 2, an element-wise add or multiply (bias, batch-norm
  scale, pooling sum) 1 per element; ReLU, max and reshape count 0;
* ``params`` -- the network's parameter count (``model.count_params()``).

:class:`CostMeter` measures what a :class:`~nas_tf.export.CostObjective`
needs for an arch once and caches it by the arch's canonical JSON (and the
measurement settings), in memory and optionally in a JSON file that a
resumed search reads back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import keras

from nas_tf.export.latency import LatencySettings, measure_latency_ms

log = logging.getLogger("nas_tf.export")

METRICS = ("latency_ms", "flops", "params")

__all__ = ["METRICS", "CostAwareReward", "CostMeter", "count_flops", "measure_costs"]


def count_flops(model: keras.Model, batch_size: int = 1) -> int:
    """Floating-point operations of ``model`` on one batch, counted from its graph.

    The model is traced at ``batch_size`` (inference mode), its variables are
    frozen into constants, and TensorFlow's profiler adds up the registered
    FLOP counts of the graph's ops (2 per multiply-accumulate of
    convolutions and matrix products, 1 per element of element-wise
    arithmetic; activations count 0).

    Args:
        model: a built Keras model with one input of known shape.
        batch_size: the batch traced.

    Returns:
        The FLOP count.

    Example:

    >>> inputs = keras.Input((8, 8, 1))
    >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 3, use_bias=False)(inputs))
    >>> count_flops(model)  # 6 x 6 outputs x 4 filters x 3 x 3 taps x 2
    2592
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    from nas_tf.ops import custom_ops_disabled

    if len(model.inputs) != 1:
        raise ValueError(f"count_flops takes a model with one input, {model.name!r} has {len(model.inputs)}")
    spec = model.inputs[0]
    signature = tf.TensorSpec((batch_size, *spec.shape[1:]), spec.dtype)
    with custom_ops_disabled():
        concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(signature)
    frozen, _ = convert_variables_to_constants_v2_as_graph(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    previous = tf.get_logger().level
    tf.get_logger().setLevel(logging.ERROR)  # the profiler's deprecation warnings
    try:
        profile = tf.compat.v1.profiler.profile(
            graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
        )
    finally:
        tf.get_logger().setLevel(previous)
    return int(profile.total_float_ops)


def measure_costs(
    network: keras.Model,
    metrics: Iterable[str] = METRICS,
    *,
    raw=None,
    latency: LatencySettings | None = None,
) -> dict[str, float]:
    """The serving costs of one network: ``{"latency_ms", "flops", "params"}`` (those asked for).

    Args:
        network: an image network (preprocessed images to logits, auxiliary
            outputs ignored) or a language model (``flops`` not counted).
        metrics: which of :data:`METRICS` to measure.
        raw: what users of the dataset hold (``ImageData.raw_pixels``): the
            latency is that of the network behind this preprocessing, as
            exported; None measures the network alone.
        latency: how latency is measured (None: :class:`LatencySettings` defaults).
    """
    from nas_tf.export.serving import _single_output, image_serving_model, is_language_model

    metrics = tuple(metrics)
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown cost metric(s) {unknown}; known: {', '.join(METRICS)}")
    language = is_language_model(network)
    if not language:
        network = _single_output(network)
    out: dict[str, float] = {}
    if "params" in metrics:
        out["params"] = int(network.count_params())
    if "flops" in metrics:
        if language:
            raise ValueError("flops are counted for image networks only")
        out["flops"] = count_flops(network)
    if "latency_ms" in metrics:
        served = network if language or raw is None else image_serving_model(network, raw)
        out["latency_ms"] = round(measure_latency_ms(served, latency or LatencySettings()), 6)
    return out


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


class CostMeter:
    """Measures the serving costs of children, once per arch.

    The cache key is the canonical JSON (sorted keys, no spaces) of the arch,
    ``context`` (what else shapes the network: dataset, builder options) and
    the latency settings; a metric measured once for a key is never measured
    again. With ``cache_path`` the cache is also a JSON file, rewritten
    atomically after each new measurement and read back by the next meter
    (a resumed search).

    Args:
        metrics: what to measure (a subset of :data:`METRICS`; usually
            ``CostObjective.metrics``).
        raw: what users of the dataset hold (``ImageData.raw_pixels``):
            latency is measured with this preprocessing in front.
        latency: latency settings (None: :class:`LatencySettings` defaults).
        context: JSON-able settings that change the network of an arch.
        cache_path: a JSON file to keep the cache in (None: memory only).

    Example:

    >>> meter = CostMeter(("latency_ms", "flops"), raw=data.raw_pixels, context={"dataset": "digits"})  # doctest: +SKIP
    >>> meter.measure(arch, lambda: build_image_model(arch, (8, 8, 1), 10))  # doctest: +SKIP
    {'latency_ms': 0.021, 'flops': 123456, 'params': 10250}
    """

    def __init__(
        self,
        metrics: Iterable[str] = METRICS,
        *,
        raw=None,
        latency: LatencySettings | None = None,
        context: dict[str, Any] | None = None,
        cache_path: str | None = None,
    ):
        self.metrics = tuple(dict.fromkeys(metrics))
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown cost metric(s) {unknown}; known: {', '.join(METRICS)}")
        self.raw = raw
        self.latency = latency or LatencySettings()
        self.context = dict(context or {})
        self.cache_path = cache_path
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, float]] = {}
        self.measured = 0  # networks measured (cache misses)
        if cache_path and os.path.exists(cache_path):
            with open(cache_path, encoding="utf-8") as f:
                self._cache = json.load(f)

    def key(self, arch) -> str:
        """The cache key of ``arch`` (an :class:`~nas_tf.spaces.Arch` or its dict)."""
        arch_dict = arch.to_dict() if hasattr(arch, "to_dict") else arch
        settings = {"backend": self.latency.backend, "runs": self.latency.runs, "warmup": self.latency.warmup,
                    "threads": self.latency.num_threads}
        raw = None if self.raw is None else [self.raw.dtype, self.raw.max_value]
        return _canonical({"arch": arch_dict, "context": self.context, "latency": settings, "raw": raw})

    def measure(self, arch, build: Callable[[], keras.Model]) -> dict[str, float]:
        """The costs of ``arch``: from the cache, or measured on ``build()`` (and cached).

        Args:
            arch: the architecture (the cache key).
            build: builds its network (called only on a cache miss).

        Returns:
            ``{metric: value}`` for every metric of the meter.
        """
        key = self.key(arch)
        with self._lock:
            cached = dict(self._cache.get(key, {}))
        missing = [m for m in self.metrics if m not in cached]
        if missing:
            start = time.perf_counter()
            network = build()
            cached.update(measure_costs(network, missing, raw=self.raw, latency=self.latency))
            del network
            with self._lock:
                self._cache[key] = {**self._cache.get(key, {}), **cached}
                self.measured += 1
                if self.cache_path:
                    from nas_tf.utils.io import atomic_write_json

                    atomic_write_json(self.cache_path, self._cache, indent=None)
            log.debug("measured %s in %.1fs", missing, time.perf_counter() - start)
        return {m: cached[m] for m in self.metrics}

    def __len__(self) -> int:
        return len(self._cache)

    def config(self) -> dict[str, Any]:
        """JSON-able settings (for a search's record)."""
        return {"metrics": list(self.metrics), "latency": dataclasses.asdict(self.latency), "context": self.context}


class CostAwareReward:
    """The reward of a child from its accuracy and its measured costs: what a child trainer calls.

    Args:
        objective: the targets and weights (:class:`~nas_tf.export.CostObjective`).
        meter: measures (and caches) the costs; it should measure at least
            ``objective.metrics`` (by default all of :data:`METRICS`, so the
            history records latency, FLOPs and parameters beside accuracy).

    Example:

    >>> rewarder = CostAwareReward(objective, CostMeter(raw=data.raw_pixels))  # doctest: +SKIP
    >>> reward, costs = rewarder(0.93, arch, lambda: build_image_model(arch, (8, 8, 1), 10), exponent=3)  # doctest: +SKIP
    >>> costs  # doctest: +SKIP
    {'latency_ms': 0.021, 'flops': 123456, 'params': 10250, 'cost_factor': 1.02}
    """

    def __init__(self, objective, meter: CostMeter):
        missing = sorted(set(objective.metrics) - set(meter.metrics))
        if missing:
            raise ValueError(f"the cost meter does not measure {missing}, which the objective constrains")
        self.objective = objective
        self.meter = meter

    def __call__(
        self, accuracy: float, arch, build: Callable[[], keras.Model], exponent: float = 1.0
    ) -> tuple[float, dict[str, float]]:
        """``(reward, {latency_ms, flops, params, cost_factor})`` of a child of ``accuracy``."""
        costs = self.meter.measure(arch, build)
        factor = self.objective.factor(costs)
        return float((accuracy * factor) ** exponent), {**costs, "cost_factor": round(factor, 6)}

    def config(self) -> dict[str, Any]:
        return {"objective": self.objective.config(), "meter": self.meter.config()}
