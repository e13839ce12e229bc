#!/usr/bin/env python3
"""nas_tf's compiled ops against their TensorFlow composites, on this CPU.

* padded concat: ``NasTfPaddedConcat`` vs ``tf.pad`` + ``tf.concat`` (NAS skip
  connections: 4 NHWC inputs, batch 64);
* gather matmul: ``NasTfGatherMatmul`` vs ``tf.gather`` + ``tf.matmul`` (ENAS
  shared weights: bank [12, N, N], one or eight groups).

Each row times the forward pass and the backward pass (gradients for every
input, given the upstream gradient) inside ``tf.function``, the two implementations interleaved round by
round in one process, and reports medians and the ratio (composite / op: > 1
means the op is faster). Each timed call applies the op ``--per_call`` times,
to inputs of its own, and the times are per application, less the time of a
call that does nothing (timed in the same rounds): a search runs these ops
inside one large graph, where the fixed cost of calling a ``tf.function``
(about 0.25 ms on 2 cores) is paid once per step; one op per call measured
that cost more than the op on the smaller shapes. Writes the ``ops`` section of docs/benchmarks.md. A
report, not a test.

    python scripts/bench_ops.py              # a few minutes on 2 cores
    python scripts/bench_ops.py --quick      # small shapes, a smoke run
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("repeats", 60, "Timed runs per implementation and case (median reported).", lower_bound=3)
flags.DEFINE_integer("warmup", 3, "Untimed runs first.", lower_bound=1)
flags.DEFINE_integer("per_call", 8, "Applications of the op (each on inputs of its own) per timed graph call.",
                     lower_bound=1)
flags.DEFINE_bool("quick", False, "Small shapes and few repeats (smoke run).")
flags.DEFINE_string(
    "output",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md"),
    "Markdown file whose 'ops' section is replaced ('' to only print).",
)
FLAGS = flags.FLAGS

PARALLEL_MFLOP = 16.8  # csrc/kernels/gather_matmul_cpu.cc: kParallelMinFlops (16 * 2^20 FLOP)
MICRO_MASK = [False, True, False, True, True, False, False]  # a cell whose unused states are 1, 3 and 4
CONCAT_CASES = [
    # (label, [(H, W, C), ...], mask or None) at batch 64
    ("4x32x32, C=36..64, no padding", [(32, 32, 36), (32, 32, 48), (32, 32, 56), (32, 32, 64)], None),
    ("32,16,32,16 px, C=36..64", [(32, 32, 36), (16, 16, 48), (32, 32, 56), (16, 16, 64)], None),
    ("32x32x64 + 3x16x16x64", [(32, 32, 64), (16, 16, 64), (16, 16, 64), (16, 16, 64)], None),
    ("16,8,16,8 px, C=36..64", [(16, 16, 36), (8, 8, 48), (16, 16, 56), (8, 8, 64)], None),
    ("4x16x16, C=36..64, no padding", [(16, 16, 36), (16, 16, 48), (16, 16, 56), (16, 16, 64)], None),
    # 7 inputs of one size, 4 masked off: the shapes of an ENAS micro cell's states.
    ("7x32x32x20, 4 masked", [(32, 32, 20)] * 7, MICRO_MASK),
    ("7x8x8x8, 4 masked", [(8, 8, 8)] * 7, MICRO_MASK),
]
GATHER_CASES = [
    # (label, N, M, bank K, groups, batch)
    ("N=M=1000, G=1, B=1", 1000, 1000, 12, 1, 1),
    ("N=M=1000, G=1, B=8", 1000, 1000, 12, 1, 8),
    ("N=M=1000, G=1, B=64", 1000, 1000, 12, 1, 64),
    ("N=M=1000, G=8, B=8", 1000, 1000, 12, 8, 8),
    ("N=M=1000, G=8, B=64", 1000, 1000, 12, 8, 64),
    ("N=M=256, G=1, B=64", 256, 256, 12, 1, 64),
    ("N=M=256, G=8, B=64", 256, 256, 12, 8, 64),
    # The ENAS recurrent supernet's node step (enas_lm: 200 units, batch 64; node 8's bank).
    ("ENAS RNN node: [64, 200] @ [32 x 200 x 400]", 200, 400, 32, 1, 64),
]


def interleaved(fns, args, repeats, warmup):
    """Median seconds of each function, called in alternating rounds."""
    for f in fns:
        for _ in range(warmup):
            f(*args)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, f in enumerate(fns):
            start = time.perf_counter()
            f(*args)
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def per_application(tf, fns, args, repeats, warmup, per_call):
    """Seconds per application of the op in each of ``fns``, and the seconds of a call that does nothing.

    Each function applies the op ``per_call`` times. A function that takes the
    same inputs and does nothing is timed in the same rounds; its median (the
    ``tf.function`` call's own cost) is subtracted before dividing.
    """
    empty = tf.function(lambda *a: tf.zeros([]))
    t_empty, *times = interleaved([empty] + list(fns), args, repeats, warmup)
    return [max(t - t_empty, 1e-9) / per_call for t in times], t_empty


def bench_concat(tf, ops, batch, cases, repeats, warmup, per_call):
    from nas_tf.ops import _loader

    def compiled(xs, m):
        # The op itself, also where padded_concat takes tf.concat (no mask, one size): the measurement behind that choice.
        return _loader.gen_ops().nas_tf_padded_concat(xs, tf.ones([len(xs)], tf.bool) if m is None else m)

    rows = []
    for label, shapes, mask in cases:
        rng = np.random.default_rng(0)
        n = len(shapes)
        # per_call sets of inputs, flattened: set r is xs[r * n : (r + 1) * n].
        xs = [tf.constant(rng.normal(size=(batch, *s)).astype("float32")) for _ in range(per_call) for s in shapes]
        m = None if mask is None else tf.constant(mask)
        out_shape = (batch, max(s[0] for s in shapes), max(s[1] for s in shapes), sum(s[2] for s in shapes))
        # An upstream gradient per application (identical ones would be merged by grappler's CSE).
        grads = [tf.constant(rng.normal(size=out_shape).astype("float32")) for _ in range(per_call)]

        def apply_all(fn, a):
            return [fn(list(a[r * n : (r + 1) * n]), m) for r in range(per_call)]

        def fwd(fn):
            return tf.function(lambda *a: apply_all(fn, a))

        def fwd_bwd(fn):
            @tf.function
            def step(*a):
                with tf.GradientTape() as tape:
                    tape.watch(a)
                    ys = apply_all(fn, a)
                return tape.gradient(ys, a, output_gradients=grads)

            return step

        np.testing.assert_array_equal(compiled(xs[:n], m).numpy(), ops.padded_concat_fallback(xs[:n], m).numpy())
        (t_comp, t_op), call = per_application(tf, [fwd(ops.padded_concat_fallback), fwd(compiled)], xs, repeats, warmup,
                                               per_call)
        (b_comp, b_op), _ = per_application(tf, [fwd_bwd(ops.padded_concat_fallback), fwd_bwd(compiled)], xs, repeats,
                                            warmup, per_call)
        mb = np.prod(out_shape) * 4 / 1e6
        graph = tf.function(lambda *a: ops.padded_concat(list(a), m)).get_concrete_function(*xs[:n]).graph
        uses = "op" if any(o.type == "NasTfPaddedConcat" for o in graph.get_operations()) else "tf.concat"
        rows.append([label, f"{mb:.1f}", t_comp * 1e3, t_op * 1e3, t_comp / t_op, b_comp * 1e3, b_op * 1e3, b_comp / b_op,
                     uses, f"{call * 1e3:.2f}"])
        print(f"padded concat {label}: fwd {t_comp * 1e3:.2f} -> {t_op * 1e3:.2f} ms ({t_comp / t_op:.2f}x), "
              f"bwd {b_comp * 1e3:.2f} -> {b_op * 1e3:.2f} ms ({b_comp / b_op:.2f}x)", flush=True)
    return rows


def bench_gather(tf, ops, cases, repeats, warmup, per_call):
    rows = []
    for label, n, mcols, bank, groups, batch in cases:
        rng = np.random.default_rng(1)
        w = tf.constant((rng.normal(size=(bank, n, mcols)) / np.sqrt(n)).astype("float32"))
        # Application r reads x[r] and its own matrices of the bank.
        if groups == 1:
            x = tf.constant(rng.normal(size=(per_call, batch, n)).astype("float32"))
            index = tf.constant((3 + 5 * np.arange(per_call)) % bank, tf.int32)
        else:
            x = tf.constant(rng.normal(size=(per_call, groups, batch, n)).astype("float32"))
            index = tf.constant((np.arange(groups)[None] * 5 + np.arange(per_call)[:, None]) % bank, tf.int32)

        def apply_all(fn, x, w, i):
            return [fn(x[r], w, i[r]) for r in range(per_call)]

        def fwd(fn):
            return tf.function(lambda x, w, i: apply_all(fn, x, w, i))

        def fwd_bwd(fn):
            @tf.function
            def step(x, w, i):
                with tf.GradientTape() as tape:
                    tape.watch([x, w])
                    ys = apply_all(fn, x, w, i)
                gx, gw = tape.gradient(ys, [x, w])
                return gx, gw.values

            return step

        y_op, y_ref = ops.gather_matmul(x[0], w, index[0]), ops.gather_matmul_fallback(x[0], w, index[0])
        np.testing.assert_allclose(y_op.numpy(), y_ref.numpy(), rtol=1e-4, atol=1e-4)
        args = (x, w, index)
        (t_comp, t_op), call = per_application(tf, [fwd(ops.gather_matmul_fallback), fwd(ops.gather_matmul)], args,
                                               repeats, warmup, per_call)
        (b_comp, b_op), _ = per_application(tf, [fwd_bwd(ops.gather_matmul_fallback), fwd_bwd(ops.gather_matmul)], args,
                                            repeats, warmup, per_call)
        gflop = 2 * groups * batch * n * mcols / 1e9
        rows.append([label, f"{gflop / t_op:.0f}", t_comp * 1e3, t_op * 1e3, t_comp / t_op,
                     b_comp * 1e3, b_op * 1e3, b_comp / b_op, f"{call * 1e3:.2f}"])
        print(f"gather matmul {label}: fwd {t_comp * 1e3:.3f} -> {t_op * 1e3:.3f} ms "
              f"({t_comp / t_op:.2f}x), bwd {b_comp * 1e3:.3f} -> {b_op * 1e3:.3f} ms ({b_comp / b_op:.2f}x)", flush=True)
    return rows


def main(argv):
    del argv
    import tensorflow as tf

    import nas_tf.ops as ops
    from nas_tf.utils.report import machine_description, markdown_table, update_section

    if not ops.custom_ops_loaded():
        raise app.UsageError(f"the compiled op library is not in use: {ops.load_error()}")
    try:
        from nas_tf import kernels

        cpu_path = kernels.build_info()["cpu_gather_matmul_path"]
    except ImportError:
        cpu_path = "unknown"
    repeats, warmup = FLAGS.repeats, FLAGS.warmup
    batch, concat_cases, gather_cases = 64, CONCAT_CASES, GATHER_CASES
    if FLAGS.quick:
        repeats, warmup, batch = 3, 1, 4
        concat_cases = [(label, [(h // 4, w // 4, c) for h, w, c in shapes], mask)
                        for label, shapes, mask in (CONCAT_CASES[1], CONCAT_CASES[-1])]
        gather_cases = [("N=M=64, G=1, B=4", 64, 64, 12, 1, 4), ("N=M=64, G=2, B=4", 64, 64, 12, 2, 4)]
    per_call = 2 if FLAGS.quick else FLAGS.per_call
    concat_rows = bench_concat(tf, ops, batch, concat_cases, repeats, warmup, per_call)
    gather_rows = bench_gather(tf, ops, gather_cases, repeats, warmup, per_call)

    concat_table = markdown_table(
        [f"inputs (batch {batch}, float32)", "output MB", "pad+concat fwd ms", "op fwd ms", "fwd speed-up",
         "pad+concat bwd ms", "op bwd ms", "bwd speed-up", "padded_concat uses", "call ms (subtracted)"], concat_rows)
    gather_table = markdown_table(
        ["x [B, N] (G groups) @ bank [K, N, M], float32", "op GFLOP/s", "gather+matmul fwd ms", "op fwd ms", "fwd speed-up",
         "gather+matmul bwd ms", "op bwd ms", "bwd speed-up", "call ms (subtracted)"], gather_rows)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    text = f"""## Custom ops vs TensorFlow composites, CPU (`scripts/bench_ops.py`)

{machine_description()}; {threads} intra-op threads; CPU gather-matmul tiles: {cpu_path};
load average at the end of the run {load} (other jobs shared the cores).
Medians of {repeats} runs inside `tf.function`, op and composite interleaved in
one process (the machine is shared: compare the ratios, not the absolute
times). Each timed call applies the op {per_call} times, each to inputs of its own,
and the times are per application, after subtracting the median time of a call
that takes the same inputs and does nothing ("call ms", timed in the same
rounds): a search runs these ops inside one large graph, where that fixed cost
is paid once per step, not per op. (One op per call, as this benchmark timed
before, measured mostly that cost on the smaller shapes.) Speed-up = composite time / op time. "bwd" = the gradients of every
input for a given upstream gradient (TensorFlow prunes the unused forward
output, so this is the backward pass alone, plus the gather copy the composite
needs for dx); sparse (IndexedSlices) bank gradient for both gather variants.

**Padded concat** (`padded_concat` vs `tf.pad` + `tf.concat`, and `tf.where`
for a mask): the op writes each output byte once, rows shared over
TensorFlow's thread pool; its gradient op writes each input gradient once (the
composite slices twice). The masked rows have the shapes of an ENAS micro
cell's 7 states with the 4 used ones zeroed (the micro supernet's cell output
until it kept only the unused states), the others NAS-CNN skip
concatenations. With no mask and inputs of one size there is nothing to pad or
zero, op and composite are both one copy per input, and `padded_concat` takes
`tf.concat` ("padded_concat uses").

