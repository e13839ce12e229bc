#!/usr/bin/env python3
"""ENAS image supernets: first step (trace, graph optimisation) and step time vs the static child, ops on and off.

For each case (an ENAS image space at a given input size) it samples a few
architectures and, in one run, times one SGD step (forward, backward, weight
decay, gradient clip, Nesterov update, as the search's shared-weights step)
of

* the static child built from the arch (the floor),
* the supernet with the arch as an int tensor for each op selection:
  ``switch`` (only the chosen op runs), ``merged`` (micro), ``all`` (every
  candidate, the authors' code),
* the ``switch`` supernet with nas_tf's compiled ops and with their
  pure-TensorFlow fallbacks (``nas_tf.ops.custom_ops_disabled`` while it is
  traced),
* micro: the ``switch`` supernet with its chosen ops run the other way than
  ``switch_branches="auto"`` picks (``"inlined"``: lowered into the node
  function, oneDNN kernels; ``"function"``: a branch function, Eigen kernels),

the child and the supernets timed in turn, and the supernets' first step
split into tracing (``get_concrete_function``) and the first call (graph
optimisation and one step), plus their trace counts over all architectures
(1 = one trace per search). A second table times the micro supernet with
``switch_branches="function"`` and ``"inlined"`` over input sizes and filter
counts (``--branch_sizes``), the measurement behind ``"auto"``'s threshold.
The ``micro_digits`` case is the default search
(``python scripts/search_enas.py``: 8x8x1 digits, 8 filters). Goals: supernet
/ child <= 1.3, first step of the default search <= 30 s. Writes the ``enas``
section of docs/benchmarks.md. A report, not a test.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("batch_size", 64, "Images per step.", lower_bound=1)
flags.DEFINE_integer("archs", 3, "Architectures sampled per case.", lower_bound=1)
flags.DEFINE_integer("steps", 10, "Timed steps per case (after 3 warm-up steps).", lower_bound=1)
flags.DEFINE_list("spaces", ["micro_digits", "micro", "macro"], "Cases to measure: micro_digits, micro, macro.")
flags.DEFINE_list("selections", [], "Op selections to measure (default: every one of the space).")
flags.DEFINE_integer("micro_cells", 1, "Micro: normal cells per stage.", lower_bound=1)
flags.DEFINE_list("branch_sizes", ["8x8x8", "8x8x16", "8x8x32", "16x16x8", "16x16x16"],
                  "HxWxF: micro supernets (H x W x 1 inputs, F filters) timed with switch_branches='function' and "
                  "'inlined' ('' to skip).")
flags.DEFINE_string("output", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md"),
                    "Markdown file to update.")
FLAGS = flags.FLAGS

SELECTIONS = {"macro": ("switch", "all"), "micro": ("switch", "merged", "all"), "micro_digits": ("switch",)}


def _case(name):
    """(space, input shape, supernet factory(op_selection), child builder(arch), description)."""
    if name == "macro":
        from nas_tf.models.enas_macro import EnasMacroSupernet, build_enas_macro
        from nas_tf.spaces.enas_macro import EnasMacroSpace

        space, shape = EnasMacroSpace(num_layers=12), (32, 32, 3)
        return (space, shape, lambda sel, **kw: EnasMacroSupernet(space, 10, filters=36, op_selection=sel, **kw),
                lambda arch: build_enas_macro(arch, shape, 10, filters=36), "32x32x3, 12 layers, 36 filters")
    if name in ("micro", "micro_digits"):
        from nas_tf.models.enas_micro import EnasMicroSupernet, build_enas_micro_child
        from nas_tf.spaces.enas_micro import EnasMicroSpace

        space = EnasMicroSpace()
        shape, filters, cells = ((32, 32, 3), 20, FLAGS.micro_cells) if name == "micro" else ((8, 8, 1), 8, 1)
        return (space, shape,
                lambda sel, **kw: EnasMicroSupernet(space, 10, filters=filters, num_cells=cells, op_selection=sel, **kw),
                lambda arch: build_enas_micro_child(arch, shape, 10, filters=filters, num_cells=cells),
                f"{'x'.join(map(str, shape))}, {cells} normal cell(s) per stage, 5 nodes, {filters} filters")
    raise app.UsageError(f"--spaces: unknown case {name!r} (micro_digits, micro, macro)")


def _train_step(model, call, shape, num_tokens=None):
    """The search's shared-weights step: loss + weight decay, gradient clip 5, Nesterov SGD."""
    import keras
    import tensorflow as tf

    opt = keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
    opt.build(model.trainable_variables)

    def step(x, y, *arch):
        with tf.GradientTape() as tape:
            logits = call(x, *arch)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            total = loss + (tf.add_n(model.losses) if model.losses else 0.0)
        variables = model.trainable_variables
        grads = tape.gradient(total, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        grads, _ = tf.clip_by_global_norm([g for g, _ in pairs], 5.0)
        opt.apply(grads, [v for _, v in pairs])
        return loss

    spec = [tf.TensorSpec((None,) + tuple(shape), tf.float32), tf.TensorSpec((None,), tf.int32)]
    if num_tokens is not None:
        spec.append(tf.TensorSpec((num_tokens,), tf.int32))
    return tf.function(step, input_signature=spec)


def _interleaved(steps, args, repeats):
    """Median time of each step, the steps timed in turn (shared machines drift)."""
    for step, a in zip(steps, args):
        for _ in range(3):
            float(step(*a))
    times = [[] for _ in steps]
    for _ in range(repeats):
        for i, (step, a) in enumerate(zip(steps, args)):
            t0 = time.perf_counter()
            float(step(*a))
            times[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def _op_types(step) -> set:
    graph = step.get_concrete_function().graph.as_graph_def()
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


def _branch_modes(net, shape) -> dict:
    """Position name -> the switch_branches mode the micro supernet ``net`` runs there."""
    net.build((None,) + tuple(shape))
    return net.switch_branch_modes


def _branches_label(net, branches) -> str:
    if branches is None or branches != "auto":
        return branches or ""
    modes = set(net.switch_branch_modes.values())
    return f"auto: {modes.pop()}" if len(modes) == 1 else "auto: mixed"


def _branch_sizes() -> list:
    """``--branch_sizes`` as (H, W, F) triples; a clear usage error for anything else."""
    sizes = []
    for size in FLAGS.branch_sizes:
        try:
            height, width, filters = (int(v) for v in size.split("x"))
        except ValueError:
            raise app.UsageError(f"--branch_sizes: {size!r} is not HxWxF (for example 8x8x8)") from None
        if min(height, width) < 1 or filters < 2:
            raise app.UsageError(f"--branch_sizes: {size!r} needs H, W >= 1 and F >= 2")
        sizes.append((height, width, filters))
    return sizes


def _branch_sweep(tf, rng, sizes) -> list:
    """The micro supernet with switch_branches 'function' and 'inlined', over ``sizes`` (one arch each)."""
    from nas_tf.models.enas_micro import EnasMicroSupernet
    from nas_tf.spaces.enas_micro import EnasMicroSpace

    space = EnasMicroSpace()
    rows = []
    for height, width, filters in sizes:
        shape = (height, width, 1)
        x = tf.constant(rng.normal(size=(FLAGS.batch_size,) + shape).astype(np.float32))
        y = tf.constant(rng.integers(0, 10, FLAGS.batch_size).astype(np.int32))
        tokens = tf.constant(space.decisions.random_tokens(rng, 1)[0])
        steps = []
        for mode in ("inlined", "function"):
            net = EnasMicroSupernet(space, 10, filters=filters, num_cells=1, switch_branches=mode)
            net.build((None,) + shape)
            steps.append(_train_step(net, lambda a, b, n=net: n(a, b, training=True), shape, space.decisions.num_tokens))
        auto = _branch_modes(EnasMicroSupernet(space, 10, filters=filters, num_cells=1), shape)
        picks = list(auto.values())
        t_inlined, t_function = _interleaved(steps, [(x, y, tokens)] * 2, FLAGS.steps)
        rows.append([f"{height}x{width}x1", filters, f"{height * width * filters}",
                     1000 * t_inlined, 1000 * t_function, t_function / t_inlined,
                     f"function in {picks.count('function')} of {len(picks)} cells"])
        print(rows[-1], flush=True)
    return rows


def _sweep_text(rows) -> str:
    if not rows:
        return ""
    from nas_tf.models.enas_micro import EnasMicroSupernet
    from nas_tf.utils.report import markdown_table

    headers = ["input", "filters", "first cell's states H x W x F", "inlined ms", "function ms", "function / inlined",
               "auto"]
    return f"""
**Micro `switch_branches` by size**: one sampled arch per row, 1 normal cell per stage, the
whole supernet step with every cell "inlined" and with every cell "function", timed in turn.
"auto" runs a cell's ops as functions when its states hold at most
{EnasMicroSupernet.SMALL_STATE_VALUES} values per image (H x W x F; the cells of later stages are
smaller).

{markdown_table(headers, rows)}
"""


def main(argv):
    import tensorflow as tf

    import nas_tf.ops as O
    from nas_tf.utils.report import machine_description, markdown_table, update_section

    if not O.custom_ops_loaded():
        raise app.UsageError(f"the compiled ops are not available ({O.load_error()}): nothing to compare")
    branch_sizes = _branch_sizes()  # checked before the long runs
    rng = np.random.default_rng(0)
    rows, descriptions = [], []
    for name in FLAGS.spaces:
        space, shape, make_supernet, build_child, description = _case(name)
        descriptions.append(f"{name}: {description}")
        x = tf.constant(rng.normal(size=(FLAGS.batch_size,) + shape).astype(np.float32))
        y = tf.constant(rng.integers(0, 10, FLAGS.batch_size).astype(np.int32))
        all_tokens = space.decisions.random_tokens(rng, FLAGS.archs)
        variants = []  # (selection, ops on, switch_branches or None)
        for sel in SELECTIONS[name]:
            if FLAGS.selections and sel not in FLAGS.selections:
                continue
            micro_switch = sel == "switch" and name != "macro"
            variants.append((sel, True, "auto" if micro_switch else None))
            if sel == "switch":
                variants.append((sel, False, "auto" if micro_switch else None))
            if micro_switch:
                modes = set(_branch_modes(make_supernet(sel), shape).values())
                variants += [(sel, True, mode) for mode in ("function", "inlined") if modes != {mode}]
        steps, first = [], []
        for sel, ops_on, branches in variants:
            net = make_supernet(sel, **({"switch_branches": branches} if branches else {}))
            net.build((None,) + shape)
            step = _train_step(net, lambda a, b, n=net: n(a, b, training=True), shape, space.decisions.num_tokens)
            args = (x, y, tf.constant(all_tokens[0]))
            with O.custom_ops_disabled() if not ops_on else contextlib.nullcontext():
                t0 = time.perf_counter()
                step.get_concrete_function(*args)
                t1 = time.perf_counter()
                float(step(*args))
                t2 = time.perf_counter()
            uses = sorted(t for t in _op_types(step) if t.startswith("NasTf"))
            first.append((t1 - t0, t2 - t1, ", ".join(uses) or "none", _branches_label(net, branches)))
            steps.append(step)
            print(f"{name} {sel} ops={'on' if ops_on else 'off'} branches={first[-1][3] or '-'}: trace {t1 - t0:.1f} s, "
                  f"first call {t2 - t1:.1f} s, custom ops in the graph: {first[-1][2]}", flush=True)
        for tokens in all_tokens:
            arch = space.from_tokens(tokens)
            child = build_child(arch)
            child_step = _train_step(child, lambda a, c=child: c(a, training=True), shape)
            times = _interleaved([child_step] + steps, [(x, y)] + [(x, y, tf.constant(tokens))] * len(steps), FLAGS.steps)
            for (sel, ops_on, _), t, f, step in zip(variants, times[1:], first, steps):
                rows.append([name, sel, f[3], "compiled" if ops_on else "fallback", f[2], child.count_params(),
                             1000 * times[0], 1000 * t, t / times[0], f"{f[0]:.1f}", f"{f[1]:.1f}",
                             step.experimental_get_tracing_count()])
                print(rows[-1], flush=True)
    sweep = _branch_sweep(tf, rng, branch_sizes)
    headers = ["case", "op selection", "switch branches", "nas_tf ops", "custom ops in graph", "child params", "static child ms",
               "supernet ms", "supernet / child", "trace s", "first call s", "traces"]
    cases = "; ".join(descriptions)
    text = f"""## ENAS supernet step vs static child (`scripts/bench_enas.py`)

One shared-weights SGD step (forward, backward, weight decay, gradient clip 5, Nesterov
update) on a batch of {FLAGS.batch_size} random inputs (timing only), median of {FLAGS.steps} steps after 3
warm-up steps, child and supernets timed in turn, {FLAGS.archs} sampled architecture{'s' if FLAGS.archs != 1 else ''} per case.
Cases: {cases} (micro_digits is the default `python scripts/search_enas.py`). The arch is an
int tensor: "switch" runs only the chosen op, "merged" (micro) runs one separable conv with
the chosen op's weights plus the pools, "all" runs every candidate and selects one output
(the authors' code). "switch branches" (micro): how "switch" runs the chosen op, "inlined" (the
`switch_case` lowered into the node function: oneDNN kernels, every branch visited) or
"function" (the chosen branch run as a function of its own: TensorFlow's Eigen kernels);
"auto" is the default, with the mode it picks. "nas_tf ops": the step traced with the compiled ops or with their
pure-TensorFlow fallbacks; "custom ops in graph" lists the compiled ops the step uses.
First step = "trace s" (tracing the step and its gradient) + "first call s" (graph
optimisation and one step). Goals: supernet / child <= 1.3; the default search's first
step <= 30 s.

{markdown_table(headers, rows)}
{_sweep_text(sweep)}
Machine: {machine_description()}; load average at the end {", ".join(f"{v:.1f}" for v in os.getloadavg())}.
"""
    update_section(FLAGS.output, "enas", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
