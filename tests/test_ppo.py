"""PPO: the clipped surrogate, its equality with REINFORCE at one epoch, stale architectures, options."""

import numpy as np
import pytest
import tensorflow as tf

from nas_tf.controller import PPO, Reinforce, controller_for
from nas_tf.controller.ppo import ppo_surrogate_loss
from nas_tf.spaces import Categorical, DecisionList, Select, Skip

# Every kind of decision, few of them: tracing the update dominates a test's time.
SMALL = DecisionList(
    [
        Categorical("l0.op", "op", ("a", "b", "c")),
        Skip("l0.skips", anchor=0, num_candidates=0),
        Categorical("l1.op", "op", ("a", "b", "c")),
        Skip("l1.skips", anchor=1, num_candidates=1),
        Select("l2.input", num_candidates=2),
        Skip("l2.skips", anchor=2, num_candidates=2),
    ]
)


def _controller(decisions=SMALL):
    return controller_for(decisions, lstm_units=16, lstm_layers=1, init_range=0.1, seed=7)


def test_ppo_gradient_equals_reinforce_when_the_ratio_is_one():
    controller = _controller()
    tokens = SMALL.random_tokens(np.random.default_rng(1), 6)
    advantage = tf.constant([0.3, -0.2, 0.5, -0.4, 0.1, -0.3])
    variables = controller.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        log_prob, _ = controller.log_prob(SMALL, tokens)
        ppo, clipped = ppo_surrogate_loss(log_prob, tf.stop_gradient(log_prob), advantage, 0.2)
        reinforce = -tf.reduce_mean(advantage * log_prob)
    assert float(clipped) == 0.0
    for g_ppo, g_rf in zip(tape.gradient(ppo, variables), tape.gradient(reinforce, variables)):
        if g_rf is None:
            assert g_ppo is None
            continue
        np.testing.assert_allclose(tf.convert_to_tensor(g_ppo), tf.convert_to_tensor(g_rf), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "options",
    [
        dict(entropy_weight=1e-3),
        # The options PPO used to ignore: entropy in the reward, skip penalty, baseline placement.
        dict(entropy_weight=0.05, entropy_mode="reward", skip_weight=0.8, skip_target=0.3,
             baseline_update="before", baseline_mode="per_arch"),
    ],
    ids=["defaults", "enas_options"],
)
def test_one_epoch_of_ppo_is_a_reinforce_step(options):
    decisions = SMALL
    tokens = decisions.random_tokens(np.random.default_rng(2), 5)
    rewards = [0.2, 0.9, 0.4, 0.6, 0.1]
    settings = dict(learning_rate=0.01, seed=0, **options)
    reinforce = Reinforce(_controller(decisions), **settings)
    ppo = PPO(_controller(decisions), epochs=1, **settings)
    for _ in range(2):  # the second step uses the moving-average baseline
        m_rf = reinforce.update(decisions, tokens, rewards)
        m_ppo = ppo.update(decisions, tokens, rewards)
    for a, b in zip(reinforce.controller.weights, ppo.controller.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert float(reinforce.baseline.numpy()) == pytest.approx(float(ppo.baseline.numpy()))
    assert m_ppo["baseline"] == pytest.approx(m_rf["baseline"])
    assert m_ppo["skip_kl"] == pytest.approx(m_rf["skip_kl"], rel=1e-5)


def test_ppo_clipping_stops_the_gradient_outside_the_trust_region():
    log_prob = tf.Variable([0.5, -0.5, 0.05, 0.5])
    old = tf.constant([0.0, 0.0, 0.0, 0.0])
    advantage = tf.constant([1.0, -1.0, 1.0, -1.0])
    with tf.GradientTape() as tape:
        loss, clip_fraction = ppo_surrogate_loss(log_prob, old, advantage, 0.2)
    grad = tape.gradient(loss, log_prob).numpy()
    # ratio e^0.5 > 1.2 with A > 0 and e^-0.5 < 0.8 with A < 0: clipped, no gradient;
    # e^0.05 inside the range: the REINFORCE-like gradient; e^0.5 with A < 0: not clipped (pessimistic bound).
    assert grad[0] == 0.0 and grad[1] == 0.0
    assert grad[2] == pytest.approx(-np.exp(0.05) / 4)
    assert grad[3] == pytest.approx(np.exp(0.5) / 4)
    assert float(clip_fraction) == 0.5


def test_ppo_epochs_raise_the_probability_of_the_best_architecture():
    tokens = SMALL.random_tokens(np.random.default_rng(3), 8)
    rewards = np.linspace(0.1, 0.8, 8)
    strategy = PPO(_controller(), epochs=5, learning_rate=0.02, seed=0)
    before, _ = strategy.controller.log_prob(SMALL, tokens)
    for _ in range(3):
        metrics = strategy.update(SMALL, tokens, rewards)
    after, _ = strategy.controller.log_prob(SMALL, tokens)
    gain = (after - before).numpy()
    assert gain[-1] > 0 > gain[0]
    assert metrics["clip_fraction"] > 0  # the later epochs reached the clipping range
    assert strategy.config()["algorithm"] == "ppo" and strategy.config()["epochs"] == 5


def _surrogate(current, old, advantage, eps=0.2):
    """-mean(min(r A, clip(r) A)) by hand."""
    r = np.exp(current - old)
    return -np.mean(np.minimum(r * advantage, np.clip(r, 1 - eps, 1 + eps) * advantage))


def test_stale_architectures_use_the_log_prob_they_were_sampled_with():
    """The asynchronous controller: a child returns after other updates moved the policy."""
    d = SMALL
    ppo = PPO(_controller(), epochs=1, learning_rate=0.05, baseline_decay=0.5, seed=0)
    early = ppo.sample(d, 3)  # in flight while other children return
    sampled_lp, _ = ppo.controller.log_prob(d, early)  # the sampling policy (nothing moved yet)
    m1 = ppo.update(d, ppo.sample(d, 2), [0.9, 0.1])  # update 1 (fresh children: ratio 1)
    assert m1["staleness"] == 0.0
    current_lp, _ = ppo.controller.log_prob(d, early)
    assert np.abs(current_lp.numpy() - sampled_lp.numpy()).max() > 1e-3  # the policy has moved

    rewards = np.array([0.2, 0.6, 0.4], np.float32)
    m2 = ppo.update(d, early, rewards)
    assert m2["staleness"] == 1.0
    # P_old is the sampling policy, not the current one.
    assert m2["log_prob"] == pytest.approx(float(np.mean(sampled_lp)), abs=1e-5)
    # per_arch baseline (decay 0.5): 0.9, 0.5 after update 1, then 0.35, 0.475, 0.4375; "after": the previous one.
    advantage = rewards - np.array([0.5, 0.35, 0.475])
    expected = _surrogate(current_lp.numpy(), sampled_lp.numpy(), advantage)
    assert m2["loss"] == pytest.approx(expected, rel=1e-4)
    assert expected != pytest.approx(-np.mean(advantage), rel=1e-3)  # the ratio is not 1
    # Each sampled architecture is consumed once: updated again, it counts as fresh.
    assert ppo.update(d, early, rewards)["staleness"] == 0.0


def test_the_sampling_log_probs_survive_a_checkpoint(tmp_path):
    d = SMALL

    def make():
        return PPO(_controller(), epochs=2, learning_rate=0.05, seed=3)

    a = make()
    early = a.sample(d, 2)
    a.update(d, a.sample(d, 2), [0.1, 0.7])
    path = tf.train.Checkpoint(**a.trackables()).save(str(tmp_path / "ckpt"))
    expected = a.update(d, early, [0.5, 0.3])

    b = make()
    tf.train.Checkpoint(**b.trackables()).restore(path).assert_existing_objects_matched()
    got = b.update(d, early, [0.5, 0.3])
    assert got["staleness"] == 1.0
    for k in ("loss", "log_prob", "baseline", "approx_kl"):
        assert got[k] == pytest.approx(expected[k], rel=1e-5, abs=1e-7), k


def test_ppo_settings_errors():
    with pytest.raises(ValueError, match="clip_epsilon"):
        PPO(_controller(), clip_epsilon=1.5)
    with pytest.raises(ValueError, match="memory must be a positive integer, got 0"):
        PPO(_controller(), memory=0)
    with pytest.raises(ValueError, match="baseline_mode must be one of .* got 'per_step'"):
        PPO(_controller(), baseline_mode="per_step")
    with pytest.raises(ValueError, match="entropy_mode must be 'loss' or 'reward', got 'both'"):
        PPO(_controller(), entropy_mode="both")
