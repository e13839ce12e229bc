"""Keras 3 layers of nas_tf (all registered for serialisation)."""

from nas_tf.layers.nas_cell import NASCell
from nas_tf.layers.padded_concat import PaddedConcat, padded_concat_reference
from nas_tf.layers.tree_cell import TreeCell, evaluate_tree

__all__ = ["NASCell", "PaddedConcat", "TreeCell", "evaluate_tree", "padded_concat_reference"]
