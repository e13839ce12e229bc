"""nas_tf.utils.control_flow.switch_case: lowered or run as a branch function, the same values and gradients."""

import numpy as np
import pytest
import tensorflow as tf

from nas_tf.utils.control_flow import lowering_choice_available, switch_case


def _branches(x, w):
    return [
        lambda: tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME")),
        lambda: tf.nn.max_pool2d(x, 3, 1, "SAME") * 2.0,
        lambda: tf.tanh(x) - 1.0,
    ]


def _value_and_gradients(lower):
    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([2, 5, 5, 3]), tf.TensorSpec([3, 3, 3, 3])])
    def f(i, x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = switch_case(i, _branches(x, w), lower=lower)
            loss = tf.reduce_sum(y * tf.reshape(tf.range(150.0) ** 0.5, [2, 5, 5, 3]))
        gx, gw = tape.gradient(loss, [x, w], unconnected_gradients="zero")
        return y, gx, gw

    return f


@pytest.mark.parametrize("index", [0, 1, 2, 7, -1])  # 7 and -1 are out of range: the last branch, as tf.switch_case
def test_branch_function_gives_the_lowered_values_and_gradients(index):
    rng = np.random.default_rng(index + 3)
    x = tf.constant(rng.normal(size=(2, 5, 5, 3)).astype(np.float32))
    w = tf.constant(rng.normal(size=(3, 3, 3, 3)).astype(np.float32))
    want = tf.switch_case(tf.constant(index), _branches(x, w))  # eager: the reference
    lowered = _value_and_gradients(True)(tf.constant(index), x, w)
    unlowered = _value_and_gradients(False)(tf.constant(index), x, w)
    np.testing.assert_allclose(lowered[0], want, rtol=1e-5, atol=1e-5)
    for a, b in zip(lowered, unlowered):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert np.abs(unlowered[1]).max() > 0  # the gradient reaches the input


def _case_lowering_attrs(fn, *args) -> list:
    graph = fn.get_concrete_function(*args).graph
    return [op.get_attr("_lower_using_switch_merge") for op in graph.get_operations() if op.type in ("Case", "StatelessCase")]


def test_the_case_op_is_marked_not_to_be_lowered_only_when_asked():
    x, w = tf.ones([2, 5, 5, 3]), tf.ones([3, 3, 3, 3])
    assert lowering_choice_available()  # this TensorFlow (the CI's) has the private switch
    assert _case_lowering_attrs(_value_and_gradients(True), tf.constant(0), x, w) == [True, True]  # forward, gradient
    assert _case_lowering_attrs(_value_and_gradients(False), tf.constant(0), x, w) == [False, False]


def test_eager_switch_case_runs_the_chosen_branch_either_way():
    for lower in (True, False):
        assert float(switch_case(tf.constant(1), [lambda: tf.constant(1.0), lambda: tf.constant(5.0)], lower=lower)) == 5.0
