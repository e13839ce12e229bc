#!/usr/bin/env python3
"""Latency-aware NAS-CNN search vs the unconstrained search at the same budget, on the embedded digits.

Runs the multi-trial NAS search twice with the same seed, space, child
training and number of children (the REINFORCE controller):

1. unconstrained: reward = (best validation accuracy)^3, as ``search_nas.py``;
2. latency-aware: reward = (accuracy * (latency / T) ** w)^3, the MnasNet
   form (:class:`nas_tf.export.CostObjective`, ``--cost_constraint`` soft or
   hard), ``T`` = ``--target_latency_ms`` or, by default, the median latency
   of the unconstrained search's children.

Every child of both searches is measured as exported (TFLite interpreter on
this CPU, batch 1, median of ``--latency_runs`` after warm-up, the dataset's
preprocessing inside: :class:`nas_tf.export.CostMeter`, cached per arch so a
child sampled by both searches is timed once, side by side with the others).
Writes the accuracy-latency points of both searches and the Pareto front found
(docs/latency_search.png) and a table into the ``latency_search`` section of
docs/benchmarks.md. A report, not a test.

The search-loop hook of ``--target_latency_ms`` is not in ``search_nas.py``
yet: this script wraps the child trainer with the cost-aware reward itself
(:class:`CostAwareChild`), which is what the hook does.

    python scripts/bench_latency_search.py        # about 10 minutes on 2 cores (2 x 32 children)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_integer("num_architectures", 32, "Children per search (the budget).", lower_bound=1)
flags.DEFINE_integer("archs_per_step", 2, "Children per controller step.", lower_bound=1)
flags.DEFINE_integer("child_epochs", 2, "Epochs per child.", lower_bound=1)
flags.DEFINE_integer("start_depth", 3, "Layers per child.", lower_bound=1)
flags.DEFINE_float("controller_lr", 0.02, "REINFORCE learning rate (high: the budget is small).", lower_bound=0.0)
flags.DEFINE_float("target_latency_ms", 0.0, "Target latency T (0: the median of the unconstrained children).",
                   lower_bound=0.0)
flags.DEFINE_float("latency_weight", -1.0, "The exponent w of (latency / T) ** w (MnasNet: -0.07 soft, -1 hard).")
flags.DEFINE_enum("cost_constraint", "hard", ["soft", "hard"], "MnasNet / Vertex AI NAS variant.")
flags.DEFINE_integer("latency_runs", 50, "Timed TFLite invocations per child (median).", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of both searches.", lower_bound=0)
flags.DEFINE_string("output", os.path.join(REPO, "docs", "benchmarks.md"), "Markdown file to update.")
flags.DEFINE_string("figure", os.path.join(REPO, "docs", "latency_search.png"), "Scatter plot to write.")
flags.DEFINE_string("work_dir", None, "Where the two runs go (default: a temporary directory).")
FLAGS = flags.FLAGS


class CostAwareChild:
    """The image child trainer with its reward weighed by the child's measured costs.

    Trains the child as usual, then measures its latency, FLOPs and
    parameters (cached per arch) and, if the objective is active, replaces
    the reward by ``(accuracy * factor) ** reward_exponent``. The costs go
    into the child's metrics (so into ``history.jsonl``) in both cases.
    """

    def __init__(self, trainer, meter, objective):
        self.trainer, self.meter, self.objective = trainer, meter, objective

    def __call__(self, request):
        result = self.trainer(request)
        if result.status != "ok":
            return result
        costs = self.meter.measure(request.arch, lambda: self.trainer.build_model(request.arch))
        factor = self.objective.factor(costs)
        result.metrics.update(costs, cost_factor=factor, accuracy_reward=result.reward)
        if self.objective.active:
            result.reward = self.objective.reward(result.metrics["val_accuracy"], costs,
                                                  exponent=self.trainer.config.reward_exponent)
        return result


def run(name, data, meter, objective, work_dir):
    from nas_tf.controller import Reinforce, controller_for
    from nas_tf.search import InProcessEvaluator, MultiTrialSearch, SearchConfig
    from nas_tf.spaces import NASCNNSpace
    from nas_tf.tasks import ImageChildConfig, ImageChildTrainer

    space = NASCNNSpace(num_layers=FLAGS.start_depth)
    searcher = Reinforce(controller_for(space.decisions, seed=FLAGS.seed), learning_rate=FLAGS.controller_lr,
                         seed=FLAGS.seed)
    trainer = ImageChildTrainer(data, ImageChildConfig(epochs=FLAGS.child_epochs))
    child = CostAwareChild(trainer, meter, objective)
    settings = {**trainer.settings(), "objective": objective.config()}
    search = MultiTrialSearch(
        space, searcher, InProcessEvaluator(child, settings),
        SearchConfig(os.path.join(work_dir, name), FLAGS.num_architectures, FLAGS.archs_per_step, seed=FLAGS.seed),
    )
    start = time.time()
    search.run()
    rows = [r for r in sorted(search.history, key=lambda r: r["child"]) if r["status"] == "ok"]
    return rows, time.time() - start


def pareto(points):
    """Indices of the points no other point beats on both latency (lower) and accuracy (higher)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -1.0
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot(results, target, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    styles = {"unconstrained": ("tab:blue", "o"), "latency-aware": ("tab:red", "^")}
    everything = []
    for name, (rows, _) in results.items():
        color, marker = styles[name]
        lat = [r["metrics"]["latency_ms"] for r in rows]
        acc = [r["val_accuracy"] for r in rows]
        ax.scatter(lat, acc, c=color, marker=marker, alpha=0.7, label=f"{name} ({len(rows)} children)")
        everything += [(x, y, name) for x, y in zip(lat, acc)]
    front = [everything[i] for i in pareto([(x, y) for x, y, _ in everything])]
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", c="black", lw=1, label="Pareto front (both)")
    ax.axvline(target, c="gray", ls="--", lw=1, label=f"target T = {target:.3g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency as exported (ms, TFLite, batch 1, this CPU)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("NAS-CNN children on the embedded digits")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return front


def main(argv):
    from nas_tf.cli.drivers import setup_logging
    from nas_tf.data import load_digits
    from nas_tf.export import CostMeter, CostObjective, LatencySettings
    from nas_tf.utils.report import machine_description, markdown_table, update_section

    setup_logging()
    data = load_digits()
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_latency_search_")
    # One meter for both searches: an arch sampled by both is timed once.
    meter = CostMeter(raw=data.raw_pixels, latency=LatencySettings(runs=FLAGS.latency_runs, warmup=10),
                      context={"dataset": data.name}, cache_path=os.path.join(work_dir, "costs.json"))
    results = {"unconstrained": run("unconstrained", data, meter, CostObjective(), work_dir)}
    target = FLAGS.target_latency_ms or float(np.median([r["metrics"]["latency_ms"] for r in results["unconstrained"][0]]))
    objective = CostObjective.from_settings(target_latency_ms=target, latency_weight=FLAGS.latency_weight,
                                            constraint=FLAGS.cost_constraint)
    results["latency-aware"] = run("latency_aware", data, meter, objective, work_dir)
    front = plot(results, target, FLAGS.figure)

    found = {}
    for name, (children, _) in results.items():
        for r in children:
            found.setdefault((r["metrics"]["latency_ms"], r["val_accuracy"]), []).append(name)
    rows = []
    for name, (children, seconds) in results.items():
        lat = np.array([r["metrics"]["latency_ms"] for r in children])
        acc = np.array([r["val_accuracy"] for r in children])
        flops = np.array([r["metrics"]["flops"] for r in children])
        half = len(children) // 2
        best = max(children, key=lambda r: (r["reward"], -r["child"]))
        rows.append([
            name, len(children), float(np.median(lat)), float(np.median(lat[half:])), float(np.mean(lat <= target)),
            float(np.median(flops)) / 1e6, float(acc.mean()), float(acc.max()),
            f"{best['val_accuracy']:.3f} @ {best['metrics']['latency_ms']:.3g} ms", sum(1 for p in front if name in found[(p[0], p[1])]),
            f"{seconds:.0f}",
        ])
    headers = ["search", "children", "median latency (ms)", "median latency, 2nd half", "share <= T",
               "median MFLOPs", "mean accuracy", "best accuracy", "best reward: accuracy @ latency",
               "on the Pareto front", "wall time (s)"]
    front_table = markdown_table(
        ["latency (ms)", "accuracy", "found by"],
        [[p[0], p[1], " and ".join(dict.fromkeys(found[(p[0], p[1])]))] for p in front],
    )
    ratio, ratio_late = rows[1][2] / rows[0][2], rows[1][3] / rows[0][3]
    updates_half = FLAGS.num_architectures // 2 // FLAGS.archs_per_step
    target_source = "--target_latency_ms" if FLAGS.target_latency_ms else "the median latency of the unconstrained children"
    figure = os.path.relpath(FLAGS.figure, os.path.dirname(os.path.abspath(FLAGS.output)))
    text = f"""## Latency-aware search: NAS-CNN on the digits (`scripts/bench_latency_search.py`)

Two REINFORCE searches of the NAS macro-CNN space ({FLAGS.start_depth} layers) on the embedded digits,
{FLAGS.num_architectures} children each, {FLAGS.child_epochs} epochs per child, {FLAGS.archs_per_step}
children per controller step, controller lr {FLAGS.controller_lr}, seed {FLAGS.seed}: the unconstrained reward
(accuracy^3) against the MnasNet reward (accuracy * (latency / T)^w)^3, {FLAGS.cost_constraint}
constraint, w = {FLAGS.latency_weight}, T = {target:.4g} ms ({target_source}).
Every child's latency is measured as exported: the TFLite file of its serving model (preprocessing
inside), batch 1, median of {FLAGS.latency_runs} invocations after 10 warm-up ones, one interpreter
thread; children of both searches timed in one run, cached per arch.

{markdown_table(headers, rows)}

Median latency of the latency-aware children / the unconstrained ones: {ratio:.2f} over all children,
{ratio_late:.2f} over the second half (after {updates_half} controller updates; the first step samples
the same children in both searches: same seed, same initial controller).
Pareto front of all children (no child is both faster and more accurate):

{front_table}

![accuracy against latency of the children of both searches]({figure})

{machine_description()}. One seed and a small budget ({-(-FLAGS.num_architectures // FLAGS.archs_per_step)} controller
updates per search): accuracies of single children trained {FLAGS.child_epochs} epochs differ by a few hundredths
from one training to the next.
"""
    update_section(FLAGS.output, "latency_search", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
