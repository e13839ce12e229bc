"""ENAS: spaces, supernets (shared weights), the one-shot loop, controller options."""


import keras
import numpy as np
import pytest
import tensorflow as tf

import nas_tf
from conftest import outputs_and_input_gradient
from nas_tf.controller import Reinforce, controller_for
from nas_tf.models.enas_macro import EnasMacroSupernet, build_enas_macro
from nas_tf.spaces import ArchError, DecisionList, Skip
from nas_tf.spaces.enas_macro import EnasMacroArch, EnasMacroSpace, MacroLayer, macro_arch_from_arc
from nas_tf.training import cosine_restart_lr

# ---------------------------------------------------------------- macro space


def test_macro_space_layout_and_round_trip():
    space = EnasMacroSpace(num_layers=12)
    assert space.decisions.num_tokens == 12 + 66
    assert space.reduce_after == (3, 7)
    assert space.decisions.size() == 6**12 * 2**66
    rng = np.random.default_rng(0)
    for t in space.decisions.random_tokens(rng, 20):
        arch = space.from_tokens(t)
        np.testing.assert_array_equal(space.to_tokens(arch), t)
        assert nas_tf.load_arch(arch.to_json()) == arch


def test_published_macro_arch():
    arch = nas_tf.load_arch("enas_macro")
    assert arch.num_layers == 24 and arch.reduce_after == (7, 15)
    assert sum(len(layer.skips) for layer in arch.layers) == 98
    assert {layer.op for layer in arch.layers} <= {"conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5"}
    # The authors' arc-string format decodes to the same network.
    arc = []
    for k, layer in enumerate(arch.layers):
        arc.append(["conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5"].index(layer.op))
        arc += [1 if j in layer.skips else 0 for j in range(k)]
    assert macro_arch_from_arc(" ".join(map(str, arc))) == arch


def test_macro_arch_errors_name_the_field():
    bad = {"space": "enas_macro", "layers": [{"op": "conv_3x3"}, {"op": "conv_7x7", "skips": [0]}]}
    with pytest.raises(ArchError, match=r"layers\[1\].op.*conv_7x7"):
        nas_tf.load_arch(bad)
    bad["layers"][1] = {"op": "conv_3x3", "skips": [1]}
    with pytest.raises(ArchError, match=r"layers\[1\].skips\[0\]"):
        nas_tf.load_arch(bad)


# ----------------------------------------------------------- macro supernet

SMALL_MACRO = EnasMacroSpace(num_layers=5)


@pytest.fixture(scope="module")
def macro_supernet():
    keras.utils.set_random_seed(0)
    net = EnasMacroSupernet(SMALL_MACRO, 10, filters=8)
    net.build((None, 8, 8, 1))
    return net


def test_macro_supernet_equals_the_standalone_child(macro_supernet):
    x = tf.constant(np.random.default_rng(1).normal(size=(6, 8, 8, 1)).astype(np.float32))
    weights = tf.constant(np.random.default_rng(3).normal(size=(6, 10)).astype(np.float32))

    forward = tf.function(
        lambda arch: outputs_and_input_gradient(macro_supernet, x, weights, arch),
        input_signature=[tf.TensorSpec((SMALL_MACRO.decisions.num_tokens,), tf.int32)],
    )
    rng = np.random.default_rng(2)
    all_tokens = SMALL_MACRO.decisions.random_tokens(rng, 4)
    all_tokens[0][SMALL_MACRO.op_offsets()] = SMALL_MACRO.ops.index("max_pool_3x3")  # one arch of max pools
    for tokens in all_tokens:
        arch = SMALL_MACRO.from_tokens(tokens)
        child = build_enas_macro(arch, (8, 8, 1), 10, filters=8)
        macro_supernet.copy_to_child(arch, child)
        got, got_gradient = forward(tokens)
        want, want_gradient = outputs_and_input_gradient(child, x, weights)
        np.testing.assert_allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(got_gradient, want_gradient, atol=1e-4)
    # Every architecture ran through one trace.
    assert forward.experimental_get_tracing_count() == 1


def test_macro_child_channels_double_at_reductions():
    arch = EnasMacroArch(layers=tuple(MacroLayer("sep_conv_3x3", ()) for _ in range(4)), reduce_after=(1,))
    child = build_enas_macro(arch, (8, 8, 3), 10, filters=6)
    assert child.get_layer("layer1_outbn").output.shape == (None, 8, 8, 6)
    assert child.get_layer("layer2_sep_conv_3x3").output.shape == (None, 4, 4, 12)


# -------------------------------------------------------------- one-shot loop


def test_cosine_restarts():
    lrs = [cosine_restart_lr(e, 0.05, 0.0005, 10, 2) for e in range(31)]
    assert lrs[0] == pytest.approx(0.05) and lrs[10] == pytest.approx(0.05) and lrs[30] == pytest.approx(0.05)
    assert lrs[9] < lrs[5] < lrs[1] and lrs[29] < lrs[20]
    assert lrs[5] == pytest.approx(0.0005 + 0.5 * (0.05 - 0.0005))


# ------------------------------------------------------- controller options


def test_skip_penalty_pulls_the_skip_rate_to_the_target():
    dl = DecisionList([Skip(f"l{k}", anchor=k, num_candidates=k) for k in range(6)])
    rates = {}
    for target in (0.1, 0.9):
        s = Reinforce(controller_for(dl, seed=0, lstm_layers=1), learning_rate=0.05, seed=0, skip_target=target, skip_weight=1.0)
        for _ in range(30):
            t = s.sample(dl, 8)
            s.update(dl, t, np.zeros(8, np.float32))  # no reward signal: only the penalty acts
        rates[target] = s.sample(dl, 200).mean()
    assert rates[0.1] < 0.25 and rates[0.9] > 0.75


def test_entropy_in_reward_and_baseline_before():
    dl = EnasMacroSpace(num_layers=3).decisions
    s = Reinforce(controller_for(dl, seed=0), seed=0, entropy_mode="reward", entropy_weight=0.5, baseline_update="before",
                  baseline_decay=0.5, baseline_mode="per_batch")
    t = s.sample(dl, 4)
    _, ent = s.controller.log_prob(dl, t)
    m = s.update(dl, t, np.ones(4, np.float32))
    shaped = 1.0 + 0.5 * float(np.mean(ent))
    # First step: b = mean, then folded in before use (unchanged for b == mean).
    assert m["baseline"] == pytest.approx(shaped, rel=1e-5)
    m2 = s.update(dl, t, np.zeros(4, np.float32))
    assert m2["baseline"] == pytest.approx(0.5 * shaped + 0.5 * (0.0 + 0.5 * float(np.mean(ent))), rel=1e-4)
    with pytest.raises(ValueError, match="entropy_mode"):
        Reinforce(controller_for(dl), entropy_mode="bonus")
