"""One export path for every trained model: SavedModel, ``.keras`` or TFLite, checked after writing.

:func:`export` writes a model in one format and checks the file: it loads it
back (``tf.saved_model.load``, ``keras.saving.load_model``,
``tf.lite.Interpreter``), runs it on a batch and reports the largest
absolute difference from the Keras model in memory (and, for classifiers,
how many predictions agree); a TFLite image model also gets its latency on
this CPU. :func:`load_trained` reads what a training run left (a final
training directory, or an arch file and weights), and :func:`export_from_dir`
does both: it is what ``scripts/export.py``, final training and the results
of a run directory call.

What is exported serves without nas_tf (portable SavedModel, pure-TF paths
of the custom ops):

* image models take the raw images users hold (``images``: uint8 0-255 for
  CIFAR-10, float 0-16 for the digits: :data:`nas_tf.data.images.RAW_PIXELS`)
  and carry the preprocessing inside; outputs ``logits`` and
  ``probabilities`` (``[batch, classes]``);
* language models take int32 token ids (``tokens``, ``[batch, T]``) and ship
  the vocabulary that maps words to ids (``vocab.txt``: line ``i`` is the
  word of id ``i``); outputs ``logits`` and ``probabilities`` (``[batch, T,
  vocab]``), and ``serve_with_state`` carries the recurrent states across
  calls.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from nas_tf.export.latency import LatencySettings, tflite_latency_ms
from nas_tf.export.serving import (
    INPUT_NAME,
    TOKENS_NAME,
    VOCAB_FILE,
    image_serving_model,
    is_image_serving_model,
    is_language_model,
    random_raw_images,
    raw_pixels_of,
    read_vocab,
)

log = logging.getLogger("nas_tf.export")

FORMATS = ("saved_model", "keras", "tflite")
CHECK_BATCH = 8
EXPORT_LATENCY = LatencySettings(runs=100, warmup=20)

__all__ = [
    "FORMATS",
    "ExportReport",
    "ExportSourceError",
    "Trained",
    "default_output",
    "export",
    "export_from_dir",
    "load_trained",
    "token_rows",
]


class ExportSourceError(ValueError):
    """The trained model to export cannot be found or read.

    Attributes:
        field: what was wrong (``"model_dir"``, ``"arch"``, ``"weights"``,
            ``"dataset"``): the flag of ``scripts/export.py``.
        value: the value given.
        reason: why, in a few words.
    """

    def __init__(self, field: str, value: Any, reason: str):
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}={value}: {reason}")


@dataclasses.dataclass
class ExportReport:
    """What :func:`export` wrote and how the check went.

    Args:
        format: ``"saved_model"``, ``"keras"`` or ``"tflite"``.
        path: the artifact (a directory for a SavedModel).
        files: other files written with it (the vocabulary).
        quantized: dynamic-range int8 (TFLite).
        size_bytes: size of the artifact on disk.
        checked_on: examples of the check (images, or token rows).
        max_abs_diff: largest ``|output - Keras output|`` of the logits.
        agreement: fraction of images (or tokens) whose arg-max agrees.
        latency_ms: median batch-1 latency of a TFLite image model on this CPU.
    """

    format: str
    path: str
    files: list[str] = dataclasses.field(default_factory=list)
    quantized: bool = False
    size_bytes: int = 0
    checked_on: int = 0
    max_abs_diff: float | None = None
    agreement: float | None = None
    latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for a terminal."""
        kind = "tflite (int8 weights)" if self.quantized else self.format
        text = f"{kind}: {self.path} ({self.size_bytes / 1e6:.2f} MB)"
        if self.max_abs_diff is not None:
            text += f"; max |diff| vs Keras {self.max_abs_diff:.3g} on {self.checked_on} examples"
            if self.agreement is not None:
                text += f" ({self.agreement:.1%} same prediction)"
        if self.latency_ms is not None:
            text += f"; latency {self.latency_ms:.4g} ms (batch 1, TFLite interpreter, this CPU)"
        return text


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _served(model: keras.Model, raw) -> keras.Model:
    if is_language_model(model) or is_image_serving_model(model):
        return model
    if raw is None:
        raise ValueError(
            f"model {model.name!r} reads preprocessed images; pass raw= (ImageData.raw_pixels) so the export "
            "carries the preprocessing, or wrap it with nas_tf.export.image_serving_model"
        )
    return image_serving_model(model, raw)


