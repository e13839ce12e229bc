#!/usr/bin/env python3
"""ENAS supernet train-step time vs a static child, and vs computing every candidate.

For each ENAS image space it samples a few architectures and times, in one
run, one SGD step (forward, backward, update) of

* the static child built from the arch (the floor),
* the supernet with the arch as an int tensor, only the chosen ops running
  (``tf.switch_case``; goal: at most 1.3x the static child),
* the supernet computing every candidate op and picking one output (what the
  authors' micro code does),

and counts the traces of the supernet step over all sampled architectures
(one per search phase is the goal). Writes the table into the ``enas`` section
of docs/benchmarks.md. A report, not a test.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("batch_size", 64, "Images per step.", lower_bound=1)
flags.DEFINE_integer("image_size", 32, "Square image size (CIFAR-10: 32).", lower_bound=4)
flags.DEFINE_integer("archs", 3, "Architectures sampled per space.", lower_bound=1)
flags.DEFINE_integer("steps", 20, "Timed steps per case (after 3 warm-up steps).", lower_bound=1)
flags.DEFINE_list("spaces", ["macro", "micro"], "Spaces to measure.")
flags.DEFINE_integer("micro_cells", 1, "Micro: normal cells per stage.", lower_bound=1)
flags.DEFINE_string("output", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md"), "Markdown file to update.")
FLAGS = flags.FLAGS


def _time(step, args, steps):
    for _ in range(3):
        step(*args)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = step(*args)
        float(out)  # wait for the result
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _train_step(model, call, num_tokens=None):
    import keras
    import tensorflow as tf

    opt = keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True)
    opt.build(model.trainable_variables)

    def step(x, y, *arch):
        with tf.GradientTape() as tape:
            logits = call(x, *arch)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        opt.apply([g for g, _ in pairs], [v for _, v in pairs])
        return loss

    shape = (None, FLAGS.image_size, FLAGS.image_size, 3)
    spec = [tf.TensorSpec(shape, tf.float32), tf.TensorSpec((None,), tf.int32)]
    if num_tokens is not None:
        spec.append(tf.TensorSpec((num_tokens,), tf.int32))
    return tf.function(step, input_signature=spec)


SELECTIONS = {"macro": ("switch", "all"), "micro": ("merged", "switch", "all")}


def _cases(name):
    """(space, supernet factory(op_selection), child builder(arch)) of one ENAS space."""
    if name == "macro":
        from nas_tf.models.enas_macro import EnasMacroSupernet, build_enas_macro
        from nas_tf.spaces.enas_macro import EnasMacroSpace

        space = EnasMacroSpace(num_layers=12)
        return (
            space,
            lambda sel: EnasMacroSupernet(space, 10, filters=36, op_selection=sel),
            lambda arch: build_enas_macro(arch, (FLAGS.image_size,) * 2 + (3,), 10, filters=36),
        )
    if name == "micro":
        from nas_tf.models.enas_micro import EnasMicroSupernet, build_enas_micro_child
        from nas_tf.spaces.enas_micro import EnasMicroSpace

        space = EnasMicroSpace()
        return (
            space,
            lambda sel: EnasMicroSupernet(space, 10, filters=20, num_cells=FLAGS.micro_cells, op_selection=sel),
            lambda arch: build_enas_micro_child(arch, (FLAGS.image_size,) * 2 + (3,), 10, filters=20, num_cells=FLAGS.micro_cells),
        )
    raise ValueError(f"--spaces: unknown space {name!r} (macro, micro)")


def main(argv):
    import tensorflow as tf

    from nas_tf.utils.report import machine_description, markdown_table, update_section

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, FLAGS.batch_size).astype(np.int32))
    rows = []
    for name in FLAGS.spaces:
        space, make_supernet, build_child = _cases(name)
        supernets, first = {}, {}
        all_tokens = space.decisions.random_tokens(rng, FLAGS.archs)
        for sel in SELECTIONS[name]:
            net = make_supernet(sel)
            net.build((None, FLAGS.image_size, FLAGS.image_size, 3))
            step = _train_step(net, lambda a, b, n=net: n(a, b, training=True), space.decisions.num_tokens)
            t0 = time.perf_counter()
            float(step(x, y, tf.constant(all_tokens[0])))
            first[sel] = time.perf_counter() - t0
            supernets[sel] = step
        for tokens in all_tokens:
            arch = space.from_tokens(tokens)
            child = build_child(arch)
            t_child = _time(_train_step(child, lambda a, c=child: c(a, training=True)), (x, y), FLAGS.steps)
            times = {sel: _time(supernets[sel], (x, y, tf.constant(tokens)), FLAGS.steps) for sel in SELECTIONS[name]}
            for sel, t in times.items():
                rows.append([name, sel, child.count_params(), 1000 * t_child, 1000 * t, t / t_child, f"{first[sel]:.0f}",
                             supernets[sel].experimental_get_tracing_count()])
                print(rows[-1], flush=True)
    headers = ["space", "op selection", "child params", "static child ms", "supernet ms", "supernet / child",
               "first step s (trace + compile)", "traces so far"]
    text = f"""## ENAS supernet step vs static child (`scripts/bench_enas.py`)

One SGD step (forward, backward, Nesterov update) on a batch of {FLAGS.batch_size} random
{FLAGS.image_size}x{FLAGS.image_size}x3 inputs (timing only), median of {FLAGS.steps} steps after 3 warm-up
steps, for {FLAGS.archs} sampled architectures per space, measured side by side in one run;
macro: 12 layers, 36 filters; micro: {FLAGS.micro_cells} normal cell(s) per stage + 2 reduction cells,
5 nodes, 20 filters. The arch is an int tensor: "switch" runs only the chosen op
(`tf.switch_case`), "merged" (micro only) runs one separable conv with the chosen
op's weights plus the pools, "all" runs every candidate and selects one output (the
authors' code). Goal: supernet / child <= 1.3. "traces so far" counts the traces of
each supernet step over all architectures (1 = one trace per search phase).

{markdown_table(headers, rows)}

Machine: {machine_description()}.
"""
    update_section(FLAGS.output, "enas", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
