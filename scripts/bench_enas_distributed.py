#!/usr/bin/env python3
"""The ENAS shared-weights step on one device vs mirrored over several replicas.

Times, in one run and side by side, the shared-weights phase of an ENAS
search (:meth:`~nas_tf.tasks.image.supernet.ImageSupernetTask.train_epoch`:
input pipeline, one sampled arch per global step, forward, backward,
all-reduce, clipped Nesterov update, the loss read back every step) for the
same **global** batch:

* one device (``--strategy=one_device``: the whole global batch on one
  replica),
* ``mirrored`` over ``--replicas`` devices (the global batch split over them,
  cross-replica batch norm, gradients all-reduced): the local GPUs when there
  are enough, else that many logical CPU devices (``--num_cpu_devices``).

Reports steps/s and examples/s and the speed-up. A second table measures the
choice the search makes -- one sampled arch per global step, run by every
replica -- against the alternative, one arch per replica (each arch then
trains on ``global_batch / replicas`` examples), with
:meth:`~nas_tf.tasks.image.supernet.ImageSupernetTask.shared_step` on the
same global batch. Writes both into the ``distributed_enas`` section of
docs/benchmarks.md. A report, not a test.

    python scripts/bench_enas_distributed.py                  # macro, 12 layers, 36 filters, 32x32x3
    python scripts/bench_enas_distributed.py --op_selections=switch,all --steps=20
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("replicas", 2, "Replicas of the mirrored case (GPUs, else logical CPU devices).", lower_bound=2)
flags.DEFINE_integer("global_batch", 64, "Examples per global step (both cases).", lower_bound=2)
flags.DEFINE_integer("layers", 12, "Macro supernet layers (the paper's search: 12).", lower_bound=1)
flags.DEFINE_integer("filters", 36, "Macro supernet filters (the paper's search: 36).", lower_bound=2)
flags.DEFINE_integer("image_size", 32, "Side of the random square RGB inputs.", lower_bound=4)
flags.DEFINE_list("op_selections", ["switch"], "Macro op selections to time (switch, all).")
flags.DEFINE_integer("steps", 10, "Timed global steps per case (after a warm-up pass that traces).", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed passes per case; the fastest is reported.", lower_bound=1)
flags.DEFINE_bool("per_replica_archs", True, "Also time one arch per replica (first op selection; one more trace).")
flags.DEFINE_string(
    "output", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md"),
    "Markdown file to update.",
)
FLAGS = flags.FLAGS


def _task(strategy, data, space, op_selection, batch_size, steps):
    import keras

    from nas_tf.models.enas_macro import EnasMacroSupernet
    from nas_tf.tasks.image.supernet import ImageSupernetTask, SharedTrainingConfig

    keras.utils.set_random_seed(0)
    with strategy.scope():
        supernet = EnasMacroSupernet(space, data.num_classes, filters=FLAGS.filters, op_selection=op_selection)
    config = SharedTrainingConfig(batch_size=batch_size, steps_per_epoch=steps)
    return ImageSupernetTask(supernet, data, config, strategy=strategy)


def _time_pass(task, sample):
    """Seconds of one shared-weights pass (``steps`` global steps) and its step count."""
    t0 = time.perf_counter()
    metrics = task.train_epoch(0, sample)
    return time.perf_counter() - t0, int(metrics["steps"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.global_batch % FLAGS.replicas:
        raise app.UsageError(f"--global_batch={FLAGS.global_batch} must be a multiple of --replicas={FLAGS.replicas}")
    for sel in FLAGS.op_selections:
        if sel not in ("switch", "all"):
            raise app.UsageError(f"--op_selections: unknown {sel!r} (switch, all)")
    import tensorflow as tf
    from absl import logging as absl_logging

    from nas_tf.distribute import make_strategy

    absl_logging.set_verbosity(absl_logging.WARNING)  # tf.distribute's INFO line per all-reduce

    gpus = tf.config.list_physical_devices("GPU")
    on_gpus = len(gpus) >= FLAGS.replicas
    if gpus and not on_gpus:
        raise app.UsageError(f"--replicas={FLAGS.replicas}: this machine has {len(gpus)} GPU(s); use --replicas={len(gpus)}")
    # Before any TensorFlow op: the CPU split is fixed at the first one.
    mirrored = make_strategy("mirrored", num_gpus=FLAGS.replicas if on_gpus else None,
                             num_cpu_devices=0 if on_gpus else FLAGS.replicas)
    one = make_strategy("one_device")
    from nas_tf.data.images import Augmentation, ImageData
    from nas_tf.spaces.enas_macro import EnasMacroSpace
    from nas_tf.utils.report import machine_description, markdown_table, update_section

    rng = np.random.default_rng(0)
    n = FLAGS.global_batch * FLAGS.steps
    shape = (FLAGS.image_size, FLAGS.image_size, 3)
    split = (rng.normal(size=(n,) + shape).astype(np.float32), rng.integers(0, 10, n).astype(np.int32))
    data = ImageData("random", {"train": split, "validation": split}, 10, Augmentation())
    space = EnasMacroSpace(num_layers=FLAGS.layers)
    devices = f"{FLAGS.replicas} GPUs" if on_gpus else f"{FLAGS.replicas} logical CPU devices"
    rows, choice_rows = [], []
    for sel in FLAGS.op_selections:
        cases = [
            ("one device", one, FLAGS.global_batch),
            (f"mirrored, {devices}", mirrored, FLAGS.global_batch // FLAGS.replicas),
        ]
        tasks = [(label, _task(s, data, space, sel, b, FLAGS.steps), b) for label, s, b in cases]
        archs = space.decisions.random_tokens(rng, 1000)
        counter = iter(range(10**9))

        def sample():
            return archs[next(counter) % len(archs)]

        first, passes = {}, {label: [] for label, _, _ in tasks}
        for label, task, _ in tasks:
            first[label] = _time_pass(task, sample)[0]  # trace + compile + one pass
        for _ in range(FLAGS.repeats):  # interleaved: both cases see the same machine load
            for label, task, _ in tasks:
                seconds, steps = _time_pass(task, sample)
                passes[label].append(seconds / steps)
        base = min(passes[tasks[0][0]])
        for label, task, per_replica in tasks:
            t = min(passes[label])
            rows.append([sel, label, task.replicas, per_replica, FLAGS.global_batch, 1000 * t, 1 / t,
                         FLAGS.global_batch / t, base / t, max(passes[label]) / t, f"{first[label]:.0f}"])
            print(rows[-1], flush=True)
        if FLAGS.per_replica_archs and sel == FLAGS.op_selections[0]:
            from nas_tf.utils.report import median_step_time

            task = tasks[1][1]
            x, y = split[0][: FLAGS.global_batch], split[1][: FLAGS.global_batch]
            names = "ABCDEFGH"
            variants = [(f"one arch per global step (the search): arch {names[r]}", archs[r]) for r in range(task.replicas)]
            variants.append((f"one arch per replica: archs {names[:task.replicas]}",
                             np.stack([archs[r] for r in range(task.replicas)])))
            for label, tokens in variants:
                t0 = time.perf_counter()
                task.shared_step(x, y, tokens)  # traces the variant
                trace = time.perf_counter() - t0
                t = median_step_time(task.shared_step, (x, y, tokens), FLAGS.steps, warmup=1)
                n_archs = 1 if tokens.ndim == 1 else task.replicas
                choice_rows.append([sel, label, FLAGS.global_batch // n_archs, 1000 * t, FLAGS.global_batch / t,
                                    n_archs / t, f"{trace:.0f}"])
                print(choice_rows[-1], flush=True)
    headers = ["op selection", "case", "replicas", "per-replica batch", "global batch", "ms / step", "steps / s",
               "examples / s", "speed-up vs one device", "slowest / fastest pass", "first pass s (trace)"]
    cpu_note = (
        "" if on_gpus else
        f"\n**No speed-up is possible here**: the {FLAGS.replicas} logical CPU devices split the same CPU cores "
        "(they share its thread pools), so the mirrored case does the same arithmetic plus the all-reduces, "
        "the cross-replica batch-norm statistics and a per-replica copy of the step; the ratio measures that "
        "overhead. On a multi-GPU host each replica has its own device.\n"
    )
    choice_text = ""
    if choice_rows:
        choice_headers = ["op selection", "mirrored step", "examples per arch", "ms / step", "examples / s",
                          "archs trained / s", "first step s (trace)"]
        ratio = choice_rows[-1][3] / float(np.mean([r[3] for r in choice_rows[:-1]]))
        choice_text = f"""