def _check_inputs(model: keras.Model, given: np.ndarray | None) -> np.ndarray:
    if given is not None:
        return np.asarray(given)
    if is_language_model(model):
        rng = np.random.default_rng(0)
        return rng.integers(0, model.vocab_size, size=(2, 12)).astype(np.int32)
    return random_raw_images(raw_pixels_of(model), model.inputs[0].shape[1:], CHECK_BATCH)


def _keras_logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    if is_language_model(model):
        return np.asarray(model(x, training=False)[0])
    return np.asarray(model(x, training=False))


def _loaded_logits(fmt: str, path: str, model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The logits of the written artifact, loaded back, on ``x``."""
    language = is_language_model(model)
    name = TOKENS_NAME if language else INPUT_NAME
    if fmt == "keras":
        return _keras_logits(keras.saving.load_model(path), x)
    if fmt == "saved_model":
        import tensorflow as tf

        fn = tf.saved_model.load(path).signatures["serving_default"]
        return fn(**{name: tf.constant(x)})["logits"].numpy()
    from nas_tf.export.tflite import tflite_signature_runner

    runner = tflite_signature_runner(path)
    if language:  # a fixed batch of 1: row by row
        return np.concatenate([runner(**{name: x[i : i + 1]})["logits"] for i in range(len(x))])
    return runner(**{name: x})["logits"]


def export(
    model: keras.Model,
    path: str,
    format: str = "saved_model",
    *,
    raw=None,
    vocab: Sequence[str] | None = None,
    quantize: bool = False,
    check: bool = True,
    check_inputs: np.ndarray | None = None,
    latency: LatencySettings | None = EXPORT_LATENCY,
    keep_custom_ops: bool = False,
) -> ExportReport:
    """Writes ``model`` in ``format`` to ``path``, loads it back and compares it with ``model``.

    Args:
        model: an image serving model (raw images to logits,
            :func:`~nas_tf.export.image_serving_model`), an image network
            with ``raw`` (then wrapped), or a language model.
        path: the destination (a directory for a SavedModel, a ``.keras`` or
            ``.tflite`` file); written atomically, replaced if it exists.
        format: ``"saved_model"``, ``"keras"`` or ``"tflite"``.
        raw: what users of the dataset hold (``ImageData.raw_pixels``), for a
            network without its preprocessing.
        vocab: a language model's words (``TextCorpus.vocab``), shipped with
            the export (``vocab.txt``).
        quantize: TFLite with dynamic-range int8 weights.
        check: load the artifact back and compare outputs on a batch.
        check_inputs: that batch: raw images or token ids (default: random
            raw images / token ids; real ones make ``agreement`` meaningful).
        latency: how the latency of a TFLite image model is measured (None:
            not measured).
        keep_custom_ops: keep nas_tf's compiled ops in a SavedModel (it then
            loads only after ``import nas_tf``).

    Returns:
        An :class:`ExportReport`.

    Example:

    >>> report = export(serving_model, "runs/final/model.tflite", "tflite")  # doctest: +SKIP
    >>> print(report.describe())  # doctest: +SKIP
    tflite: runs/final/model.tflite (0.05 MB); max |diff| vs Keras 2.4e-07 on 8 examples ...
    """
    from nas_tf.export.files import atomic_file
    from nas_tf.export.saved_model import export_language_model, export_saved_model
    from nas_tf.export.serving import write_vocab
    from nas_tf.export.tflite import export_tflite

    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; formats: {', '.join(FORMATS)}")
    if quantize and format != "tflite":
        raise ValueError(f"quantize applies to the tflite format, not {format!r}")
    model = _served(model, raw)
    language = is_language_model(model)
    if vocab is not None and not language:
        raise ValueError("a vocabulary goes with a language model, not an image model")
    path = os.path.abspath(path)
    files: list[str] = []
    if format == "saved_model":
        if language:
            export_language_model(model, path, vocab=vocab, keep_custom_ops=keep_custom_ops)
            if vocab is not None:
                files.append(os.path.join(path, "assets.extra", VOCAB_FILE))
        else:
            export_saved_model(model, path, keep_custom_ops=keep_custom_ops)
    elif format == "keras":
        if not path.endswith(".keras"):
            raise ValueError(f"a Keras file must end in .keras, got {path}")
        with atomic_file(path) as tmp:
            model.save(tmp)
        if vocab is not None:
            files.append(write_vocab(os.path.join(os.path.dirname(path), VOCAB_FILE), vocab))
    else:
        export_tflite(model, path, quantize=quantize, vocab=vocab)
        if vocab is not None:
            files.append(os.path.join(os.path.dirname(path), VOCAB_FILE))
    report = ExportReport(format, path, files, quantized=quantize, size_bytes=_size(path))
    if check:
        x = _check_inputs(model, check_inputs)
        expected = _keras_logits(model, x)
        got = _loaded_logits(format, path, model, x)
        report.checked_on = int(len(x))
        report.max_abs_diff = float(np.abs(got - expected).max())
        report.agreement = float(np.mean(got.argmax(-1) == expected.argmax(-1)))
    if format == "tflite" and not language and latency is not None:
        report.latency_ms = tflite_latency_ms(path, latency.runs, latency.warmup, latency.num_threads)
    log.info("exported %s", report.describe())
    return report


# ------------------------------------------------------------------ loading


@dataclasses.dataclass
class Trained:
    """A trained model ready to export.

    Args:
        model: an image serving model (raw images to logits) or a language model.
        task: ``"image"`` or ``"text"``.
        dataset: the dataset it was trained on (None: unknown).
        vocab: a language model's words (None for images).
        arch: its architecture, if known.
        check_inputs: real raw images or token ids of the dataset's test
            split, when the dataset is at hand (else None: random ones).
        source: where it was read from.
    """

    model: keras.Model
    task: str
    dataset: str | None = None
    vocab: tuple[str, ...] | None = None
    arch: Any = None
    check_inputs: np.ndarray | None = None
    source: str = ""


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _base_dataset(name: str | None) -> str | None:
    """``"pydoc-3.11"`` -> ``"pydoc"`` (corpus names carry the Python version)."""
    if name is None:
        return None
    return name.split("-", 1)[0]


def _image_data(dataset: str, data_dir: str | None, required: bool):
    from nas_tf.data.images import DatasetUnavailableError, load_image_data

    try:
        return load_image_data(dataset, data_dir=data_dir)
    except DatasetUnavailableError as e:
        if required:
            raise ExportSourceError("dataset", dataset, str(e)) from None
        return None
    except ValueError as e:
        raise ExportSourceError("dataset", dataset, str(e)) from None


def _corpus(dataset: str, data_dir: str | None):
    from nas_tf.data.images import DatasetUnavailableError
    from nas_tf.data.text import load_text_data

    try:
        return load_text_data(dataset, data_dir=data_dir)
    except (DatasetUnavailableError, ValueError) as e:
        raise ExportSourceError("dataset", dataset, str(e)) from None


def token_rows(corpus, rows: int = 4, steps: int = 20) -> np.ndarray:
    """The first ``rows x steps`` token ids of a corpus's test split, ``[rows, steps]``: a check batch."""
    ids = corpus.splits["test"][: rows * steps]
    if len(ids) < rows * steps:
        ids = corpus.splits["train"][: rows * steps]
    return np.asarray(ids, np.int32).reshape(rows, steps)


