#!/usr/bin/env python3
r"""Exports a trained model of any space: SavedModel, .keras or TFLite, checked after writing.

    python scripts/export.py --model_dir=runs/final --format=saved_model
    python scripts/export.py --model_dir=runs/final --format=tflite [--quantize]
    python scripts/export.py --arch=best_arch.json --weights=runs/final/checkpoints --format=keras \
        --output=model.keras

--model_dir is a final-training directory (scripts/train_final.py, or the
final/ of an ENAS search): its model.keras, or else arch.json, metrics.json
and checkpoints/. --arch (a file, a JSON text or a published name such as
nasnet_a or nascell) with --weights (a .weights.h5 or .keras file, or a
TensorFlow checkpoint directory or prefix; none: untrained) builds the network
for --dataset (digits for images, pydoc for recurrent cells) with the builder
options of --options (JSON, as the weights were trained with).

Image models take the raw images users hold (the digits as float32 counts
0-16 of sklearn.datasets.load_digits().images[..., None]; CIFAR-10 as uint8
0-255) and carry the dataset's preprocessing inside. SavedModel and TFLite
signature serving_default(images) -> logits, probabilities. Language models
take int32 token ids (signature serving_default(tokens) -> logits,
probabilities; serve_with_state(tokens, state_0, ...) to carry the recurrent
states), and ship their vocabulary (vocab.txt: line i is the word of id i;
TFLite: batch 1). --quantize writes TFLite with dynamic-range int8 weights.

Every export is loaded back (tf.saved_model.load, keras.saving.load_model,
tf.lite.Interpreter) and compared with the Keras model on a batch of the
dataset's test images or tokens (random ones if the dataset is not at hand):
the largest absolute difference of the logits is printed, and for TFLite
image models the latency on this CPU (batch 1, median). The report is printed
as JSON on stdout. Default --output: <model_dir>/export/<saved_model |
model.keras | model.tflite | model_int8.tflite> (with --arch: beside the arch
file, or in the current directory for a published name).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

from absl import app, flags  # noqa: E402

from nas_tf.cli import drivers  # noqa: E402
from nas_tf.cli.flags import FlagError  # noqa: E402

_MODULE = "nas_tf: export"
FORMATS = ("saved_model", "keras", "tflite")

flags.DEFINE_string("model_dir", None, "A final-training directory to export (model.keras, or arch.json + "
                    "metrics.json + checkpoints/).", module_name=_MODULE)
flags.DEFINE_string("arch", None, "Instead of --model_dir: an arch file, JSON text or published name, built for "
                    "--dataset.", module_name=_MODULE)
flags.DEFINE_string("weights", None, "With --arch: a .weights.h5 or .keras file, or a TensorFlow checkpoint "
                    "(directory or prefix) of the same network (none: untrained).", module_name=_MODULE)
flags.DEFINE_enum("format", "saved_model", list(FORMATS), "What to write: a SavedModel directory, a .keras file or "
                  "a .tflite file.", module_name=_MODULE)
flags.DEFINE_string("output", None, "Where to write (default: <model_dir>/export/<saved_model|model.keras|"
                    "model.tflite|model_int8.tflite>).", module_name=_MODULE)
flags.DEFINE_bool("quantize", False, "TFLite with post-training dynamic-range int8 weights (--format=tflite).",
                  module_name=_MODULE)
flags.DEFINE_string("dataset", None, "The dataset of the model (default: the one the run recorded; with --arch: "
                    "digits for images, pydoc for recurrent cells).", module_name=_MODULE)
flags.DEFINE_string("data_dir", None, "Where the dataset lives (CIFAR-10, PTB).", module_name=_MODULE)
flags.DEFINE_string("options", None, "With --arch: JSON builder options of an image network (e.g. "
                    "'{\"num_cells\": 1}') or language-model options ('{\"units\": 64}').", module_name=_MODULE)
flags.DEFINE_bool("check", True, "Load the export back and compare it with the Keras model on a batch.",
                  module_name=_MODULE)
flags.DEFINE_integer("latency_runs", 100, "Timed runs (median) of the TFLite latency of an image model.",
                     lower_bound=1, module_name=_MODULE)
flags.DEFINE_integer("latency_threads", 1, "Threads of the TFLite interpreter when timing.", lower_bound=1,
                     module_name=_MODULE)
FLAGS = flags.FLAGS


def _options() -> dict:
    if FLAGS.options is None:
        return {}
    if FLAGS.arch is None:
        raise FlagError(f"--options={FLAGS.options}: builder options go with --arch (a --model_dir records its own)")
    try:
        options = json.loads(FLAGS.options)
    except json.JSONDecodeError as e:
        raise FlagError(f"--options={FLAGS.options}: not JSON ({e})") from None
    if not isinstance(options, dict):
        raise FlagError(f"--options={FLAGS.options}: a JSON object of builder options is expected")
    return options


def _default_output() -> str:
    from nas_tf.export import default_output

    if FLAGS.model_dir is not None:
        return default_output(FLAGS.model_dir, FLAGS.format, FLAGS.quantize)
    base = os.path.dirname(os.path.abspath(FLAGS.arch)) if os.path.isfile(FLAGS.arch) else os.getcwd()
    return default_output(base, FLAGS.format, FLAGS.quantize)


def run_export() -> dict:
    """Loads the trained model of --model_dir or --arch/--weights, exports it in --format, checks it."""
    drivers.setup_logging()
    if (FLAGS.model_dir is None) == (FLAGS.arch is None):
        given = f"--model_dir={FLAGS.model_dir} and --arch={FLAGS.arch}" if FLAGS.model_dir else "neither"
        raise FlagError(f"give one of --model_dir (a final-training directory) or --arch (with --weights); got {given}")
    if FLAGS.weights is not None and FLAGS.arch is None:
        raise FlagError(f"--weights={FLAGS.weights} goes with --arch; --model_dir={FLAGS.model_dir} holds its own weights")
    if FLAGS.quantize and FLAGS.format != "tflite":
        raise FlagError(f"--quantize applies to --format=tflite, not --format={FLAGS.format}")
    if FLAGS.output is not None:
        suffix = {"keras": ".keras", "tflite": ".tflite"}.get(FLAGS.format)
        if suffix and not FLAGS.output.endswith(suffix):
            raise FlagError(f"--output={FLAGS.output}: a --format={FLAGS.format} file must end in {suffix}")
    options = _options()
    from nas_tf.export import ExportSourceError, LatencySettings, export, load_trained

    try:
        trained = load_trained(
            FLAGS.model_dir, arch=FLAGS.arch, weights=FLAGS.weights, dataset=FLAGS.dataset,
            data_dir=FLAGS.data_dir, options=options,
        )
    except ExportSourceError as e:
        raise FlagError(f"--{e.field}={e.value}: {e.reason}") from None
    output = FLAGS.output or _default_output()
    latency = LatencySettings(runs=FLAGS.latency_runs, warmup=max(5, FLAGS.latency_runs // 5),
                              num_threads=FLAGS.latency_threads)
    report = export(
        trained.model, output, FLAGS.format, vocab=trained.vocab, quantize=FLAGS.quantize, check=FLAGS.check,
        check_inputs=trained.check_inputs, latency=latency,
    )
    result = {"source": trained.source, "task": trained.task, "dataset": trained.dataset, **report.to_dict()}
    print(drivers.dump(result))
    return result


main = drivers.main(run_export)

if __name__ == "__main__":
    app.run(main)
