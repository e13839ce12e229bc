"""Inference latency of a model as exported, on this CPU.

Latency is measured the way a served model runs: the model is exported (a
TFLite flatbuffer by default, or a SavedModel), one input of batch 1 is
fed ``warmup`` times, then ``runs`` timed calls follow; the median of the
timed calls is the latency, in milliseconds. For a TFLite image model only
``Interpreter.invoke`` is timed (the input is set once), so the Python
overhead of the call stays out (a model of several signatures, a language
model, is timed through its ``serving_default`` runner); for a SavedModel
the call of its ``serving_default`` signature is timed, reading the result
back.

Medians of a shared, noisy machine vary by a few percent between runs:
compare latencies measured in one run, side by side.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from typing import Any

import keras
import numpy as np

__all__ = ["LatencySettings", "measure_latency_ms", "saved_model_latency_ms", "tflite_latency_ms"]

BACKENDS = ("tflite", "saved_model")


@dataclasses.dataclass(frozen=True)
class LatencySettings:
    """How latency is measured.

    Args:
        backend: ``"tflite"`` (the TFLite interpreter, float32) or
            ``"saved_model"`` (TensorFlow running the SavedModel).
        runs: timed calls; the latency is their median.
        warmup: untimed calls first.
        num_threads: CPU threads of the TFLite interpreter (TensorFlow's own
            thread pools for ``saved_model``).
    """

    backend: str = "tflite"
    runs: int = 50
    warmup: int = 10
    num_threads: int = 1

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"latency backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.runs < 1 or self.warmup < 0 or self.num_threads < 1:
            raise ValueError(
                f"runs and num_threads must be >= 1 and warmup >= 0, got runs={self.runs}, "
                f"warmup={self.warmup}, num_threads={self.num_threads}"
            )


def _median_ms(call, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def _example(dtype: Any, shape, seed: int = 0) -> np.ndarray:
    """A batch-1 input of ``dtype``: uniform pixels (uint8 0-255, floats in [0, 1)), or token ids 0."""
    rng = np.random.default_rng(seed)
    shape = [1 if (d is None or d < 0) else int(d) for d in shape]
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape).astype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        return np.zeros(shape, dtype)
    return rng.random(shape).astype(dtype)


def tflite_latency_ms(model: str | bytes, runs: int = 50, warmup: int = 10, num_threads: int = 1) -> float:
    """Median latency (ms) of one ``invoke`` of a TFLite model at batch 1.

    A model of one signature is timed by ``Interpreter.invoke`` alone (the
    input set once, resized to batch 1); with several signatures the
    ``serving_default`` runner is timed, Python conversions included.

    Args:
        model: a ``.tflite`` path or the flatbuffer bytes.
        runs: timed invocations.
        warmup: untimed invocations first.
        num_threads: interpreter threads.
    """
    from nas_tf.export.tflite import tflite_interpreter

    interpreter = tflite_interpreter(model, num_threads)
    signatures = interpreter.get_signature_list()
    if len(signatures) <= 1:
        # One subgraph: set the input once, time ``invoke`` alone.
        for d in interpreter.get_input_details():
            interpreter.resize_tensor_input(d["index"], [1 if s < 0 else s for s in d["shape_signature"]])
        interpreter.allocate_tensors()
        for d in interpreter.get_input_details():
            interpreter.set_tensor(d["index"], _example(d["dtype"], d["shape"]))
        call = interpreter.invoke
    else:
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        runner = interpreter.get_signature_runner(key)
        inputs = {name: _example(d["dtype"], d["shape_signature"]) for name, d in runner.get_input_details().items()}

        def call():
            runner(**inputs)

    return _median_ms(call, runs, warmup)


def saved_model_latency_ms(path: str, runs: int = 50, warmup: int = 10) -> float:
    """Median latency (ms) of the ``serving_default`` signature of a SavedModel at batch 1."""
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    fn = loaded.signatures["serving_default"]
    _, kwargs = fn.structured_input_signature
    feed = {name: tf.constant(_example(spec.dtype.as_numpy_dtype, spec.shape.as_list())) for name, spec in kwargs.items()}

    def call():
        out = fn(**feed)
        np.asarray(next(iter(out.values())))

    return _median_ms(call, runs, warmup)


def measure_latency_ms(model: keras.Model, settings: LatencySettings | None = None) -> float:
    """Latency (ms, batch 1) of ``model`` as exported: an image serving model or a language model.

    Args:
        model: what is served (:func:`~nas_tf.export.image_serving_model` of a
            network, or a language model).
        settings: backend, runs, warm-up, threads (None: the defaults).

    Example:

    >>> measure_latency_ms(image_serving_model(net, data.raw_pixels))  # doctest: +SKIP
    0.021
    """
    settings = settings or LatencySettings()
    if settings.backend == "tflite":
        from nas_tf.export.tflite import convert_to_tflite

        return tflite_latency_ms(convert_to_tflite(model), settings.runs, settings.warmup, settings.num_threads)
    from nas_tf.export.saved_model import export_language_model, export_saved_model
    from nas_tf.export.serving import is_language_model

    with tempfile.TemporaryDirectory(prefix="nas_tf_latency_") as tmp:
        path = f"{tmp}/saved_model"
        if is_language_model(model):
            export_language_model(model, path)
        else:
            export_saved_model(model, path)
        return saved_model_latency_ms(path, settings.runs, settings.warmup)