def _finish_image(network_or_serving: keras.Model, dataset: str | None, data_dir: str | None, source: str,
                  arch=None, data=None) -> Trained:
    from nas_tf.data.images import RAW_PIXELS

    model = network_or_serving
    if data is None and dataset is not None:
        data = _image_data(_base_dataset(dataset), data_dir, required=False)
    if not is_image_serving_model(model):
        raw = data.raw_pixels if data is not None else RAW_PIXELS.get(_base_dataset(dataset))
        if raw is None:
            raise ExportSourceError(
                "dataset", dataset, f"{source} holds a network without its preprocessing and the dataset is unknown; "
                f"name it ({', '.join(RAW_PIXELS)})"
            )
        model = image_serving_model(model, raw)
    check = None
    if data is not None and tuple(data.input_shape) == tuple(model.inputs[0].shape[1:]):
        check = data.raw_images("test")[:64]
    return Trained(model, "image", dataset, None, arch, check, source)


def _finish_text(model: keras.Model, dataset: str | None, data_dir: str | None, source: str, vocab=None,
                 arch=None, corpus=None) -> Trained:
    if vocab is None:
        if dataset is None:
            raise ExportSourceError("dataset", dataset, f"{source}: no {VOCAB_FILE} and no dataset to read the vocabulary from")
        corpus = corpus or _corpus(_base_dataset(dataset), data_dir)
        vocab = corpus.vocab
    if len(vocab) != model.vocab_size:
        raise ExportSourceError(
            "dataset", dataset, f"its vocabulary has {len(vocab)} words but the model in {source} predicts {model.vocab_size}"
        )
    check = token_rows(corpus) if corpus is not None else None
    return Trained(model, "text", dataset, tuple(vocab), arch, check, source)