One arch per global step (what the search does) vs one arch per replica, mirrored, the same
global batch, `ImageSupernetTask.shared_step` (the global batch given as arrays, no input
pipeline; median of {FLAGS.steps} steps after one warm-up step):

{markdown_table(choice_headers, choice_rows)}

Step time, one arch per replica / the mean of one arch per global step over the same archs: {ratio:.3g}. One arch per replica trains
{task.replicas} archs per step, each on 1/{task.replicas} of the batch, and sums their gradients into one update.
"""
    text = f"""## distributed: ENAS shared-weights step (`scripts/bench_enas_distributed.py`)

The shared-weights phase of an ENAS macro search (`ImageSupernetTask.train_epoch`: input
pipeline, one sampled arch per global step on every replica, forward, backward, gradients
all-reduced, clipped Nesterov update, loss read back every step) on one device vs mirrored
over {devices}, for the same global batch of {FLAGS.global_batch} random {FLAGS.image_size}x{FLAGS.image_size}x3
images; macro supernet with {FLAGS.layers} layers, {FLAGS.filters} filters. Fastest of {FLAGS.repeats} passes of
{FLAGS.steps} global steps per case (each pass builds its input pipeline; the cases interleaved), after
one pass that traces.
The machine is shared with other jobs: "slowest / fastest pass" shows the spread; read the
ratios loosely. Under "switch" the batch norm inside the chosen op keeps per-replica statistics (TensorFlow cannot
all-reduce inside a `tf.switch_case` branch); under "all" every batch norm is cross-replica.
{cpu_note}
{markdown_table(headers, rows)}
{choice_text}
Machine: {machine_description()}; {len(gpus)} GPU(s).
"""
    update_section(FLAGS.output, "distributed_enas", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
