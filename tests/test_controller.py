"""The LSTM controller and the search strategies (REINFORCE, random search)."""

import numpy as np
import pytest
import tensorflow as tf

from nas_tf.controller import Controller, RandomSearch, Reinforce, controller_for
from nas_tf.spaces import Anchor, Categorical, DecisionList, NASCNNSpace, Select, Skip

SPACE = NASCNNSpace(num_layers=4, predict_strides=True)
MIXED = DecisionList(
    [
        Anchor("in0", anchor=0),
        Anchor("in1", anchor=1),
        Select("n2.a", num_candidates=2),
        Categorical("n2.op", "op", ("sep3", "max3", "identity")),
        Select("n2.b", num_candidates=2, anchor=2),
        Skip("n3.skips", anchor=3, num_candidates=3),
        Categorical("n3.op", "op", ("sep3", "max3", "identity")),
        Categorical("n3.act", "act", ("tanh", "relu")),
    ]
)


def test_architecture_and_initialisation():
    c = controller_for(SPACE.decisions, seed=0)
    assert c.lstm_units == 35 and c.lstm_layers == 2 and len(c.cells) == 2
    # One softmax head (kernel, bias, embedding) per decision type.
    assert set(c.heads) == {"filter_height", "filter_width", "num_filters", "stride_height", "stride_width"}
    assert c.heads["num_filters"][0].shape == (35, 4)
    for v in c.trainable_variables:
        values = v.numpy()
        assert np.all(np.abs(values) <= 0.08 + 1e-7), v.name
        assert values.std() > 0.01, v.name


@pytest.mark.parametrize("decisions", [SPACE.decisions, MIXED], ids=["nas_cnn", "mixed"])
def test_sample_shapes_and_log_prob_agreement(decisions):
    c = controller_for(decisions, seed=1)
    tokens, log_prob, entropy = c.sample(decisions, 16, seed=[3, 4])
    assert tokens.shape == (16, decisions.num_tokens) and tokens.dtype == tf.int32
    assert log_prob.shape == (16,) and entropy.shape == (16,)
    assert np.all(log_prob.numpy() < 0) and np.all(entropy.numpy() > 0)
    for t in tokens.numpy():
        decisions.decode(t)  # every sample is a valid token vector
    # Scoring the sampled tokens gives the log-probability of sampling them.
    lp, ent = c.log_prob(decisions, tokens)
    np.testing.assert_allclose(lp.numpy(), log_prob.numpy(), atol=1e-5)
    np.testing.assert_allclose(ent.numpy(), entropy.numpy(), atol=1e-5)
    # Same seed, same samples; another seed, other samples.
    again, _, _ = c.sample(decisions, 16, seed=[3, 4])
    np.testing.assert_array_equal(again.numpy(), tokens.numpy())
    other, _, _ = c.sample(decisions, 16, seed=[3, 5])
    assert not np.array_equal(other.numpy(), tokens.numpy())


def test_log_prob_is_exact_for_a_one_decision_list():
    dl = DecisionList([Categorical("a", "a", (0, 1, 2))])
    c = controller_for(dl, seed=2)
    tokens = np.array([[0], [1], [2]], dtype=np.int32)
    lp, ent = c.log_prob(dl, tokens)
    probs = np.exp(lp.numpy())
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(ent.numpy(), -(probs * np.log(probs)).sum(), atol=1e-5)
    # Sampling frequencies match those probabilities.
    samples, _, _ = c.sample(dl, 20000, seed=[0, 0])
    freq = np.bincount(samples.numpy()[:, 0], minlength=3) / 20000
    np.testing.assert_allclose(freq, probs, atol=0.015)


def test_skip_probability_is_the_anchor_attention():
    dl = DecisionList([Skip("l0", anchor=0, num_candidates=0), Skip("l1", anchor=1, num_candidates=1)])
    c = controller_for(dl, seed=0, lstm_layers=1)
    lp_on, _ = c.log_prob(dl, np.array([[1]], np.int32))
    lp_off, _ = c.log_prob(dl, np.array([[0]], np.int32))
    np.testing.assert_allclose(np.exp(lp_on) + np.exp(lp_off), 1.0, atol=1e-6)
    # Recompute sigmoid(v^T tanh(W_prev h_0 + W_curr h_1)) by hand.
    cell = c.cells[0]
    x = c.start_embedding.numpy()
    state = [np.zeros((1, 35), np.float32)] * 2
    h0, state = cell(x, state)
    h1, _ = cell(c.start_embedding.numpy(), state)  # no candidates at layer 0: next input is the start
    score = np.tanh(h0.numpy() @ c.w_prev.numpy() + h1.numpy() @ c.w_curr.numpy()) @ c.attention_v.numpy()
    np.testing.assert_allclose(np.exp(lp_on.numpy()), 1 / (1 + np.exp(-score[0])), atol=1e-5)