def _task_of_space(space: str) -> str:
    from nas_tf.models.language_model import recurrent_spaces
    from nas_tf.models.registry import image_spaces

    if space in image_spaces():
        return "image"
    if space in recurrent_spaces():
        return "text"
    raise ValueError(
        f"no model of space {space!r} can be exported; image spaces: {', '.join(image_spaces())}; "
        f"recurrent cells: {', '.join(recurrent_spaces())}"
    )


def _build(arch, task: str, dataset: str, data_dir: str | None, options: dict[str, Any]):
    """The untrained model of ``arch`` on ``dataset`` and the data (``(model, data)``)."""
    if task == "image":
        from nas_tf.models.registry import build_image_model

        data = _image_data(dataset, data_dir, required=True)
        try:
            network = build_image_model(arch, data.input_shape, data.num_classes, **options)
        except (TypeError, ValueError) as e:
            raise ExportSourceError("arch", getattr(arch, "space", arch), f"cannot build it: {e}") from None
        return network, data
    from nas_tf.models.language_model import FINAL_MODEL_OPTIONS, build_language_model

    corpus = _corpus(dataset, data_dir)
    settings = {**FINAL_MODEL_OPTIONS, **options}
    try:
        model = build_language_model(corpus.vocab_size, arch, **settings)
    except (TypeError, ValueError) as e:
        raise ExportSourceError("arch", getattr(arch, "space", arch), f"cannot build it: {e}") from None
    model(np.zeros((1, 2), np.int32))
    return model, corpus


def _load_weights(model: keras.Model, weights: str) -> None:
    """Weights from a ``.weights.h5`` / ``.keras`` file or a TensorFlow checkpoint (directory or prefix)."""
    import tensorflow as tf

    if weights.endswith((".weights.h5", ".keras")):
        if not os.path.isfile(weights):
            raise ExportSourceError("weights", weights, "no such file")
        try:
            model.load_weights(weights)
        except Exception as e:  # noqa: BLE001 - shape or layer mismatches come in many types
            raise ExportSourceError("weights", weights, f"do not fit the model: {str(e).splitlines()[0][:300]}") from None
        return
    prefix = tf.train.latest_checkpoint(weights) if os.path.isdir(weights) else weights
    if not prefix or not tf.io.gfile.exists(prefix + ".index"):
        raise ExportSourceError(
            "weights", weights, "not a .weights.h5 or .keras file, nor a TensorFlow checkpoint (directory or prefix)"
        )
    try:
        tf.train.Checkpoint(model=model).read(prefix).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ExportSourceError("weights", weights, f"do not fit the model: {str(e).splitlines()[0][:300]}") from None


def load_trained(
    model_dir: str | None = None,
    *,
    arch: Any = None,
    weights: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    options: dict[str, Any] | None = None,
) -> Trained:
    """The trained model of a final-training directory, or of an arch and its weights.

    Args:
        model_dir: a directory written by final training
            (``scripts/train_final.py``, the ``final/`` of an ENAS search):
            its ``model.keras``, or else ``arch.json``, ``metrics.json`` and
            the latest of ``checkpoints/``.
        arch: instead of ``model_dir``: an arch (file, JSON, published name
            or :class:`~nas_tf.spaces.Arch`), built for ``dataset``.
        weights: with ``arch``: a ``.weights.h5`` or ``.keras`` file, or a
            TensorFlow checkpoint (a directory such as ``final/checkpoints``,
            or a prefix) saved from the same network (None: untrained).
        dataset: the dataset (default: the one the run recorded; with
            ``arch``: ``digits`` for images, ``pydoc`` for text).
        data_dir: where the dataset lives (CIFAR-10, PTB).
        options: with ``arch``: builder options of an image network
            (e.g. ``num_cells``) or language-model options (``units``, ...),
            as the weights were trained with.

    Returns:
        A :class:`Trained`.

    Raises:
        ExportSourceError: naming the argument and its value.
    """
    if (model_dir is None) == (arch is None):
        raise ExportSourceError("model_dir", model_dir, "give a final-training directory or an arch, not both or neither")
    if model_dir is not None:
        if weights is not None:
            raise ExportSourceError("weights", weights, "goes with an arch; a model directory holds its own")
        return _load_dir(model_dir, dataset, data_dir)
    import nas_tf

    try:
        arch = nas_tf.load_arch(arch)
    except nas_tf.ArchError as e:
        raise ExportSourceError("arch", arch, str(e)) from None
    try:
        task = _task_of_space(arch.space)
    except ValueError as e:
        raise ExportSourceError("arch", arch.space, str(e)) from None
    dataset = dataset or ("digits" if task == "image" else "pydoc")
    model, data = _build(arch, task, dataset, data_dir, dict(options or {}))
    if weights is not None:
        _load_weights(model, weights)
    source = f"arch {arch.space}" + (f" with weights {weights}" if weights else " (untrained)")
    if task == "image":
        return _finish_image(model, dataset, data_dir, source, arch=arch, data=data)
    return _finish_text(model, dataset, data_dir, source, arch=arch, corpus=data)


