"""Export of discovered networks, and what they cost to serve.

* :func:`export` writes a trained model as a SavedModel, a ``.keras`` file or
  a TFLite file (float32, or dynamic-range int8), loads it back and compares
  it with the Keras model; :func:`load_trained` / :func:`export_from_dir`
  read a final-training directory (``scripts/export.py``). Image models take
  raw images and carry their preprocessing (:func:`image_serving_model`);
  language models ship their vocabulary.
* :func:`measure_latency_ms`, :func:`count_flops`, :class:`CostMeter`: the
  latency of a model as exported (TFLite interpreter or SavedModel, batch 1,
  median after warm-up), its FLOPs counted from the graph, cached per arch.
* :class:`CostObjective`, :class:`CostAwareReward`: the MnasNet reward
  ``accuracy * (measured / target) ** w`` (soft or hard) for latency-, FLOPs-
  or size-aware searches.
"""

from nas_tf.export.cost import METRICS, CostAwareReward, CostMeter, count_flops, measure_costs
from nas_tf.export.exporter import (
    FORMATS,
    ExportReport,
    ExportSourceError,
    Trained,
    default_output,
    export,
    export_from_dir,
    load_trained,
)
from nas_tf.export.latency import LatencySettings, measure_latency_ms, saved_model_latency_ms, tflite_latency_ms
from nas_tf.export.objective import CostObjective, CostTarget, mnas_factor
from nas_tf.export.saved_model import export_language_model, export_saved_model
from nas_tf.export.serving import (
    image_serving_model,
    is_image_serving_model,
    network_of,
    raw_pixels_of,
    read_vocab,
    write_vocab,
)
from nas_tf.export.tflite import convert_to_tflite, export_tflite, tflite_interpreter, tflite_signature_runner

__all__ = [
    "FORMATS",
    "METRICS",
    "CostAwareReward",
    "CostMeter",
    "CostObjective",
    "CostTarget",
    "ExportReport",
    "ExportSourceError",
    "LatencySettings",
    "Trained",
    "convert_to_tflite",
    "count_flops",
    "default_output",
    "export",
    "export_from_dir",
    "export_language_model",
    "export_saved_model",
    "export_tflite",
    "image_serving_model",
    "is_image_serving_model",
    "load_trained",
    "measure_costs",
    "measure_latency_ms",
    "mnas_factor",
    "network_of",
    "raw_pixels_of",
    "read_vocab",
    "saved_model_latency_ms",
    "tflite_interpreter",
    "tflite_latency_ms",
    "tflite_signature_runner",
    "write_vocab",
]
