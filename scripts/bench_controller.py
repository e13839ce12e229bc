#!/usr/bin/env python3
"""The skip rate of the ENAS macro controller under the old and the authors' skip form.

The controller turns a skip score ``q' = C tanh(q / T)`` into a probability
with ``sigmoid(q')`` (``--skip_form=sigmoid``, the NAS paper; nas_tf's form
before issue #14) or ``sigmoid(2 q')`` (``softmax``, the two-way softmax of
the ENAS authors' code). This script samples the 66 skip bits of the 12-layer
macro space from the macro preset's controller (64 units, tanh constant 1.5)
under both forms and reports the skip rate

* at initialisation;
* with the attention saturated towards and away from skips
  (:func:`~nas_tf.controller.policy.saturate_skip_scores`): the bounds of the
  form, against ``sigmoid(C)`` / ``sigmoid(2C)``;
* after REINFORCE with the preset's settings on a synthetic reward that pays
  the fraction of skips set (or unset): what training can reach;
* after training with the skip penalty alone (target 0.4, weight 0.8, no
  reward): the penalty reads ``sigmoid(q')`` in both forms (the authors'
  code), so its fixed point is 0.4 under ``sigmoid`` and
  ``sigmoid(2 logit(0.4)) = 0.31`` under ``softmax``.

Writes the ``controller`` section of docs/benchmarks.md. A report, not a test.

    python scripts/bench_controller.py      # about 5 minutes on 2 cores
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("layers", 12, "Macro layers L (L(L-1)/2 skip bits).", lower_bound=2)
flags.DEFINE_float("tanh_constant", 1.5, "Tanh constant C of the controller (macro preset: 1.5).", lower_bound=1e-6)
flags.DEFINE_integer("samples", 2000, "Architectures sampled to measure each skip rate.", lower_bound=1)
flags.DEFINE_integer("steps", 150, "REINFORCE updates of each training run.", lower_bound=0)
flags.DEFINE_integer("archs", 20, "Architectures per update (the macro preset's aggregate).", lower_bound=1)
flags.DEFINE_float("lr", 1e-3, "Controller Adam learning rate (macro preset: 1e-3).", lower_bound=0.0)
flags.DEFINE_integer("seed", 0, "Seed of the controllers and of the sampling.", lower_bound=0)
flags.DEFINE_string(
    "output", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md"),
    "Markdown file to update.",
)
FLAGS = flags.FLAGS

FORMS = ("sigmoid", "softmax")


def _skip_columns(decisions):
    from nas_tf.spaces import Skip

    return np.concatenate(
        [np.arange(o, o + d.num_tokens) for d, o in zip(decisions.decisions, decisions.offsets) if isinstance(d, Skip) and d.num_tokens]
    )


def _controller(decisions, form):
    from nas_tf.controller import controller_for

    return controller_for(decisions, lstm_units=64, lstm_layers=1, init_range=0.1, tanh_constant=FLAGS.tanh_constant,
                          seed=FLAGS.seed, skip_form=form)


def _rate(controller, decisions, skips, seed):
    tokens, _, _ = controller.sample(decisions, FLAGS.samples, seed=[FLAGS.seed, seed])
    return float(tokens.numpy()[:, skips].mean())


def _train(decisions, skips, form, reward, skip_weight=0.0):
    """REINFORCE with the macro preset's settings on a synthetic reward; returns the final skip rate."""
    from nas_tf.controller import Reinforce

    searcher = Reinforce(
        _controller(decisions, form), learning_rate=FLAGS.lr, beta_1=0.0, epsilon=1e-3, entropy_weight=1e-4,
        entropy_mode="reward", baseline_decay=0.99, baseline_update="before", baseline_mode="per_arch",
        skip_target=0.4, skip_weight=skip_weight, seed=FLAGS.seed,
    )
    for _ in range(FLAGS.steps):
        tokens = searcher.sample(decisions, FLAGS.archs)
        searcher.update(decisions, tokens, reward(tokens[:, skips]))
    return _rate(searcher.controller, decisions, skips, 99)


def main(argv):
    from nas_tf.controller.policy import saturate_skip_scores
    from nas_tf.spaces.enas_macro import EnasMacroSpace
    from nas_tf.utils.report import machine_description, markdown_table, update_section

    decisions = EnasMacroSpace(num_layers=FLAGS.layers).decisions
    skips = _skip_columns(decisions)
    C = FLAGS.tanh_constant
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    start = time.time()
    rows = []
    for form in FORMS:
        k = 2.0 if form == "softmax" else 1.0
        c = _controller(decisions, form)
        init = _rate(c, decisions, skips, 1)
        saturate_skip_scores(c, +1)
        high = _rate(c, decisions, skips, 2)
        saturate_skip_scores(c, -1)
        low = _rate(c, decisions, skips, 3)
        towards = _train(decisions, skips, form, lambda bits: bits.mean(axis=1))
        away = _train(decisions, skips, form, lambda bits: 1.0 - bits.mean(axis=1))
        penalty = _train(decisions, skips, form, lambda bits: np.zeros(len(bits), np.float32), skip_weight=0.8)
        fixed_point = sig(k * np.log(0.4 / 0.6))
        rows.append([
            f"`{form}`" + (" (authors)" if form == "softmax" else " (old)"),
            f"[{sig(-k * C):.3f}, {sig(k * C):.3f}]",
            init, high, low, towards, away, penalty, float(fixed_point),
        ])
        print(form, rows[-1], flush=True)
    elapsed = time.time() - start
    headers = ["skip form", "P(skip) range", "init", "saturated +", "saturated -", "trained for skips",
               "trained against skips", "penalty only", "penalty fixed point"]
    bits = len(skips)
    text = f"""## Controller: the skip rate of the ENAS macro controller (`scripts/bench_controller.py`)

ENAS macro space, {FLAGS.layers} layers ({bits} skip bits), the macro preset's controller (64-unit
1-layer LSTM, init 0.1, tanh constant C = {C}, no temperature). Skip rate = fraction of the {bits} bits
set over {FLAGS.samples} sampled architectures. *saturated +/-*: attention weights set so that every
score saturates (`saturate_skip_scores`); the rate must equal the bound of the form's range.
*trained for / against skips*: {FLAGS.steps} REINFORCE updates of {FLAGS.archs} architectures with the
preset's settings (Adam {FLAGS.lr}, beta1 0, eps 1e-3, entropy 1e-4 in the reward, baseline 0.99
per architecture, before) on a synthetic reward = fraction of skips set (or unset), no penalty.
*penalty only*: the same run with reward 0 and the skip KL penalty (target 0.4, weight 0.8), whose
fixed point is `sigmoid(k logit(0.4))`, k = 2 for the authors' form.

{markdown_table(headers, rows)}

The old form (`sigmoid`) keeps every skip bit at least {sig(-C):.0%} likely to flip whatever the
controller learns; the authors' form (`softmax`, the default since issue #14) lets it reach
{sig(2 * C):.1%}. Wall time {elapsed:.0f} s ({machine_description()}).
"""
    update_section(FLAGS.output, "controller", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