def _load_dir(model_dir: str, dataset: str | None, data_dir: str | None) -> Trained:
    import nas_tf

    if not os.path.isdir(model_dir):
        raise ExportSourceError("model_dir", model_dir, "no such directory")
    metrics = _read_json(os.path.join(model_dir, "metrics.json")) or {}
    dataset = dataset or metrics.get("dataset")
    arch_path = os.path.join(model_dir, "arch.json")
    arch = nas_tf.load_arch(arch_path) if os.path.exists(arch_path) else None
    keras_path = os.path.join(model_dir, "model.keras")
    vocab_path = os.path.join(model_dir, VOCAB_FILE)
    vocab = read_vocab(vocab_path) if os.path.exists(vocab_path) else None
    if os.path.exists(keras_path):
        try:
            model = keras.saving.load_model(keras_path)
        except Exception as e:  # noqa: BLE001 - Keras raises many types for a bad file
            raise ExportSourceError("model_dir", model_dir, f"cannot load model.keras: {str(e).splitlines()[0][:300]}") from None
        source = keras_path
    elif arch is not None and metrics.get("config") and os.path.isdir(os.path.join(model_dir, "checkpoints")):
        task = _task_of_space(arch.space)
        config = metrics["config"]
        options = config.get("builder_options" if task == "image" else "model_options", {})
        model, _ = _build(arch, task, _base_dataset(dataset), data_dir, options)
        _load_weights(model, os.path.join(model_dir, "checkpoints"))
        source = os.path.join(model_dir, "checkpoints")
    else:
        raise ExportSourceError(
            "model_dir", model_dir, "no trained model in it (model.keras, or arch.json + metrics.json + checkpoints/)"
        )
    if is_language_model(model):
        corpus = None
        if vocab is None or dataset is not None:
            corpus = _corpus_if_available(_base_dataset(dataset), data_dir, metrics.get("vocab_size"))
        return _finish_text(model, dataset, data_dir, source, vocab=vocab, arch=arch, corpus=corpus)
    return _finish_image(model, dataset, data_dir, source, arch=arch)


def _corpus_if_available(dataset: str | None, data_dir: str | None, vocab_size: int | None):
    """The corpus of a run, if it loads and has the recorded vocabulary size (else None)."""
    if dataset is None:
        return None
    try:
        corpus = _corpus(dataset, data_dir)
    except ExportSourceError:
        return None
    if vocab_size is not None and corpus.vocab_size != vocab_size:
        return None
    return corpus


def default_output(model_dir: str, format: str, quantize: bool = False) -> str:
    """Where :func:`export_from_dir` writes by default: ``<model_dir>/export/<saved_model|model.keras|model.tflite>``."""
    name = {"saved_model": "saved_model", "keras": "model.keras", "tflite": "model.tflite"}[format]
    if quantize:
        name = "model_int8.tflite"
    return os.path.join(model_dir, "export", name)


def export_from_dir(
    model_dir: str,
    output: str | None = None,
    format: str = "saved_model",
    *,
    quantize: bool = False,
    dataset: str | None = None,
    data_dir: str | None = None,
    check: bool = True,
) -> ExportReport:
    """Exports the trained model of a final-training directory (:func:`load_trained` then :func:`export`).

    Args:
        model_dir: the directory (``scripts/train_final.py --model_dir``, an
            ENAS search's ``final/``).
        output: the destination (default: :func:`default_output`).
        format: ``"saved_model"``, ``"keras"`` or ``"tflite"``.
        quantize: TFLite with dynamic-range int8 weights.
        dataset: override the dataset the run recorded.
        data_dir: where the dataset lives (for the check batch and the vocabulary).
        check: load the export back and compare it with the Keras model.

    Example:

    >>> export_from_dir("runs/final", format="tflite").latency_ms  # doctest: +SKIP
    0.021
    """
    trained = load_trained(model_dir, dataset=dataset, data_dir=data_dir)
    output = output or default_output(model_dir, format, quantize)
    return export(trained.model, output, format, vocab=trained.vocab, quantize=quantize, check=check,
                  check_inputs=trained.check_inputs)
