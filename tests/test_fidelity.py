"""Options that follow the authors' code outside the controller: the x mask of the ENAS recurrent supernet."""

import numpy as np
import pytest
import tensorflow as tf

from nas_tf.models.enas_rnn import EnasRnnSupernetLM
from nas_tf.spaces.enas_rnn import EnasRnnSpace

SPACE = EnasRnnSpace(num_nodes=3)
ARCH = np.array([0, 1, 1, 0, 2, 3], np.int32)  # nodes 1..3: (prev, activation) pairs


def _input_gradient(lm, training):
    """d(sum of weighted logits) / d x_{b,t}: one distinct word per (sequence b, step t), untied weights."""
    tokens = np.arange(12, dtype=np.int32).reshape(3, 4)
    weights = tf.random.stateless_normal((3, 4, lm.vocab_size), seed=[1, 2])
    with tf.GradientTape() as tape:
        logits, _ = lm(tokens, ARCH, training=training)
        loss = tf.reduce_sum(logits * weights)
    grad = tf.convert_to_tensor(tape.gradient(loss, lm.embedding.embeddings)).numpy()
    return grad[tokens]  # [3, 4, units]: row (b, t) is the gradient with respect to x_{b,t}


def test_x_dropout_masks_the_cell_input_once_per_sequence():
    lm = EnasRnnSupernetLM(SPACE, vocab_size=16, units=32, x_dropout=0.5, seed=3)
    assert lm.rnns[0].cell.dropout == 0.5
    grad = _input_gradient(lm, training=True)
    dropped = grad == 0.0
    # enas_lm's input mask is [batch, hidden]: the same features dropped at every step of a sequence ...
    assert np.all(dropped == dropped[:, :1, :])
    # ... about half of them (rate 0.5), not the same ones in every sequence.
    assert 0.25 < dropped[:, 0, :].mean() < 0.75
    assert not np.array_equal(dropped[0, 0], dropped[1, 0]) or not np.array_equal(dropped[1, 0], dropped[2, 0])
    # Evaluation runs without the mask.
    assert np.all(_input_gradient(lm, training=False) != 0.0)
    # The setting survives the config.
    again = EnasRnnSupernetLM.from_config(lm.get_config())
    assert again.x_dropout == 0.5 and again.rnns[0].cell.dropout == 0.5


def test_x_dropout_is_off_by_default_and_checked():
    lm = EnasRnnSupernetLM(SPACE, vocab_size=16, units=8)
    assert lm.x_dropout == 0.0 and lm.rnns[0].cell.dropout == 0.0
    with pytest.raises(ValueError, match="x_dropout"):
        EnasRnnSupernetLM(SPACE, vocab_size=16, units=8, x_dropout=1.5)
