"""Every use of private Keras API in nas_tf, in one place.

Keras 3 has no public API for these four needs; each is isolated here with
its reason, so a Keras upgrade that moves one breaks this module alone (and
its fallback where one is possible):

* :class:`DropoutRNNCell` -- the mixin that lets ``keras.layers.RNN`` create
  a cell's dropout masks before its loop (needed on JAX); not exported by
  ``keras.layers``. A fallback with the same masks is used if it moves.
* :func:`sublayers` -- every layer nested inside a layer or model, at any
  depth (``Layer._flatten_layers``; ``Model.layers`` lists direct children
  only).
* :func:`clip_gradients` -- the optimizer's own clipping rule
  (``BaseOptimizer._clip_gradients``), to clip an all-reduced gradient as one
  device would.
* :class:`PreReducedSGD` -- SGD that skips its cross-replica gradient sum
  (``_all_reduce_sum_gradients``) for gradients already summed by the caller.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["DropoutRNNCell", "PreReducedSGD", "clip_gradients", "sublayers"]

try:
    from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell
except ImportError:  # pragma: no cover - a Keras that moved its private module

    class DropoutRNNCell:  # type: ignore[no-redef]
        """Same-mask-every-step dropout masks (fallback of Keras' private mixin)."""

        def get_dropout_mask(self, step_input):
            if getattr(self, "_dropout_mask", None) is None and self.dropout > 0:
                self._dropout_mask = keras.random.dropout(
                    ops.ones_like(step_input), self.dropout, seed=self.seed_generator
                )
            return self._dropout_mask

        def reset_dropout_mask(self):
            self._dropout_mask = None

        def reset_recurrent_dropout_mask(self):
            self._recurrent_dropout_mask = None


def sublayers(layer: keras.layers.Layer, include_self: bool = True) -> list[keras.layers.Layer]:
    """Every layer inside ``layer`` (nested at any depth), ``layer`` itself first if ``include_self``."""
    return list(layer._flatten_layers(include_self=include_self, recursive=True))


def clip_gradients(optimizer: keras.optimizers.Optimizer, grads: list) -> list:
    """``grads`` clipped by ``optimizer``'s own rule (``global_clipnorm``, ``clipnorm``, ``clipvalue``)."""
    return optimizer._clip_gradients(grads)


class PreReducedSGD(keras.optimizers.SGD):
    """SGD for gradients that are already summed over the replicas.

    A training step that all-reduces the gradients itself (to clip their
    global norm as one device would) must keep the optimizer from summing
    them a second time.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)
