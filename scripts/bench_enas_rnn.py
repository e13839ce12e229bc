#!/usr/bin/env python3
"""ENAS recurrent supernet train-step time vs a static child, weight selection with and without the ops.

Times, in one run, one truncated-BPTT SGD step (forward, backward, clipped
update) of a 1-layer language model with tied weights on a ``[batch, bptt]``
window of random word ids, for the published ``enas_rnn`` cell and a few
sampled cells of the 8-node space:

* the static child (:class:`~nas_tf.layers.EnasRnnCell`, built from the arch),
* the supernet (:class:`~nas_tf.models.enas_rnn.EnasRnnSupernetLM`, arch as
  an int tensor, only the chosen activation running) with each weight
  selection: ``gather`` (each node's matrix copied once per step, before the
  time loop), ``gather_matmul`` with the compiled op (read in place at every
  time step) and ``gather_matmul`` with its pure-TensorFlow fallback
  (``tf.gather`` + ``tf.matmul`` at every time step),
* the supernet computing all four activations and picking one (the authors'
  code),

plus each supernet's first step (trace and graph optimisation) and its
trace count over all cells. Goal: supernet / child <= 1.3. Writes the table
into the ``enas_rnn`` section of docs/benchmarks.md. A report, not a test.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("batch_size", 64, "Rows per step.", lower_bound=1)
flags.DEFINE_integer("bptt", 35, "Window length.", lower_bound=1)
flags.DEFINE_integer("units", 200, "Cell size (enas_lm search: 200).", lower_bound=1)
flags.DEFINE_integer("vocab_size", 10000, "Vocabulary (PTB: 10000).", lower_bound=2)
flags.DEFINE_integer("archs", 2, "Sampled cells besides the published one.", lower_bound=0)
flags.DEFINE_integer("steps", 10, "Timed steps per case (after 3 warm-up steps).", lower_bound=1)
flags.DEFINE_string("output", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md"),
                    "Markdown file to update.")
FLAGS = flags.FLAGS

# (label, activation_selection, weight_selection, compiled ops on)
SUPERNETS = [
    ("gather", "switch", "gather", True),
    ("gather_matmul op", "switch", "gather_matmul", True),
    ("gather_matmul fallback", "switch", "gather_matmul", False),
    ("all activations", "all", "gather", True),
]


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


def _op_types(step) -> set:
    """Op types of a traced step, its functions (loop bodies, branches) included."""
    graph = step.get_concrete_function().graph.as_graph_def()
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


def _interleaved(steps, args, repeats):
    """Median time of each step, the steps timed in turn (shared machines drift)."""
    for step, a in zip(steps, args):
        for _ in range(3):
            np.asarray(step(*a))
    times = [[] for _ in steps]
    for _ in range(repeats):
        for i, (step, a) in enumerate(zip(steps, args)):
            t0 = time.perf_counter()
            np.asarray(step(*a))
            times[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def main(argv):
    import tensorflow as tf

    import nas_tf
    import nas_tf.ops as O
    from nas_tf.models.enas_rnn import EnasRnnSupernetLM
    from nas_tf.spaces.enas_rnn import EnasRnnSpace
    from nas_tf.utils.report import machine_description, markdown_table, update_section

    if not O.custom_ops_loaded():
        raise app.UsageError(f"the compiled ops are not available ({O.load_error()}): nothing to compare")
    rng = np.random.default_rng(0)
    space = EnasRnnSpace(num_nodes=8)
    ids = rng.integers(0, FLAGS.vocab_size, size=(FLAGS.batch_size, FLAGS.bptt + 1)).astype(np.int32)
    x, y = tf.constant(ids[:, :-1]), tf.constant(ids[:, 1:])
    archs = [("published enas_rnn", nas_tf.load_arch("enas_rnn"))]
    archs += [(f"sampled {i + 1}", space.from_tokens(t)) for i, t in enumerate(space.decisions.random_tokens(rng, FLAGS.archs))]
    first_tokens = tf.constant(space.to_tokens(archs[0][1]))
    steps, first = [], []
    for label, act, weights, ops_on in SUPERNETS:
        net = EnasRnnSupernetLM(space, FLAGS.vocab_size, units=FLAGS.units, tie_weights=True,
                                activation_selection=act, weight_selection=weights)
        net.build()
        step = _train_step(net, lambda a, b, n=net: n(a, b, training=True), space.decisions.num_tokens)
        t0 = time.perf_counter()
        if ops_on:
            float(step(x, y, first_tokens))
        else:
            with O.custom_ops_disabled():  # traced now: the fallback is in this step's graph for good
                float(step(x, y, first_tokens))
        first.append(time.perf_counter() - t0)
        uses_op = "NasTfGatherMatmul" in _op_types(step)
        if uses_op != (weights == "gather_matmul" and ops_on):
            raise AssertionError(f"{label}: the step's graph {'has' if uses_op else 'lacks'} NasTfGatherMatmul")
        steps.append(step)
        print(f"{label}: first step {first[-1]:.1f} s", flush=True)
        supernet = net
    rows = []
    for label, arch in archs:
        tokens = tf.constant(space.to_tokens(arch))
        child = supernet.build_child(arch, copy_weights=False)
        child_step = _train_step(child, lambda a, c=child: c(a, training=True))
        times = _interleaved([child_step] + steps, [(x, y)] + [(x, y, tokens)] * len(steps), FLAGS.steps)
        t_child = times[0]
        rows.append([f"{label}: `{arch.to_arc()}`", 1000 * t_child]
                    + [v for t in times[1:] for v in (1000 * t, t / t_child)])
        print(rows[-1], flush=True)
    traces = [s.experimental_get_tracing_count() for s in steps]
    headers = ["cell (arc)", "static child ms"]
    for label, *_ in SUPERNETS:
        headers += [f"{label} ms", f"{label} / child"]
    first_rows = [[label, f"{t:.1f}", n] for (label, *_), t, n in zip(SUPERNETS, first, traces)]
    text = f"""## ENAS recurrent supernet step vs static child (`scripts/bench_enas_rnn.py`)

One truncated-BPTT SGD step (forward, backward, clipped update) of a 1-layer LM with tied
weights, {FLAGS.units} units, vocabulary {FLAGS.vocab_size}, a [{FLAGS.batch_size}, {FLAGS.bptt}] window of
random ids; median of {FLAGS.steps} steps after 3 warm-up steps, the child and the supernets
timed in turn. Space: 8 nodes; the supernet runs only the chosen activation (switch) and
reads the node each node reads with a switch. Weight selection: "gather" copies each node's
matrix once per step (`tf.gather`, before the time loop); "gather_matmul" multiplies by the
matrix read in place at every time step, with the compiled op or with its pure-TensorFlow
fallback (`tf.gather` + `tf.matmul`); "all activations" runs the four and picks one (the
authors' code, gather selection). Goal: supernet / child <= 1.3.

{markdown_table(headers, rows)}

First step of each supernet (trace, graph optimisation, one step) and its traces; most
supernet step traces for all {len(archs)} cells: {max(traces)}.

{markdown_table(["supernet", "first step s", "traces"], first_rows)}

Machine: {machine_description()}; load average at the end {", ".join(f"{v:.1f}" for v in os.getloadavg())}.
"""
    update_section(FLAGS.output, "enas_rnn", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