{concat_table}

**Gather matmul** (`gather_matmul` vs `tf.gather` + `tf.matmul`): the op reads
the selected matrix in place (no copy) with AVX-512/AVX2 register tiles over
(group, column tile) units on the thread pool; dx uses the same op with the
matrix transposed, dweights is `x^T @ dy` per group (IndexedSlices). What the
op saves is the copy of the selected matrices: where the product dominates
(batch 64) the speed-up is at most 1 + copy time / product time, and the op's
product (one core below {PARALLEL_MFLOP} MFLOP, where waking the second thread cost
more than it saved) runs about as fast as oneDNN's. The ENAS recurrent supernet
therefore copies each node's matrix once per BPTT window (`weight_selection="gather"`,
measured in the `enas_rnn` section) rather than reading it in place at every
time step.

{gather_table}

**GPU**: not measured in this session (no GPU was lent to it). On a machine
with a CUDA GPU (and PyTorch for the comparison), run

```bash
python scripts/check_cuda_ops.py --build --output=docs/benchmarks.md   # TensorFlow not needed
```

which checks the CUDA kernels through the pybind11 module against NumPy
(random inputs, poisoned outputs) and times padded concat against PyTorch
pad+cat and the device copy bandwidth, and gather matmul against PyTorch
index_select+bmm (N=1000, K=12, batch 64, one and eight groups), writing the
`ops-gpu` section.
"""
    print(text)
    if FLAGS.output:
        update_section(FLAGS.output, "ops", text)
        print(f"wrote the 'ops' section of {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
