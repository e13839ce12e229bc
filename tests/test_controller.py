"""The LSTM controller, its options of the authors' code, and the searchers (REINFORCE, random search)."""

import numpy as np
import pytest
import tensorflow as tf

from nas_tf.controller import Controller, RandomSearch, Reinforce, controller_for
from nas_tf.controller.policy import enas_micro_op_options, saturate_skip_scores
from nas_tf.spaces import Anchor, Categorical, DecisionList, NASCNNSpace, Select, Skip
from nas_tf.spaces.enas_macro import EnasMacroSpace
from nas_tf.spaces.enas_micro import MICRO_OPS

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


@pytest.mark.parametrize("form, factor", [("softmax", 2.0), ("sigmoid", 1.0)])
def test_skip_probability_is_the_anchor_attention(form, factor):
    dl = DecisionList([Skip("l0", anchor=0, num_candidates=0), Skip("l1", anchor=1, num_candidates=1)])
    c = controller_for(dl, seed=0, lstm_layers=1, init_range=0.5, skip_form=form)
    lp_on, _ = c.log_prob(dl, np.array([[1]], np.int32))
    lp_off, _ = c.log_prob(dl, np.array([[0]], np.int32))
    np.testing.assert_allclose(np.exp(lp_on) + np.exp(lp_off), 1.0, atol=1e-6)
    # Recompute q = v^T tanh(W_prev h_0 + W_curr h_1) by hand (LSTM in NumPy, Keras' gate order i, f, c, o).
    cell = c.cells[0]
    kernel, recurrent, bias = (w.numpy() for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731

    def lstm(x, h, cc):
        i, f, g, o = np.split(x @ kernel + h @ recurrent + bias, 4, axis=-1)
        cc = sig(f) * cc + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(cc), cc

    x = c.start_embedding.numpy()
    h0, c0 = lstm(x, np.zeros((1, 35)), np.zeros((1, 35)))
    h1, _ = lstm(x, h0, c0)  # no candidates at layer 0: the next input is the start embedding
    q = (np.tanh(h0 @ c.w_prev.numpy() + h1 @ c.w_curr.numpy()) @ c.attention_v.numpy())[0, 0]
    assert abs(q) > 0.05  # large enough to tell sigmoid(q) from sigmoid(2 q)
    # softmax([-q, q])[1] = sigmoid(2 q) (the ENAS code); sigmoid(q) (the NAS paper).
    np.testing.assert_allclose(np.exp(lp_on.numpy()[0]), sig(factor * q), rtol=1e-4)


@pytest.mark.parametrize("form, bound", [("softmax", 3.0), ("sigmoid", 1.5)])
def test_saturated_skip_rate_is_the_bound_of_the_skip_form(form, bound):
    """With tanh constant C = 1.5 a saturated score gives P(skip) = sigmoid(2C) (authors) or sigmoid(C)."""
    dl = EnasMacroSpace(num_layers=6).decisions  # 15 skip bits
    skips = np.concatenate([np.arange(o, o + d.num_tokens) for d, o in zip(dl.decisions, dl.offsets)
                            if isinstance(d, Skip) and d.num_tokens])
    c = controller_for(dl, seed=0, lstm_units=16, lstm_layers=1, tanh_constant=1.5, skip_form=form)
    for sign in (1, -1):
        saturate_skip_scores(c, sign)
        tokens, _, _ = c.sample(dl, 2000, seed=[sign + 2, 7])
        rate = tokens.numpy()[:, skips].mean()
        expected = 1 / (1 + np.exp(-sign * bound))  # 0.953 / 0.047 (softmax), 0.818 / 0.182 (sigmoid)
        assert rate == pytest.approx(expected, abs=0.007), (sign, rate)  # 30,000 bits: 5 standard errors
        # The log-probability of the skip bits is exact: every bit has the bound's probability.
        ones = np.zeros((1, dl.num_tokens), np.int32)
        zeros = ones.copy()
        ones[:, skips] = 1
        lp1, _ = c.log_prob(dl, ones)
        lp0, _ = c.log_prob(dl, zeros)
        np.testing.assert_allclose(float(lp1[0] - lp0[0]), len(skips) * sign * bound, rtol=1e-4)


def test_enas_micro_op_logits_are_the_authors_formula():
    """(C / 2.5) tanh(h W + b) + b_fixed, b initialised to 10 on the separable convs (melodyguan/enas)."""
    ops = MICRO_OPS  # sep3, sep5, avg3, max3, identity
    dl = DecisionList([Categorical("normal.blocks[0].ops[0]", "op", ops), Categorical("reduction.blocks[0].ops[0]", "op", ops)])
    c = controller_for(dl, seed=0, lstm_layers=1, tanh_constant=1.1, **enas_micro_op_options(ops))
    kernel, bias, _ = c.heads["op"]
    np.testing.assert_array_equal(bias.numpy(), [10, 10, 0, 0, 0])
    kernel.assign(np.zeros(kernel.shape, np.float32))  # logits independent of the LSTM state
    tokens = np.array([[a, b] for a in range(5) for b in range(5)], np.int32)
    lp, _ = c.log_prob(dl, tokens)
    C = 1.1 / 2.5
    normal = C * np.tanh(np.array([10, 10, 0, 0, 0.0])) + np.array([0.25, 0.25, -0.25, -0.25, -0.25])
    reduction = C * np.tanh(np.array([10, 10, 0, 0, 0.0]))
    log_softmax = lambda z: z - np.log(np.exp(z).sum())  # noqa: E731
    expected = log_softmax(normal)[tokens[:, 0]] + log_softmax(reduction)[tokens[:, 1]]
    np.testing.assert_allclose(lp.numpy(), expected, rtol=1e-5)
    # At the start a normal-cell op is a separable conv with probability 0.63 (the authors' prior).
    assert np.exp(log_softmax(normal))[:2].sum() == pytest.approx(0.630, abs=1e-3)


def test_enas_lm_distance_prior_input_scaling_and_tied_logits():
    """The enas_lm controller: logits - (l - j)^2 / 6, next input anchor_j / (0.1 + l - j), logits h E^T."""
    dl = DecisionList(
        [
            Anchor("n0", anchor=0),
            Anchor("n1", anchor=1),
            Select("n2.input", num_candidates=2),
            Categorical("n2.act", "act", ("tanh", "relu", "sigmoid", "identity")),
        ]
    )
    T, C = 5.0, 2.25
    c = controller_for(dl, seed=3, lstm_layers=1, lstm_units=8, init_range=0.5, temperature=T, tanh_constant=C,
                       tied_heads=["act"], distance_prior=6.0, distance_scaled_input=True)
    assert c.heads["act"][0] is None and not any("act_softmax" in v.name for v in c.weights)
    cell = c.cells[0]
    kernel, recurrent, bias = (w.numpy() for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    log_softmax = lambda z: z - np.log(np.exp(z).sum())  # noqa: E731

    def lstm(x, state):
        h, cc = state
        i, f, g, o = np.split(x @ kernel + h @ recurrent + bias, 4, axis=-1)
        cc = sig(f) * cc + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(cc), (sig(o) * np.tanh(cc), cc)

    start, emb = c.start_embedding.numpy(), c.heads["act"][2].numpy()
    h0, s = lstm(start, (np.zeros((1, 8)), np.zeros((1, 8))))
    h1, s = lstm(start, s)
    h2, s = lstm(start, s)
    q = np.tanh(np.concatenate([h0, h1]) @ c.w_prev.numpy() + h2 @ c.w_curr.numpy()) @ c.attention_v.numpy()
    select = C * np.tanh(q[:, 0] / T) - np.array([2.0, 1.0]) ** 2 / 6.0  # candidates 2 and 1 nodes back
    expected, tokens = [], []
    for j, anchor in enumerate((h0, h1)):
        h3, _ = lstm(anchor / (0.1 + 2 - j), s)
        act = C * np.tanh((h3 @ emb.T)[0] / T)
        for a in range(4):
            tokens.append([j, a])
            expected.append(log_softmax(select)[j] + log_softmax(act)[a])
    lp, _ = c.log_prob(dl, np.array(tokens, np.int32))
    np.testing.assert_allclose(lp.numpy(), expected, rtol=1e-5, atol=1e-6)


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
    with pytest.raises(ValueError, match="skip_form must be one of .* got 'bernoulli'"):
        Controller({"a": 2}, skip_form="bernoulli")
    with pytest.raises(ValueError, match=r"tanh_reduce: unknown decision types \['ops'\]"):
        Controller({"op": 2}, tanh_constant=1.1, tanh_reduce={"ops": 2.5})
    with pytest.raises(ValueError, match="tanh_reduce=.* divides tanh_constant, which is not set"):
        Controller({"op": 2}, tanh_reduce={"op": 2.5})
    with pytest.raises(ValueError, match=r"bias_init\['op'\] has 3 values but the head has 2 choices"):
        Controller({"op": 2}, bias_init={"op": [10, 0, 0]})
    with pytest.raises(ValueError, match=r"bias_init: tied heads \['op'\] have no logit bias"):
        Controller({"op": 2}, bias_init={"op": [10, 0]}, tied_heads=["op"])
    with pytest.raises(ValueError, match="distance_prior must be > 0 .* got 0"):
        Controller({"a": 2}, distance_prior=0)
    offsets = Controller({"op": 3, "act": 2}, logit_offsets={"n3.": [0.25, -0.25, -0.25]})
    with pytest.raises(ValueError, match="logit_offsets\\['n3.'\\] has 3 values but decision 'n3.act' has 2 choices"):
        offsets.sample(MIXED, 2, seed=[0, 0])
    with pytest.raises(ValueError, match="baseline_mode must be one of .* got 'per_step'"):
        Reinforce(controller_for(MIXED), baseline_mode="per_step")


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


def test_reinforce_per_batch_baseline_and_loss():
    decisions = NASCNNSpace(num_layers=2).decisions
    s = Reinforce(controller_for(decisions, seed=0), baseline_decay=0.9, seed=0, baseline_mode="per_batch")
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


def _authors_baselines(rewards, decay, b, update):
    """The ENAS code, one architecture per session step: b -= (1 - decay) (b - R), advantage R - b."""
    used = []
    for r in rewards:
        new_b = b - (1 - decay) * (b - r)
        used.append(new_b if update == "before" else b)
        b = new_b
    return np.array(used), b


@pytest.mark.parametrize("update", ["before", "after"])
def test_reinforce_per_arch_baseline_follows_the_authors_sequence(update):
    decisions = MIXED
    s = Reinforce(controller_for(decisions, seed=0, lstm_layers=1, lstm_units=8), baseline_decay=0.8, seed=0,
                  baseline_update=update)
    assert s.baseline_mode == "per_arch"  # the default
    b = None
    for rewards in ([0.1, 0.9, 0.8, 0.7], [0.9, 0.3, 0.6]):
        rewards = np.array(rewards, np.float32)
        tokens = s.sample(decisions, len(rewards))
        lp, _ = s.controller.log_prob(decisions, tokens)
        # The first architecture ever starts the average at its own reward (the authors start at 0).
        used, b = _authors_baselines(rewards, 0.8, rewards[0] if b is None else b, update)
        m = s.update(decisions, tokens, rewards)
        np.testing.assert_allclose(m["loss"], -np.mean((rewards - used) * lp.numpy()), rtol=1e-5)
        assert m["baseline"] == pytest.approx(used.mean(), rel=1e-6)
        assert float(s.baseline) == pytest.approx(b, rel=1e-6)
    # Per batch the same rewards move the average once per step, from the mean: another number.
    per_batch = 0.8 * 0.625 + 0.2 * 0.6  # 0.62; per arch 0.506
    assert abs(float(s.baseline) - per_batch) > 0.1


def test_one_controller_serves_every_depth():
    space = NASCNNSpace(num_layers=2)
    s = Reinforce(controller_for(space.decisions, seed=0), seed=0)
    for depth in (2, 4):
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
