#!/usr/bin/env python3
"""ENAS recurrent supernet train-step time vs a static child of the same cell.

Times, in one run, one truncated-BPTT SGD step (forward, backward, clipped
update) of a 1-layer language model with tied weights on a ``[batch, bptt]``
window of random word ids, for the published ``enas_rnn`` cell and a few
sampled cells of the 8-node space:

* the static child (:class:`~nas_tf.layers.EnasRnnCell`, built from the arch),
* the supernet (:class:`~nas_tf.models.enas_rnn.EnasRnnSupernetLM`) with the
  arch as an int tensor, only the chosen activation running (goal: at most
  1.3x the child),
* the supernet computing all four activations and picking one (the authors'
  code),

and counts the traces of the supernet step over all cells. Writes the table
into the ``enas_rnn`` section of docs/benchmarks.md. A report, not a test.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("batch_size", 64, "Rows per step.", lower_bound=1)
flags.DEFINE_integer("bptt", 35, "Window length.", lower_bound=1)
flags.DEFINE_integer("units", 200, "Cell size (enas_lm search: 200).", lower_bound=1)
flags.DEFINE_integer("vocab_size", 10000, "Vocabulary (PTB: 10000).", lower_bound=2)
flags.DEFINE_integer("archs", 2, "Sampled cells besides the published one.", lower_bound=0)
flags.DEFINE_integer("steps", 10, "Timed steps per case (after 3 warm-up steps).", lower_bound=1)
flags.DEFINE_string("output", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md"), "Markdown file to update.")
FLAGS = flags.FLAGS


def _train_step(model, call, num_tokens=None):
    import keras
    import tensorflow as tf

    opt = keras.optimizers.SGD(20.0)
    opt.build(model.trainable_variables)

    def step(x, y, *arch):
        with tf.GradientTape() as tape:
            logits, _ = call(x, *arch)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        grads, _ = tf.clip_by_global_norm([g for g, _ in pairs], 0.25)
        opt.apply(grads, [v for _, v in pairs])
        return loss

    spec = [tf.TensorSpec((None, None), tf.int32)] * 2
    if num_tokens is not None:
        spec.append(tf.TensorSpec((num_tokens,), tf.int32))
    return tf.function(step, input_signature=spec)


def main(argv):
    import tensorflow as tf

    import nas_tf
    from nas_tf.models.enas_rnn import EnasRnnSupernetLM
    from nas_tf.spaces.enas_rnn import EnasRnnSpace
    from nas_tf.utils.report import machine_description, markdown_table, median_step_time, update_section

    rng = np.random.default_rng(0)
    space = EnasRnnSpace(num_nodes=8)
    ids = rng.integers(0, FLAGS.vocab_size, size=(FLAGS.batch_size, FLAGS.bptt + 1)).astype(np.int32)
    x, y = tf.constant(ids[:, :-1]), tf.constant(ids[:, 1:])
    options = dict(units=FLAGS.units, tie_weights=True)
    supernets = {}
    for sel in ("switch", "all"):
        net = EnasRnnSupernetLM(space, FLAGS.vocab_size, activation_selection=sel, **options)
        net.build()
        supernets[sel] = (net, _train_step(net, lambda a, b, n=net: n(a, b, training=True), space.decisions.num_tokens))
    archs = [("published enas_rnn", nas_tf.load_arch("enas_rnn"))]
    archs += [(f"sampled {i + 1}", space.from_tokens(t)) for i, t in enumerate(space.decisions.random_tokens(rng, FLAGS.archs))]
    rows = []
    for label, arch in archs:
        tokens = tf.constant(space.to_tokens(arch))
        child = supernets["switch"][0].build_child(arch, copy_weights=False)
        t_child = median_step_time(_train_step(child, lambda a, c=child: c(a, training=True)), (x, y), FLAGS.steps)
        t_switch = median_step_time(supernets["switch"][1], (x, y, tokens), FLAGS.steps)
        t_all = median_step_time(supernets["all"][1], (x, y, tokens), FLAGS.steps)
        rows.append([f"{label}: `{arch.to_arc()}`", 1000 * t_child, 1000 * t_switch, 1000 * t_all,
                     t_switch / t_child, t_all / t_child])
        print(rows[-1], flush=True)
    traces = supernets["switch"][1].experimental_get_tracing_count()
    headers = ["cell (arc)", "static child ms", "supernet (switch) ms", "supernet (all activations) ms",
               "switch / child", "all / child"]
    text = f"""## ENAS recurrent supernet step vs static child (`scripts/bench_enas_rnn.py`)

One truncated-BPTT SGD step (forward, backward, clipped update) of a 1-layer LM with tied
weights, {FLAGS.units} units, vocabulary {FLAGS.vocab_size}, a [{FLAGS.batch_size}, {FLAGS.bptt}] window of
random ids; median of {FLAGS.steps} steps after 3 warm-up steps. Space: 8 nodes. The supernet
selects each node's matrix once per step (`tf.gather`, outside the time loop) and the node it
reads with a switch; "switch" runs only the chosen activation, "all" runs the four and picks
one (the authors' code). Supernet step traces for all {len(archs)} cells: {traces}.

{markdown_table(headers, rows)}

Machine: {machine_description()}.
"""
    update_section(FLAGS.output, "enas_rnn", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
