"""PaddedConcat and the NAS CNN child builder."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf.layers import PaddedConcat, padded_concat_reference
from nas_tf.models import build_image_model, build_nas_cnn
from nas_tf.spaces import ConvLayer, NASCNNArch, NASCNNSpace


def test_padded_concat_values_keep_top_left_and_pad_bottom_right():
    a = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
    b = np.arange(2 * 2 * 3 * 2, dtype=np.float32).reshape(2, 2, 3, 2) + 100
    out = PaddedConcat()([a, b]).numpy()
    assert out.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(out[..., :1], a)
    np.testing.assert_array_equal(out[:, :2, :3, 1:], b)
    assert np.all(out[:, 2:, :, 1:] == 0) and np.all(out[:, :, 3:, 1:] == 0)


def test_padded_concat_shapes_and_gradient():
    xs = [tf.random.normal((3, h, w, c)) for h, w, c in [(8, 8, 2), (4, 6, 3), (8, 5, 1), (1, 1, 4)]]
    layer = PaddedConcat()
    with tf.GradientTape() as tape:
        tape.watch(xs)
        out = layer(xs)
        loss = tf.reduce_sum(out * tf.random.normal(out.shape, seed=1))
    assert out.shape == (3, 8, 8, 10)
    assert layer.compute_output_shape([x.shape for x in xs]) == (3, 8, 8, 10)
    grads = tape.gradient(loss, xs)
    for x, g in zip(xs, grads):
        assert g.shape == x.shape
    # Symbolic inputs with unknown sizes work too.
    f = tf.function(padded_concat_reference, input_signature=[[tf.TensorSpec((None, None, None, 2))] * 2])
    assert f([tf.ones((1, 3, 2, 2)), tf.ones((1, 2, 4, 2))]).shape == (1, 3, 4, 4)


def test_padded_concat_validates_and_serialises():
    with pytest.raises(ValueError, match="rank 4"):
        PaddedConcat().build([(None, 4, 4), (None, 4, 4, 2)])
    layer = PaddedConcat(name="pc")
    assert keras.layers.deserialize(keras.layers.serialize(layer)).name == "pc"


def conv_params(kh, kw, cin, cout):
    return kh * kw * cin * cout + 4 * cout  # no conv bias; BN: gamma, beta, moving mean, moving variance


def test_parameter_count_of_a_hand_written_arch_with_skips_across_sizes():
    # layer0: 3x3, 8 filters, stride 2 (8x8 -> 4x4) from the image (1 channel)
    # layer1: 5x3, 16 filters from layer0 (4x4x8)
    # layer2: 1x1, 12 filters from the image (8x8x1) -- no input: rule 1
    # layer3: 3x3, 24 filters from layers 1 (4x4x16) and 2 (8x8x12): padded to 8x8, 28 channels
    arch = NASCNNArch(
        layers=(
            ConvLayer(3, 3, 8, 2, 2),
            ConvLayer(5, 3, 16, inputs=(0,)),
            ConvLayer(1, 1, 12, inputs=()),
            ConvLayer(3, 3, 24, inputs=(1, 2)),
        )
    )
    model = build_nas_cnn(arch, (8, 8, 1), 10)
    expected = conv_params(3, 3, 1, 8) + conv_params(5, 3, 8, 16) + conv_params(1, 1, 1, 12) + conv_params(3, 3, 28, 24)
    expected += 24 * 10 + 10  # only layer 3 is unconsumed -> dense from 24 channels
    assert model.count_params() == expected
    assert model.get_layer("layer1_conv").output.shape == (None, 4, 4, 16)
    assert model.get_layer("layer3_concat").output.shape == (None, 8, 8, 28)
    assert model.output_shape == (None, 10)


def test_unconsumed_outputs_are_concatenated_before_the_classifier():
    arch = NASCNNArch(
        layers=(ConvLayer(3, 3, 8), ConvLayer(3, 3, 6, 2, 2, inputs=(0,)), ConvLayer(3, 3, 5, inputs=(0,)))
    )
    model = build_nas_cnn(arch, (8, 8, 3), 4, dropout=0.5)
    # Layers 1 (4x4x6) and 2 (8x8x5) are unconsumed: padded to 8x8, 11 channels.
    assert model.get_layer("output_concat").output.shape == (None, 8, 8, 11)
    assert model.get_layer("logits").kernel.shape == (11, 4)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    assert model(x).shape == (2, 4)


def test_max_pooling_and_strides():
    arch = NASCNNArch(layers=(ConvLayer(3, 3, 8), ConvLayer(3, 3, 8, 3, 1, inputs=(0,))), max_pool_after=(0,))
    model = build_nas_cnn(arch, (32, 32, 3), 10)
    assert model.get_layer("layer0_pool").output.shape == (None, 16, 16, 8)
    assert model.get_layer("layer1_conv").output.shape == (None, 6, 16, 8)


def test_weight_decay_regularises_kernels():
    arch = NASCNNArch(layers=(ConvLayer(3, 3, 8),))
    model = build_nas_cnn(arch, (8, 8, 1), 10, weight_decay=1e-4)
    model(np.zeros((1, 8, 8, 1), np.float32))
    kernels = [model.get_layer("layer0_conv").kernel, model.get_layer("logits").kernel]
    expected = sum(0.5e-4 * float(tf.reduce_sum(tf.square(k))) for k in kernels)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert not build_nas_cnn(arch, (8, 8, 1), 10, weight_decay=0).losses


def test_random_archs_build_and_save(tmp_path):
    space = NASCNNSpace(num_layers=5, predict_strides=True)
    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 1)).astype(np.float32)
    for i, t in enumerate(space.decisions.random_tokens(rng, 4)):
        arch = space.from_tokens(t)
        model = build_image_model(arch, (8, 8, 1), 10)
        y = model(x)
        assert y.shape == (2, 10)
        if i == 0:
            path = str(tmp_path / "m.keras")
            model.save(path)
            again = keras.models.load_model(path)
            np.testing.assert_allclose(again(x), y, atol=1e-6)


def test_builder_rejects_bad_arguments():
    arch = NASCNNArch(layers=(ConvLayer(3, 3, 8),))
    with pytest.raises(ValueError, match="input_shape"):
        build_nas_cnn(arch, (8, 8), 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_nas_cnn(arch, (8, 8, 1), 0)
