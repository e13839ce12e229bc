"""Serving costs of a child (latency as exported, FLOPs from the graph, parameters) and the MnasNet reward."""

import json
import math

import keras
import numpy as np
import pytest

import nas_tf
from nas_tf.export import CostAwareReward, CostMeter, CostObjective, CostTarget, LatencySettings, count_flops, mnas_factor


def _small_conv_net():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="valid")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def test_flops_counted_from_the_graph_match_a_hand_count():
    # Hand count, one 8x8x1 image; a multiply-accumulate is 2 FLOPs, an element-wise add 1, ReLU 0:
    conv1 = 2 * (8 * 8) * (3 * 3 * 1) * 4    # 'same': 8x8 outputs x 4 filters x 9 taps
    bias1 = 8 * 8 * 4
    conv2 = 2 * (3 * 3) * (3 * 3 * 4) * 6    # 'valid', stride 2: (8 - 3) // 2 + 1 = 3
    bias2 = 3 * 3 * 6
    pool = 3 * 3 * 6                          # the sum of the global average (the divide is folded)
    dense = 2 * 6 * 10 + 10
    assert count_flops(_small_conv_net()) == conv1 + bias1 + conv2 + bias2 + pool + dense == 8990
    assert count_flops(_small_conv_net(), batch_size=3) == 3 * 8990


def test_mnas_reward_soft_and_hard_against_the_published_forms():
    # MnasNet eq. 2 with alpha = beta = -0.07 (soft): twice the target latency costs 5% of accuracy.
    assert mnas_factor(2.0, 1.0, -0.07) * 1.05 == pytest.approx(1.0, abs=2e-3)
    assert mnas_factor(0.5, 1.0, -0.07) == pytest.approx(2 ** 0.07)
    # Vertex AI NAS compute_reward(accuracy, target, measured, weight=1, use_hard_limit):
    # accuracy * min((target / measured) ** weight, 1) when hard, without the min when soft.
    for measured in (0.5, 1.0, 3.0):
        vertex_hard = 0.9 * min((2.0 / (2.0 * measured)) ** 1, 1.0)
        vertex_soft = 0.9 * (2.0 / (2.0 * measured)) ** 1
        hard = CostObjective((CostTarget("latency_ms", 2.0, -1.0),), "hard")
        soft = CostObjective((CostTarget("latency_ms", 2.0, -1.0),), "soft")
        assert hard.reward(0.9, {"latency_ms": 2.0 * measured}) == pytest.approx(vertex_hard)
        assert soft.reward(0.9, {"latency_ms": 2.0 * measured}) == pytest.approx(vertex_soft)
    # Several targets multiply; the reward exponent applies to accuracy times the factor.
    both = CostObjective.from_settings(target_latency_ms=1.0, latency_weight=-0.1, target_params=1000, params_weight=-0.5)
    costs = {"latency_ms": 2.0, "params": 4000, "flops": 1}
    assert both.metrics == ("latency_ms", "params")
    assert both.reward(0.8, costs, exponent=3) == pytest.approx((0.8 * 2 ** -0.1 * 4 ** -0.5) ** 3)
    assert CostObjective().reward(0.8, {}) == 0.8 and not CostObjective().active


def test_cost_settings_refused_with_the_flag_and_the_value():
    with pytest.raises(ValueError, match=r"--latency_weight=0.07: the weight must be negative"):
        CostObjective.from_settings(target_latency_ms=5, latency_weight=0.07)
    with pytest.raises(ValueError, match=r"--target_flops=-1: the target must be > 0"):
        CostObjective.from_settings(target_flops=-1)
    with pytest.raises(ValueError, match=r"--cost_constraint=strict: must be one of soft, hard"):
        CostObjective.from_settings(target_params=10, constraint="strict")
    with pytest.raises(ValueError, match="no measured latency_ms"):
        CostObjective.from_settings(target_latency_ms=1).reward(0.9, {"flops": 3})
    with pytest.raises(ValueError, match="measured cost must be a positive number, got 0"):
        mnas_factor(0, 1.0)


