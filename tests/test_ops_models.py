"""Where the models use nas_tf's ops: the same numbers with the compiled ops and with their fallbacks."""

import numpy as np
import pytest
import tensorflow as tf

import nas_tf.ops as O
from nas_tf.models.enas_rnn import EnasRnnSupernetLM
from nas_tf.spaces.enas_rnn import EnasRnnSpace


def _graph_ops(fn, *args) -> set:
    graph = fn.get_concrete_function(*args).graph.as_graph_def()
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


def _loss_and_grads(net, call):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(call() ** 2)
    grads = tape.gradient(loss, net.trainable_variables)
    return loss, [tf.convert_to_tensor(g) for g in grads]


def test_rnn_supernet_weight_selections_compute_the_same_function():
    """gather (copied once per call) and gather_matmul (read in place per step): same loss and gradients."""
    space = EnasRnnSpace(num_nodes=4)
    nets = {}
    for sel in ("gather", "gather_matmul"):
        net = EnasRnnSupernetLM(space, vocab_size=30, units=8, tie_weights=True, weight_selection=sel, seed=1)
        net.build()
        nets[sel] = net
    nets["gather_matmul"].set_weights(nets["gather"].get_weights())
    tokens = tf.constant(np.random.default_rng(0).integers(0, 30, size=(3, 5)), tf.int32)
    arch = tf.constant(space.to_tokens(space.from_tokens([0, 1, 1, 0, 2, 3, 0, 0])))
    results = {}
    for sel, net in nets.items():
        fn = tf.function(lambda t, a, n=net: _loss_and_grads(n, lambda: n(t, a, training=False)[0]))
        results[sel] = fn(tokens, arch)
        uses_op = "NasTfGatherMatmul" in _graph_ops(fn, tokens, arch)
        assert uses_op == (sel == "gather_matmul" and O.custom_ops_loaded())
    (l1, g1), (l2, g2) = results["gather"], results["gather_matmul"]
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="weight_selection must be 'gather' or 'gather_matmul', got 'copy'"):
        EnasRnnSupernetLM(space, vocab_size=30, units=8, weight_selection="copy").build()
