#!/usr/bin/env python3
"""Checks and times nas_tf's CUDA kernels through the pybind11 module (no TensorFlow needed).

For a machine with a CUDA GPU (TensorFlow need not be installed; PyTorch is
used for device memory, events and the comparison):

    python scripts/check_cuda_ops.py --build --output=docs/benchmarks.md

(``--build`` = ``NAS_TF_CUDA=1``: nas_tf builds its pybind11 module with the
CUDA kernels into its cache on first use, unless one with them is installed.)

1. Correctness against NumPy on fresh random inputs of many shapes (empty and
   size-1 dimensions, odd channel counts, more than 16 inputs, masks), in
   float32, float16 and bfloat16: outputs are poisoned with NaN first, so an
   element the kernel did not write fails the check; padded concat (forward
   and gradient) must match exactly, gather matmul within
   ||out - ref|| / ||ref|| < 1e-5 (float32), 1e-2 (float16), 2e-2 (bfloat16)
   of a float64 reference; an out-of-range index must raise.
2. Ceilings measured on the device: device-to-device copy bandwidth (bytes
   read + written) and a float32 matrix product (TF32 off).
3. Timing with CUDA events (median of --repeats after warm-up): padded concat
   vs PyTorch pad+cat at NAS shapes (bytes moved, GB/s, fraction of the copy
   bandwidth); gather matmul vs PyTorch index_select+bmm at ENAS recurrent
   shapes (N=1000, K=12, batch 64, one and eight groups; FLOPs, TFLOP/s).
Prints the tables and, with --output, writes the ``ops-gpu`` section.

``--device=cpu`` runs the same harness on the CPU kernels with NumPy (what the
test suite does on machines without a GPU).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

flags.DEFINE_enum("device", "cuda", ["cuda", "cpu"], "Kernels to check: CUDA (needs a GPU) or the CPU ones.")
flags.DEFINE_integer("repeats", 50, "Timed runs per case (median).", lower_bound=1)
flags.DEFINE_integer("random_cases", 40, "Random shapes per correctness check.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the random inputs.")
flags.DEFINE_bool("build", False, "Use (and build if needed) nas_tf._kernels with the CUDA kernels (NAS_TF_CUDA=1; needs nvcc).")
flags.DEFINE_bool("timing", True, "Time the kernels after checking them.")
flags.DEFINE_string("output", "", "Markdown file whose 'ops-gpu' section is written ('' = print only).")
flags.DEFINE_string("json_out", "", "Also write every number as JSON here.")
FLAGS = flags.FLAGS

TOL = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 2e-2, "float64": 1e-12}


# ----------------------------------------------------------------------------- backends
class CpuBackend:
    """NumPy arrays and the CPU kernels (to test the harness without a GPU)."""

    name = "cpu"
    dtypes = ("float32", "float16")

    def __init__(self, kernels):
        self.k = kernels

    def put(self, a, dtype):
        return np.ascontiguousarray(a.astype(dtype))

    def get(self, a):
        return np.asarray(a, dtype=np.float64)

    def padded_concat(self, xs, mask, dtype):
        return self.k.padded_concat(xs, mask)

    def padded_concat_grad(self, g, sizes, mask, dtype):
        return self.k.padded_concat_grad(g, sizes, mask)

    def gather_matmul(self, x, w, idx, transpose, dtype):
        return self.k.gather_matmul(x, w, idx if x.ndim == 3 else int(idx[0]), transpose)

    def time(self, fn, repeats):
        fn()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return float(np.median(ts))


class CudaBackend:
    """PyTorch device tensors; the CUDA kernels through nas_tf.kernels with raw pointers."""

    name = "cuda"
    dtypes = ("float32", "float16", "bfloat16")

    def __init__(self, kernels):
        import torch

        self.torch, self.k = torch, kernels
        self.dev = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        self.tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

    def stream(self):
        return self.torch.cuda.current_stream().cuda_stream

    def put(self, a, dtype):
        return self.torch.from_numpy(np.ascontiguousarray(a.astype(np.float32))).to(self.dev, self.tdt[dtype]).contiguous()

    def get(self, t):
        self.torch.cuda.synchronize()
        return t.detach().float().cpu().numpy().astype(np.float64)

    def dev_array(self, t, dtype):
        return self.k.DeviceArray(t.data_ptr(), dtype=dtype, shape=tuple(t.shape))

    def poisoned(self, shape, dtype):
        return self.torch.full(tuple(shape), float("nan"), device=self.dev, dtype=self.tdt[dtype])

    def padded_concat(self, xs, mask, dtype, out=None):
        if out is None:
            shape = (xs[0].shape[0], max(x.shape[1] for x in xs), max(x.shape[2] for x in xs), sum(x.shape[3] for x in xs))
            out = self.poisoned(shape, dtype)
        m = None if mask is None else self.torch.from_numpy(np.asarray(mask, np.uint8)).to(self.dev)
        self.k.padded_concat([self.dev_array(x, dtype) for x in xs], None if m is None else self.dev_array(m, "uint8"),
                             out=self.dev_array(out, dtype), stream=self.stream(), dtype=dtype)
        return out

    def padded_concat_grad(self, g, sizes, mask, dtype):
        outs = [self.poisoned((g.shape[0], *s), dtype) for s in sizes]
        m = None if mask is None else self.torch.from_numpy(np.asarray(mask, np.uint8)).to(self.dev)
        self.k.padded_concat_grad(self.dev_array(g, dtype), sizes, None if m is None else self.dev_array(m, "uint8"),
                                  grad_inputs=[self.dev_array(o, dtype) for o in outs], stream=self.stream(), dtype=dtype)
        return outs

    def gather_matmul(self, x, w, idx, transpose, dtype, out=None):
        cols = w.shape[1] if transpose else w.shape[2]
        if out is None:
            out = self.poisoned((*x.shape[:-1], cols), dtype)
        self.k.gather_matmul(self.dev_array(x, dtype), self.dev_array(w, dtype), list(idx), transpose,
                             out=self.dev_array(out, dtype), stream=self.stream(), dtype=dtype)
        return out

    def time(self, fn, repeats):
        torch = self.torch
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        ts = []
        for _ in range(repeats):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b) / 1e3)
        return float(np.median(ts))


# ----------------------------------------------------------------------------- references
def ref_padded_concat(xs, mask=None):
    h, w = max(x.shape[1] for x in xs), max(x.shape[2] for x in xs)
    parts = []
    for i, x in enumerate(xs):
        p = np.zeros((x.shape[0], h, w, x.shape[3]))
        if mask is None or mask[i]:
            p[:, : x.shape[1], : x.shape[2]] = x
        parts.append(p)
    return np.concatenate(parts, axis=-1)


def quantize(a, dtype):
    """The values a dtype can hold (so exact copies compare exactly)."""
    if dtype == "bfloat16":
        u = np.asarray(a, np.float32).view(np.uint32)
        return ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).view(np.float32).astype(np.float64)
    return np.asarray(a).astype(dtype).astype(np.float64)


def random_concat_shapes(rng, count):
    cases = [
        [(2, 6, 6, 36), (2, 3, 3, 48), (2, 6, 6, 56), (2, 3, 3, 64)],
        [(1, 1, 1, 1)],
        [(0, 3, 3, 2), (0, 1, 1, 3)],
        [(2, 3, 3, 0), (2, 2, 2, 3)],
        [(2, 0, 4, 2), (2, 4, 0, 5), (2, 2, 2, 1)],
        [(3, 2 + i % 3, 2, 1 + i % 5) for i in range(20)],
        [(2, 5, 5, 3), (2, 4, 4, 5), (2, 5, 3, 7)],
    ]
    for _ in range(count):
        n = int(rng.integers(1, 7))
        b = int(rng.integers(0, 4))
        cases.append([(b, int(rng.integers(0, 9)), int(rng.integers(0, 9)), int(rng.integers(0, 10))) for _ in range(n)])
    return cases


def random_matmul_cases(rng, count):
    cases = [(None, 1, 1, 1, 1), (1, 64, 1000, 1000, 12), (8, 64, 1000, 1000, 12), (2, 0, 5, 7, 2), (2, 3, 0, 7, 2),
             (3, 17, 33, 65, 4), (70, 2, 8, 8, 3)]
    for _ in range(count):
        g = None if rng.random() < 0.3 else int(rng.integers(1, 5))
        cases.append((g, int(rng.integers(1, 80)), int(rng.integers(1, 200)), int(rng.integers(1, 200)), int(rng.integers(1, 6))))
    return cases


# ----------------------------------------------------------------------------- checks
def check_padded_concat(be, rng, count):
    failures, checked = [], 0
    for shapes in random_concat_shapes(rng, count):
        for dtype in be.dtypes:
            xs_np = [quantize(rng.normal(size=s) * 4, dtype) for s in shapes]
            mask = None if rng.random() < 0.4 else rng.random(len(shapes)) < 0.7
            xs = [be.put(x, dtype) for x in xs_np]
            got = be.get(be.padded_concat(xs, mask, dtype))
            want = ref_padded_concat(xs_np, mask)
            if got.shape != want.shape or not np.array_equal(got, want):
                failures.append(f"padded_concat {dtype} {shapes} mask={mask}")
            g_np = quantize(rng.normal(size=want.shape), dtype)
            sizes = [list(s[1:]) for s in shapes]
            grads = [be.get(g) for g in be.padded_concat_grad(be.put(g_np, dtype), sizes, mask, dtype)]
            off = 0
            for i, (g, s) in enumerate(zip(grads, shapes)):
                exp = g_np[:, : s[1], : s[2], off : off + s[3]] * (0.0 if mask is not None and not mask[i] else 1.0)
                off += s[3]
                if g.shape != exp.shape or not np.array_equal(g, exp):
                    failures.append(f"padded_concat_grad {dtype} {shapes} input {i} mask={mask}")
            checked += 1
    return checked, failures


def check_gather_matmul(be, rng, count):
    failures, checked, worst = [], 0, {}
    for g, b, n, m, k in random_matmul_cases(rng, count):
        for transpose in (False, True):
            for dtype in be.dtypes:
                w_np = quantize(rng.normal(size=(k, n, m)), dtype)
                cols = m if transpose else n
                x_np = quantize(rng.normal(size=(b, cols) if g is None else (g, b, cols)), dtype)
                idx = rng.integers(0, k, size=1 if g is None else g)
                y = be.get(be.gather_matmul(be.put(x_np, dtype), be.put(w_np, dtype), idx, transpose, dtype))
                sel = w_np[idx[0]] if g is None else w_np[idx]
                ref = np.matmul(x_np, np.swapaxes(sel, -1, -2) if transpose else sel)
                if y.shape != ref.shape or not np.isfinite(y).all():
                    failures.append(f"gather_matmul {dtype} {(g, b, n, m, k)} T={transpose}: shape/NaN")
                    continue
                norm = np.linalg.norm(ref)
                err = float(np.linalg.norm(y - ref) / norm) if norm > 0 else float(np.abs(y).max(initial=0))
                worst[dtype] = max(worst.get(dtype, 0.0), err)
                if err > TOL[dtype]:
                    failures.append(f"gather_matmul {dtype} {(g, b, n, m, k)} T={transpose}: rel err {err:.2e}")
                checked += 1
    # Out-of-range index: a clear error, no launch.
    try:
        x = be.put(np.ones((2, 3, 4)), "float32")
        be.gather_matmul(x, be.put(np.ones((2, 4, 5)), "float32"), [0, 2], False, "float32")
        failures.append("gather_matmul accepted index 2 for a bank of 2")
    except IndexError:
        pass
    return checked, failures, worst


# ----------------------------------------------------------------------------- timing (CUDA)
def ceilings(be):
    torch = be.torch
    n = 64 * 2**20  # 256 MB of float32
    src, dst = torch.randn(n, device=be.dev), torch.empty(n, device=be.dev)
    t_copy = be.time(lambda: dst.copy_(src), 20)
    a, b = torch.randn(4096, 4096, device=be.dev), torch.randn(4096, 4096, device=be.dev)
    t_mm = be.time(lambda: torch.matmul(a, b), 10)
    return {"copy_GBps": 2 * n * 4 / t_copy / 1e9, "fp32_matmul_TFLOPs": 2 * 4096**3 / t_mm / 1e12}


def time_padded_concat(be, repeats, ceil):
    torch = be.torch
    rows = []
    cases = [
        ("4x32x32, C=36..64, no padding", [(32, 32, 36), (32, 32, 48), (32, 32, 56), (32, 32, 64)]),
        ("32,16,32,16 px, C=36..64", [(32, 32, 36), (16, 16, 48), (32, 32, 56), (16, 16, 64)]),
        ("32x32x64 + 3x16x16x64", [(32, 32, 64), (16, 16, 64), (16, 16, 64), (16, 16, 64)]),
    ]
    for batch in (64, 256):
        for label, shapes in cases:
            xs = [torch.randn(batch, *s, device=be.dev) for s in shapes]
            H, W = max(s[0] for s in shapes), max(s[1] for s in shapes)
            out = torch.empty(batch, H, W, sum(s[2] for s in shapes), device=be.dev)
            ours = be.time(lambda: be.padded_concat(xs, None, "float32", out=out), repeats)
            ref = torch.cat([torch.nn.functional.pad(x, (0, 0, 0, W - x.shape[2], 0, H - x.shape[1])) for x in xs], -1)
            if not torch.equal(ref, be.padded_concat(xs, None, "float32", out=out)):
                raise AssertionError(f"padded concat differs from torch at {label}")
            theirs = be.time(lambda: torch.cat([torch.nn.functional.pad(x, (0, 0, 0, W - x.shape[2], 0, H - x.shape[1]))
                                                for x in xs], -1), repeats)
            nbytes = sum(x.numel() for x in xs) * 4 + out.numel() * 4
            rate = nbytes / ours / 1e9
            rows.append({"case": f"B={batch}: {label}", "MB moved": nbytes / 1e6, "ours_us": ours * 1e6, "torch_us": theirs * 1e6,
                         "GBps": rate, "of_copy": rate / ceil["copy_GBps"], "speedup": theirs / ours})
    return rows


def time_gather_matmul(be, repeats, ceil):
    torch = be.torch
    rows = []
    n, k, b = 1000, 12, 64
    for g in (1, 8):
        ws = [torch.randn(k, n, n, device=be.dev) / n**0.5 for _ in range(3)]  # rotate: the bank is 48 MB
        x = torch.randn(g, b, n, device=be.dev)
        idx = (np.arange(g) * 5) % k
        idx_t = torch.as_tensor(idx, device=be.dev)
        out = torch.empty(g, b, n, device=be.dev)
        state = {"i": 0}

        def ours():
            state["i"] = (state["i"] + 1) % 3
            be.gather_matmul(x, ws[state["i"]], idx, False, "float32", out=out)

        def theirs():
            state["i"] = (state["i"] + 1) % 3
            return torch.bmm(x, ws[state["i"]].index_select(0, idx_t))

        ref = torch.bmm(x, ws[0].index_select(0, idx_t)).double()
        got = be.gather_matmul(x, ws[0], idx, False, "float32", out=out).double()
        err = float((got - ref).norm() / ref.norm())
        t_ours, t_theirs = be.time(ours, repeats), be.time(theirs, repeats)
        flops = 2 * g * b * n * n
        nbytes = (x.numel() + g * n * n + out.numel()) * 4
        rows.append({"case": f"N={n}, K={k}, B={b}, G={g}", "GFLOP": flops / 1e9, "MB moved": nbytes / 1e6,
                     "ours_us": t_ours * 1e6, "torch_us": t_theirs * 1e6, "TFLOPs": flops / t_ours / 1e12,
                     "GBps": nbytes / t_ours / 1e9, "speedup": t_theirs / t_ours, "rel_err": err,
                     "floor_us": max(flops / (ceil["fp32_matmul_TFLOPs"] * 1e12), nbytes / (ceil["copy_GBps"] * 1e9)) * 1e6})
    return rows


def markdown(report):
    from nas_tf.utils.report import markdown_table

    lines = ["## CUDA kernels through pybind11 (`scripts/check_cuda_ops.py`)\n",
             f"Device: {report['device']}. Correctness: {report['checks']}.\n"]
    if "ceilings" in report:
        c = report["ceilings"]
        lines.append(f"Measured ceilings: device copy {c['copy_GBps']:.0f} GB/s (read + write), float32 matmul "
                     f"{c['fp32_matmul_TFLOPs']:.1f} TFLOP/s (TF32 off). Medians of {report['repeats']} CUDA-event timings.\n")
        lines.append("**Padded concat** vs PyTorch `pad` + `cat` (float32, NHWC):\n")
        lines.append(markdown_table(["case", "MB moved", "ours us", "torch us", "GB/s", "of copy BW", "speed-up"],
                                    [[r["case"], r["MB moved"], r["ours_us"], r["torch_us"], r["GBps"], r["of_copy"], r["speedup"]]
                                     for r in report["padded_concat"]]))
        lines.append("\n**Gather matmul** vs PyTorch `index_select` + `bmm` (float32; floor = max(FLOPs / matmul "
                     "ceiling, bytes / copy ceiling)):\n")
        lines.append(markdown_table(["case", "GFLOP", "MB moved", "ours us", "torch us", "TFLOP/s", "floor us", "speed-up"],
                                    [[r[k] for k in ("case", "GFLOP", "MB moved", "ours_us", "torch_us", "TFLOPs", "floor_us", "speedup")]
                                     for r in report["gather_matmul"]]))
    return "\n".join(lines)


def main(argv):
    del argv
    if FLAGS.build:
        os.environ["NAS_TF_CUDA"] = "1"  # nas_tf._native: a module with the CUDA kernels, built now if needed
    from nas_tf import kernels

    info = kernels.build_info()
    print("build:", json.dumps(info), flush=True)
    if FLAGS.device == "cuda":
        if not info["cuda"]:
            raise app.UsageError("nas_tf._kernels was built without CUDA: run with --build (needs nvcc)")
        try:
            import torch
        except ImportError as e:
            raise app.UsageError(f"the CUDA check needs PyTorch for device memory and timing ({e})") from None
        if not torch.cuda.is_available():
            raise app.UsageError("no CUDA device is visible")
        be = CudaBackend(kernels)
        device = f"{torch.cuda.get_device_name()} (PyTorch {torch.__version__})"
    else:
        be = CpuBackend(kernels)
        device = f"CPU ({info['cpu_gather_matmul_path']} tiles), NumPy {np.__version__}"
    rng = np.random.default_rng(FLAGS.seed)
    n_pc, fail_pc = check_padded_concat(be, rng, FLAGS.random_cases)
    n_gm, fail_gm, worst = check_gather_matmul(be, rng, FLAGS.random_cases)
    failures = fail_pc + fail_gm
    checks = (f"{n_pc} padded-concat and {n_gm} gather-matmul cases ({', '.join(be.dtypes)}), "
              f"{len(failures)} failures; worst gather-matmul rel. error "
              + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    print("checks:", checks, flush=True)
    for f in failures[:20]:
        print("FAIL", f)
    report = {"device": device, "checks": checks, "repeats": FLAGS.repeats, "build": info}
    if FLAGS.timing and FLAGS.device == "cuda" and not failures:
        report["ceilings"] = ceilings(be)
        report["padded_concat"] = time_padded_concat(be, FLAGS.repeats, report["ceilings"])
        report["gather_matmul"] = time_gather_matmul(be, FLAGS.repeats, report["ceilings"])
    text = markdown(report)
    print(text)
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(report, f, indent=1)
    if FLAGS.output:
        from nas_tf.utils.report import update_section

        update_section(FLAGS.output, "ops-gpu", text)
    return 1 if failures else 0


if __name__ == "__main__":
    app.run(main)
