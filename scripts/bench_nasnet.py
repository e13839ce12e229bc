#!/usr/bin/env python3
"""NASNet benchmarks: networks vs keras.applications, controller steps, searchers.

Three tables, each written into its section of docs/benchmarks.md
(``nasnet_models``, ``nasnet_controller``, ``nasnet_search``; a report, not a
test):

1. NASNet-A Mobile / Large / CIFAR built by nas_tf next to
   ``keras.applications.NASNetMobile`` / ``NASNetLarge``: parameters, build
   time and inference throughput (batch 8 on this machine), with ratios.
2. Controller step on the 50-decision NASNet space (1-layer LSTM, 100 units,
   batches of 20): first call (tracing), later calls, and later calls when
   ``keras.backend.clear_session()`` runs between steps (what the child
   trainer did before: it made every step trace again).
3. REINFORCE, PPO and random search at an equal budget on the embedded
   digits with the default children of ``scripts/search_nasnet.py``.

    python scripts/bench_nasnet.py                              # about 30 minutes on 2 cores
    python scripts/bench_nasnet.py --tables=models,controller   # a few minutes
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_list("tables", "models,controller,search", "Tables to produce: models, controller, search.")
flags.DEFINE_integer("num_architectures", 30, "Children per searcher in the search table.", lower_bound=1)
flags.DEFINE_integer("archs_per_step", 5, "Children per controller step in table 3.", lower_bound=1)
flags.DEFINE_integer("child_epochs", 3, "Epochs per child in table 3.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the searches.", lower_bound=0)
flags.DEFINE_integer("repeats", 5, "Timed repetitions (median) in tables 1 and 2.", lower_bound=1)
flags.DEFINE_string("output", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md"),
                    "Markdown file to update.")
flags.DEFINE_string("work_dir", None, "Where the searches go (default: a temporary directory).")
flags.DEFINE_bool(
    "tiny", False,
    "Smoke run: NASNets of 1 cell at 64 px against Keras' NASNet builder, 1-block cells, 1 child per search.",
)
FLAGS = flags.FLAGS


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _inference_steps(models, shape):
    import tensorflow as tf

    x = tf.random.normal((8,) + shape)
    steps = [tf.function(lambda v, m=m: m(v, training=False)) for m in models]
    for step in steps:
        step(x).numpy()  # trace
    return [lambda step=step: step(x).numpy() for step in steps]


def _throughputs(models, shape, repeats):
    """Images per second of each model, timed in alternation (the machine is shared)."""
    steps = _inference_steps(models, shape)
    times = [[] for _ in steps]
    for _ in range(repeats):
        for i, step in enumerate(steps):
            times[i].append(_timed(step)[1])
    return [8 / float(np.median(t)) for t in times]


def models_table(repeats):
    import keras

    from nas_tf.models import nasnet_a_cifar, nasnet_a_large, nasnet_a_mobile

    rows = []
    cases = [
        ("NASNet-A Mobile 4 @ 1056, 224 px", nasnet_a_mobile, lambda: keras.applications.NASNetMobile(weights=None), (224, 224, 3)),
        ("NASNet-A Large 6 @ 4032, 331 px", nasnet_a_large, lambda: keras.applications.NASNetLarge(weights=None), (331, 331, 3)),
        ("NASNet-A CIFAR 6 @ 768, 32 px", nasnet_a_cifar, None, (32, 32, 3)),
    ]
    if FLAGS.tiny:
        from keras.src.applications.nasnet import NASNet  # the builder behind NASNetMobile/Large

        import nas_tf
        from nas_tf.models import build_nasnet

        tiny = dict(penultimate_filters=96, skip_reduction=False)
        cases = [(
            "tiny 1 @ 96, 64 px",
            lambda: build_nasnet(nas_tf.load_arch("nasnet_a"), (64, 64, 3), 10, num_cells=1, skeleton="imagenet",
                                 stem_filters=8, batch_norm_momentum=0.9997, batch_norm_epsilon=1e-3, dropout=0.5, **tiny),
            lambda: NASNet(input_shape=(64, 64, 3), num_blocks=1, stem_block_filters=8, weights=None, classes=10, **tiny),
            (64, 64, 3),
        )]
    for name, ours_fn, theirs_fn, shape in cases:
        keras.backend.clear_session()
        ours, ours_build = _timed(ours_fn)
        trainable = sum(int(np.prod(w.shape)) for w in ours.trainable_weights)
        if theirs_fn is not None:
            theirs, theirs_build = _timed(theirs_fn)
            ours_speed, theirs_speed = _throughputs([ours, theirs], shape, repeats)
            rows.append([name, ours.count_params(), theirs.count_params(), trainable, f"{ours_build:.1f} / {theirs_build:.1f}",
                         f"{ours_speed:.1f} / {theirs_speed:.1f}", round(ours_speed / theirs_speed, 2)])
        else:
            (ours_speed,) = _throughputs([ours], shape, repeats)
            rows.append([name, ours.count_params(), "-", trainable, f"{ours_build:.1f} / -", f"{ours_speed:.1f} / -", "-"])
    return rows


def controller_table(repeats):
    import keras

    from nas_tf.controller import PPO, Reinforce, controller_for
    from nas_tf.spaces import NASNetSpace

    space = NASNetSpace(num_blocks=1) if FLAGS.tiny else NASNetSpace()
    archs = 4 if FLAGS.tiny else 20
    rows = []
    rewards = np.linspace(0.1, 0.9, archs)
    for cls in (Reinforce, PPO):
        searcher = cls(controller_for(space.decisions, lstm_units=100, lstm_layers=1, init_range=0.1, seed=0),
                       learning_rate=3.5e-4, entropy_weight=1e-5)

        def step():
            tokens = searcher.sample(space.decisions, archs)
            searcher.update(space.decisions, tokens, rewards)
            searcher.entropy(space.decisions, tokens)

        _, first = _timed(step)
        later = float(np.median([_timed(step)[1] for _ in range(repeats)]))
        cleared = []
        for _ in range(1 if FLAGS.tiny else max(2, repeats // 2)):
            keras.backend.clear_session(free_memory=False)
            cleared.append(_timed(step)[1])
        cleared = float(np.median(cleared))
        rows.append([searcher.name, f"{first:.2f}", f"{later:.3f}", f"{cleared:.2f}", round(cleared / later, 1)])
    return rows


def search_table(work_dir):
    from nas_tf.controller import PPO, RandomSearch, Reinforce, controller_for
    from nas_tf.data import load_digits
    from nas_tf.search import InProcessEvaluator, MultiTrialSearch, SearchConfig
    from nas_tf.spaces import NASNetSpace
    from nas_tf.tasks import ImageChildConfig, ImageChildTrainer
    from nas_tf.training import SGDConfig

    data = load_digits()
    space = NASNetSpace(num_blocks=1) if FLAGS.tiny else NASNetSpace()
    child = ImageChildConfig(epochs=FLAGS.child_epochs, optimizer=SGDConfig(schedule="cosine"), reward_window=1, reward_exponent=1.0,
                             steps_per_epoch=4 if FLAGS.tiny else 0,
                             builder_options=dict(num_cells=1, num_conv_filters=4 if FLAGS.tiny else 8))
    results = {}
    for algorithm in ("reinforce", "ppo", "random"):
        settings = dict(learning_rate=3.5e-4, entropy_weight=1e-5, baseline_decay=0.95, seed=FLAGS.seed)
        controller = controller_for(space.decisions, lstm_units=100, lstm_layers=1, init_range=0.1, seed=FLAGS.seed)
        searcher = {"reinforce": lambda: Reinforce(controller, **settings), "ppo": lambda: PPO(controller, **settings),
                    "random": lambda: RandomSearch(seed=FLAGS.seed)}[algorithm]()
        trainer = ImageChildTrainer(data, child)
        search = MultiTrialSearch(space, searcher, InProcessEvaluator(trainer, trainer.settings()),
                                  SearchConfig(os.path.join(work_dir, algorithm), FLAGS.num_architectures,
                                               FLAGS.archs_per_step, seed=FLAGS.seed))
        _, wall = _timed(search.run)
        rewards = np.array([r["reward"] for r in sorted(search.history, key=lambda r: r["child"])])
        results[algorithm] = (rewards, wall)
    n = FLAGS.num_architectures
    checkpoints = sorted({max(1, round(n * f)) for f in (0.2, 0.4, 0.6, 0.8, 1.0)})
    rows = []
    for k in checkpoints:
        row = [k]
        for algorithm in ("reinforce", "ppo", "random"):
            r = results[algorithm][0][:k]
            row += [float(r.max()), float(np.sort(r)[-5:].mean()), float(r.mean())]
        rows.append(row)
    return rows, {a: w for a, (_, w) in results.items()}


MODEL_HEADERS = ["network", "params (nas_tf)", "params (keras)", "trainable", "build s (nas_tf / keras)",
                 "images/s (nas_tf / keras)", "speed ratio"]
CONTROLLER_HEADERS = ["searcher", "first step s", "later steps s", "after clear_session s", "ratio"]


def main(argv):
    del argv
    if FLAGS.tiny:
        FLAGS.repeats, FLAGS.num_architectures, FLAGS.archs_per_step, FLAGS.child_epochs = 1, 1, 1, 1
    from nas_tf.cli.drivers import setup_logging
    from nas_tf.utils.report import machine_description, markdown_table, update_section

    setup_logging()
    machine = f"Machine: {machine_description()}."
    if "models" in FLAGS.tables:
        rows = models_table(FLAGS.repeats)
        table = markdown_table(MODEL_HEADERS, rows)
        print(table)
        update_section(FLAGS.output, "nasnet_models", "\n".join([
            "## NASNet-A vs keras.applications (`scripts/bench_nasnet.py --tables=models`)",
            "",
            "Built by `nas_tf.models` and by `keras.applications` (no auxiliary head, Keras settings);",
            "inference of a batch of 8 in a `tf.function`, the two models timed in alternation, median",
            f"of {FLAGS.repeats}:",
            "",
            table,
            "",
            machine,
        ]))
    if "controller" in FLAGS.tables:
        rows = controller_table(FLAGS.repeats)
        table = markdown_table(CONTROLLER_HEADERS, rows)
        print(table)
        update_section(FLAGS.output, "nasnet_controller", "\n".join([
            "## NASNet controller step (`scripts/bench_nasnet.py --tables=controller`)",
            "",
            "One controller step on the 50-decision NASNet space (1-layer LSTM of 100 units, 20",
            "architectures: sample, update, entropy). `keras.backend.clear_session()` resets TensorFlow's",
            "default graph, so every step after it traces the controller's functions again (what the",
            "child trainer did before this measurement; it no longer calls it):",
            "",
            table,
            "",
            machine,
        ]))
    if "search" in FLAGS.tables:
        work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_nasnet_")
        rows, walls = search_table(work_dir)
        headers = ["children"] + [f"{a} {m}" for a in ("REINFORCE", "PPO", "random") for m in ("best", "top-5 mean", "mean")]
        table = markdown_table(headers, rows)
        print(table)
        update_section(FLAGS.output, "nasnet_search", "\n".join([
            "## NASNet search: REINFORCE vs PPO vs random (`scripts/bench_nasnet.py --tables=search`)",
            "",
            f"Embedded digits, NASNet space (B = 5, 13 ops): {FLAGS.num_architectures} children per searcher,",
            f"{FLAGS.archs_per_step} per controller step; children of N = 1 normal cell per stage and F = 8",
            f"filters, {FLAGS.child_epochs} epochs with cosine decay, reward = final validation accuracy;",
            f"controller as in the paper (1 x 100 LSTM, lr 3.5e-4, entropy 1e-5), PPO with 4 epochs, seed {FLAGS.seed}.",
            "Rewards as the budget is spent:",
            "",
            table,
            "",
            "Wall time: " + ", ".join(f"{a} {w:.0f} s" for a, w in walls.items()) + ".",
            "One seed and a tiny budget: differences of a few hundredths are noise of child training. With",
            "the paper's controller learning rate (3.5e-4) a few updates barely move the policy, so from one",
            "seed REINFORCE and PPO sample nearly the same children: this table shows the loop at work, not",
            "which algorithm is better.",
            "",
            machine,
        ]))
    print(f"updated {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