def test_temperature_and_tanh_constant_flatten_the_policy():
    dl = SPACE.decisions
    plain = controller_for(dl, seed=0)
    shaped = controller_for(dl, seed=0, temperature=5.0, tanh_constant=0.5)
    tokens, _, _ = plain.sample(dl, 8, seed=[1, 1])
    _, ent_plain = plain.log_prob(dl, tokens)
    _, ent_shaped = shaped.log_prob(dl, tokens)
    assert np.all(ent_shaped.numpy() >= ent_plain.numpy() - 1e-4)


def test_controller_rejects_unknown_types_and_bad_settings():
    c = controller_for(SPACE.decisions)
    with pytest.raises(ValueError, match="no softmax head"):
        c.sample(MIXED, 2, seed=[0, 0])
    with pytest.raises(ValueError, match="choices"):
        Controller({"a": 0})
    with pytest.raises(ValueError, match="temperature"):
        Controller({"a": 2}, temperature=0.0)


def toy_search(strategy, decisions, target, steps=60, m=10):
    rewards = []
    for _ in range(steps):
        tokens = strategy.sample(decisions, m)
        r = (tokens == target).mean(axis=1)
        strategy.update(decisions, tokens, r)
        rewards.append(r)
    return np.concatenate(rewards)


def test_reinforce_beats_random_search_on_a_known_optimum():
    decisions = NASCNNSpace(num_layers=3).decisions
    target = decisions.random_tokens(np.random.default_rng(123), 1)[0]
    rl = toy_search(Reinforce(controller_for(decisions, seed=0), learning_rate=0.01, seed=0), decisions, target)
    rnd = toy_search(RandomSearch(seed=0), decisions, target)
    top5 = lambda r: np.sort(r)[-5:].mean()  # noqa: E731
    assert rl.max() >= rnd.max()
    assert top5(rl) > top5(rnd)
    assert rl[-100:].mean() > rnd[-100:].mean() + 0.25


def test_reinforce_baseline_and_loss():
    decisions = NASCNNSpace(num_layers=2).decisions
    s = Reinforce(controller_for(decisions, seed=0), baseline_decay=0.9, seed=0)
    tokens = s.sample(decisions, 4)
    lp_before, _ = s.controller.log_prob(decisions, tokens)
    rewards = np.array([0.0, 0.0, 1.0, 0.0], np.float32)
    m1 = s.update(decisions, tokens, rewards)
    # First step: the baseline is the step's own mean; then the moving average.
    assert m1["baseline"] == pytest.approx(0.25)
    assert float(s.baseline) == pytest.approx(0.25)
    np.testing.assert_allclose(m1["loss"], -np.mean((rewards - 0.25) * lp_before.numpy()), rtol=1e-4)
    # The rewarded architecture became more likely, the others less.
    lp_after, _ = s.controller.log_prob(decisions, tokens)
    assert lp_after[2] > lp_before[2]
    m2 = s.update(decisions, tokens, np.ones(4, np.float32))
    assert m2["baseline"] == pytest.approx(0.25)
    assert float(s.baseline) == pytest.approx(0.9 * 0.25 + 0.1 * 1.0)


def test_one_controller_serves_every_depth():
    space = NASCNNSpace(num_layers=2)
    s = Reinforce(controller_for(space.decisions, seed=0), seed=0)
    for depth in (2, 4, 6):
        d = space.with_depth(depth).decisions
        tokens = s.sample(d, 3)
        assert tokens.shape == (3, d.num_tokens)
        s.update(d, tokens, [0.1, 0.2, 0.3])


@pytest.mark.parametrize("kind", ["reinforce", "random"])
def test_strategy_state_round_trips_through_a_checkpoint(tmp_path, kind):
    decisions = NASCNNSpace(num_layers=3).decisions

    def make():
        if kind == "random":
            return RandomSearch(seed=7)
        return Reinforce(controller_for(decisions, seed=7), seed=7)

    a = make()
    for _ in range(3):
        t = a.sample(decisions, 4)
        a.update(decisions, t, np.linspace(0, 1, 4))
    ckpt = tf.train.Checkpoint(**a.trackables())
    path = ckpt.save(str(tmp_path / "ckpt"))
    expected = a.sample(decisions, 4)
    a.update(decisions, expected, np.linspace(0, 1, 4))
    expected_next = a.sample(decisions, 4)

    b = make()
    tf.train.Checkpoint(**b.trackables()).restore(path).assert_existing_objects_matched()
    got = b.sample(decisions, 4)
    np.testing.assert_array_equal(got, expected)
    b.update(decisions, got, np.linspace(0, 1, 4))
    np.testing.assert_array_equal(b.sample(decisions, 4), expected_next)


def test_random_search_is_uniform():
    decisions = DecisionList([Categorical("a", "a", tuple(range(4))), Skip("s0", 0, 0), Skip("s1", 1, 1)])
    s = RandomSearch(seed=0)
    tokens = np.concatenate([s.sample(decisions, 500) for _ in range(4)])
    assert s.update(decisions, tokens, np.zeros(len(tokens))) == {}
    np.testing.assert_allclose(np.bincount(tokens[:, 0]) / len(tokens), 0.25, atol=0.03)
    np.testing.assert_allclose(tokens[:, 1].mean(), 0.5, atol=0.04)
