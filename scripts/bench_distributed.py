#!/usr/bin/env python3
"""Distributed search, measured: parallel children, the multi-worker collectives, the controller.

Three tables, written into docs/benchmarks.md (a report, not a test):

* ``children``: children per hour when the same children are trained in this
  process and by N worker processes (``ParallelEvaluator``), side by side in
  one run; worker start-up (a TensorFlow import each) is reported apart.
* ``collectives``: what one synchronous controller step moves between the
  hosts of a multi-worker search, measured on a 2-process cluster on
  127.0.0.1: the all-gather of the step's child results and the broadcast of
  the chief's controller state (weights, Adam slots, baseline), bytes and time.
* ``controller``: the controller's own cost per step (sample m architectures,
  one REINFORCE update) at the depths of the NAS CIFAR-10 search;
* ``enas``: the ENAS shared-weights step on 1 vs 2 replicas, by running
  ``scripts/bench_enas_distributed.py`` (its own process: it splits the CPU
  into logical devices before TensorFlow starts), which writes its own section.

docs/distributed.md turns these numbers into the estimate of the NAS paper's
scale (K replicas x m children).

    python scripts/bench_distributed.py               # about 15 minutes on 2 cores (5 without enas)
    python scripts/bench_distributed.py --workers=1,2,4 --children=16
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from absl import app, flags  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_list("workers", "1,2", "Numbers of parallel child workers to compare with training in this process.")
flags.DEFINE_integer("children", 8, "Children trained per configuration.", lower_bound=1)
flags.DEFINE_integer("child_epochs", 2, "Epochs per child.", lower_bound=1)
flags.DEFINE_integer("depth", 3, "Layers of the children (NAS CNN space).", lower_bound=1)
flags.DEFINE_integer("train_subset", 512, "Training images of the embedded digits per child (0: all).", lower_bound=0)
flags.DEFINE_integer("archs_per_step", 8, "m: children per controller step (the paper's 8).", lower_bound=1)
flags.DEFINE_list("controller_depths", "3,15", "Depths of the NAS CIFAR-10 search at which the controller is timed.")
flags.DEFINE_list("controller_batches", "8,100,800",
                  "Architectures per controller step at which it is timed (8: the paper's m; 800: K x m).")
flags.DEFINE_list("tables", "children,collectives,controller,enas", "Tables to measure.")
flags.DEFINE_string("output", os.path.join(REPO, "docs", "benchmarks.md"), "Markdown file to update.")
flags.DEFINE_string("probe", None, "Internal: run the collectives probe as this cluster member (TF_CONFIG set).")
FLAGS = flags.FLAGS

SECTION = "distributed"


def _requests(num, depth, seed=0):
    from nas_tf.controller import RandomSearch
    from nas_tf.search import ChildRequest, child_seed
    from nas_tf.spaces import NASCNNSpace

    space = NASCNNSpace(num_layers=depth)
    tokens = RandomSearch(seed=seed).sample(space.decisions, num)
    return [ChildRequest(i, 0, space.from_tokens(t), child_seed(seed, i)) for i, t in enumerate(tokens)]


def bench_children():
    from nas_tf.search import InProcessEvaluator
    from nas_tf.search.evaluators import ParallelEvaluator
    from nas_tf.tasks import ImageChildConfig, TrainerSpec

    config = ImageChildConfig(epochs=FLAGS.child_epochs, reward_window=1)
    spec = TrainerSpec("image", "digits", config, train_subset=FLAGS.train_subset)
    requests = _requests(FLAGS.children, FLAGS.depth)
    rows, rewards = [], {}
    t0 = time.time()
    evaluator = InProcessEvaluator(spec.build())
    list(evaluator.evaluate(_requests(1, FLAGS.depth, seed=99)))  # warm: first-use costs of this process
    t0 = time.time()
    results = list(evaluator.evaluate(requests))
    base = time.time() - t0
    rewards["in_process"] = {r.index: r.reward for r in results}
    times = [r.wall_time for r in results]
    bench_children.utilisation = sum(times) / (len(times) * max(times))
    rows.append(["in this process", os.cpu_count(), "-", round(base, 1), round(3600 * len(requests) / base), 1.0])
    for n in [int(w) for w in FLAGS.workers]:
        with ParallelEvaluator(spec, n) as evaluator:
            t0 = time.time()
            evaluator._ensure_workers()
            startup = time.time() - t0
            t0 = time.time()
            results = list(evaluator.evaluate(requests))
            wall = time.time() - t0
            threads = evaluator.threads
        rewards[n] = {r.index: r.reward for r in results}
        rows.append([f"{n} worker process(es)", threads, round(startup, 1), round(wall, 1),
                     round(3600 * len(requests) / wall), round(base / wall, 2)])
        print(f"{n} workers: {wall:.1f}s for {len(requests)} children (+{startup:.1f}s start-up)", flush=True)
    same = all(rewards[k] == rewards["in_process"] for k in rewards)
    return rows, same


def probe_collectives(index: int) -> dict:
    """One member of the 2-process cluster: times the collectives of a controller step."""
    import numpy as np

    from nas_tf.controller import Reinforce, controller_for
    from nas_tf.distribute import all_gather_json, broadcast_from_chief, float_variables, make_strategy
    from nas_tf.spaces import NASCNNSpace

    strategy = make_strategy("multi_worker")
    space = NASCNNSpace(num_layers=FLAGS.depth)
    reinforce = Reinforce(controller_for(space.decisions, lstm_units=35, lstm_layers=2), seed=0)
    reinforce.update(space.decisions, reinforce.sample(space.decisions, 2), [0.1, 0.2])  # slots filled
    variables = float_variables(reinforce.trackables())
    m = FLAGS.archs_per_step
    share = [
        {"index": i, "reward": 0.5, "status": "ok", "reason": None, "wall_time": 61.2,
         "metrics": {"val_accuracy": 0.71, "val_accuracies": [0.5, 0.6, 0.65, 0.7, 0.71], "train_loss": 0.8,
                     "params": 123456, "worker": index}}
        for i in range(index, m, 2)
    ]
    payload = len(json.dumps(share).encode())
    gather_t, bcast_t, nbytes = [], [], 0
    for it in range(23):
        t0 = time.perf_counter()
        all_gather_json(strategy, share)
        t1 = time.perf_counter()
        nbytes = broadcast_from_chief(strategy, variables)
        t2 = time.perf_counter()
        if it >= 3:
            gather_t.append(t1 - t0)
            bcast_t.append(t2 - t1)
    return {"worker": index, "payload_bytes": payload, "broadcast_bytes": nbytes,
            "controller_params": int(sum(int(np.prod(v.shape)) for v in reinforce.controller.trainable_variables)),
            "gather_ms": 1000 * float(np.median(gather_t)), "broadcast_ms": 1000 * float(np.median(bcast_t))}


def bench_collectives():
    from nas_tf.distribute import local_tf_configs

    procs = []
    for i, tf_config in enumerate(local_tf_configs(2)):
        env = dict(os.environ, TF_CONFIG=tf_config, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, os.path.abspath(__file__), f"--probe={i}", f"--depth={FLAGS.depth}",
               f"--archs_per_step={FLAGS.archs_per_step}"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        if p.returncode:
            raise RuntimeError(f"collectives probe failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def bench_controller():
    import numpy as np

    from nas_tf.controller import Reinforce, controller_for
    from nas_tf.spaces import NASCNNSpace

    rows = []
    for depth in [int(d) for d in FLAGS.controller_depths]:
        space = NASCNNSpace(num_layers=depth)
        reinforce = Reinforce(controller_for(space.decisions, lstm_units=35, lstm_layers=2), seed=0)
        params = int(sum(int(np.prod(v.shape)) for v in reinforce.controller.trainable_variables))
        for m in [int(b) for b in FLAGS.controller_batches]:
            samples, updates = [], []
            for it in range(6):
                t0 = time.perf_counter()
                tokens = reinforce.sample(space.decisions, m)
                t1 = time.perf_counter()
                reinforce.update(space.decisions, tokens, np.linspace(0.1, 0.9, m))
                t2 = time.perf_counter()
                if it >= 2:
                    samples.append(t1 - t0)
                    updates.append(t2 - t1)
            step = float(np.median(samples) + np.median(updates))
            rows.append([depth, space.decisions.num_tokens, params, m, round(1000 * float(np.median(samples)), 1),
                         round(1000 * float(np.median(updates)), 1), round(1 / step, 2)])
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.probe is not None:
        print(json.dumps(probe_collectives(int(FLAGS.probe))))
        return
    from nas_tf.utils.report import machine_description, markdown_table, update_section

    parts = [
        "## Distributed search (`scripts/bench_distributed.py`)\n",
        f"Machine: {machine_description()}. One run; ratios are what to read.\n",
    ]
    tables = set(FLAGS.tables)
    if "children" in tables:
        rows, same = bench_children()
        parts.append(
            f"**Children per hour** ({FLAGS.children} NAS-CNN children of depth {FLAGS.depth}, {FLAGS.child_epochs} "
            f"epochs on {FLAGS.train_subset or 'all'} digit images each; the same children in every row):\n"
        )
        parts.append(markdown_table(
            ["trained by", "TF threads each", "start-up s", "wall s", "children / hour", "speed-up vs this process"],
            rows))
        parts.append(
            "\nSame rewards in every row: " + ("yes" if same else "no (float noise of other thread counts)") + ". "
            f"This machine has {os.cpu_count()} cores, so N workers share them: the speed-up here comes from "
            "overlapping one child's Python and tracing time with another's compute, not from more hardware. "
            "On a GPU host each worker owns a GPU and the rate scales with the GPUs until the step's m children "
            "are all in flight.\n"
        )
        parts.append(
            f"Child times vary with the architecture: over these children the mean is "
            f"{100 * bench_children.utilisation:.0f} % of the longest, which is the device utilisation of a "
            "synchronous step whose children start together (each worker waits for the slowest).\n"
        )
    if "collectives" in tables:
        probes = bench_collectives()
        rows = [[p["worker"], p["payload_bytes"], p["broadcast_bytes"], round(p["gather_ms"], 2),
                 round(p["broadcast_ms"], 2)] for p in probes]
        parts.append(
            f"**Collectives of one synchronous controller step** on a 2-worker `multi_worker` cluster (2 processes on "
            f"127.0.0.1, gRPC ring all-reduce), m = {FLAGS.archs_per_step} children per step, NAS controller "
            f"(2 x 35 LSTM, {probes[0]['controller_params']} weights) for depth {FLAGS.depth}:\n"
        )
        parts.append(markdown_table(
            ["worker", "its results, JSON bytes", "controller state broadcast, bytes", "all-gather ms", "broadcast ms"],
            rows))
        parts.append(
            "\nThe broadcast is the chief's weights, Adam slots and baseline (3 x weights + 2 scalars, float32), the same "
            "size as a gradient push plus a weight pull of the paper's parameter-server design.\n"
        )
    if "controller" in tables:
        rows = bench_controller()
        parts.append("**Controller cost per step** (NAS CIFAR-10 controller, 2 x 35 LSTM, CPU):\n")
        parts.append(markdown_table(
            ["depth", "decisions", "controller weights", "archs per step", "sample ms", "update ms",
             "controller steps / s"], rows))
    text = "\n".join(parts)
    print(text)
    update_section(FLAGS.output, SECTION, text)
    if "enas" in tables:
        script = os.path.join(REPO, "scripts", "bench_enas_distributed.py")
        subprocess.run([sys.executable, script, f"--output={FLAGS.output}"], check=True)


if __name__ == "__main__":
    app.run(main)