def _nas_cnn(filters, kernel):
    return nas_tf.load_arch({
        "space": "nas_cnn",
        "layers": [{"filter_height": kernel, "filter_width": kernel, "num_filters": filters, "inputs": list(range(i))}
                   for i in range(3)],
    })


def test_costs_are_measured_on_the_export_once_per_arch(tmp_path, digits):
    from nas_tf.export import image_serving_model, measure_latency_ms
    from nas_tf.models.registry import build_image_model

    small, large = _nas_cnn(24, 1), _nas_cnn(64, 7)
    builds = []

    def builder(arch):
        def build():
            builds.append(arch)
            return build_image_model(arch, digits.input_shape, digits.num_classes)
        return build

    cache = tmp_path / "costs.json"
    settings = LatencySettings(runs=20, warmup=5)
    meter = CostMeter(raw=digits.raw_pixels, latency=settings, context={"dataset": "digits"}, cache_path=str(cache))
    objective = CostObjective.from_settings(target_latency_ms=1.0, target_flops=1e6)
    rewarder = CostAwareReward(objective, meter)
    reward, small_costs = rewarder(0.9, small, builder(small), exponent=2)
    _, large_costs = rewarder(0.9, large, builder(large))
    assert reward == pytest.approx((0.9 * objective.factor(small_costs)) ** 2)
    assert small_costs["params"] == build_image_model(small, (8, 8, 1), 10).count_params()
    assert small_costs["flops"] == count_flops(build_image_model(small, (8, 8, 1), 10))
    assert large_costs["flops"] > 20 * small_costs["flops"]
    assert large_costs["latency_ms"] > small_costs["latency_ms"] > 0  # dozens of times the work takes longer
    # Cached per arch: the same arch again is not built; a new meter reads the file (a resumed search).
    assert rewarder(0.5, small, builder(small))[1] == small_costs and builds == [small, large]
    again = CostMeter(raw=digits.raw_pixels, latency=settings, context={"dataset": "digits"}, cache_path=str(cache))
    assert again.measure(large, builder(large)) == {k: large_costs[k] for k in ("latency_ms", "flops", "params")}
    assert builds == [small, large] and again.measured == 0
    assert json.loads(next(iter(json.load(open(cache)))))["arch"] == small.to_dict()
    # Other measurement settings are another key.
    other = CostMeter(("params",), raw=digits.raw_pixels, latency=LatencySettings(runs=7), cache_path=str(cache))
    other.measure(small, builder(small))
    assert builds == [small, large, small]
    # The SavedModel backend measures the same kind of thing.
    served = image_serving_model(build_image_model(small, (8, 8, 1), 10), digits.raw_pixels)
    assert math.isfinite(measure_latency_ms(served, LatencySettings("saved_model", runs=5, warmup=2)))
    with pytest.raises(ValueError, match="does not measure"):
        CostAwareReward(objective, CostMeter(("params",)))
    with pytest.raises(ValueError, match="latency backend must be one of tflite, saved_model, got 'onnx'"):
        LatencySettings("onnx")


def test_latency_of_the_tflite_export_is_measured_at_batch_one(digits):
    from nas_tf.export import convert_to_tflite, image_serving_model, tflite_interpreter, tflite_latency_ms
    from nas_tf.models.registry import build_image_model

    served = image_serving_model(build_image_model(_nas_cnn(24, 3), (8, 8, 1), 10), digits.raw_pixels)
    content = convert_to_tflite(served)
    interpreter = tflite_interpreter(content)
    (detail,) = interpreter.get_input_details()
    assert list(detail["shape_signature"]) == [-1, 8, 8, 1] and detail["dtype"] == np.float32
    assert tflite_latency_ms(content, runs=10, warmup=2) > 0
