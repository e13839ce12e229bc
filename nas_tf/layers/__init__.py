"""Keras 3 layers of nas_tf (all registered for serialisation)."""

from nas_tf.layers.branch_pool import BranchMaxPooling2D, branch_max_pool
from nas_tf.layers.cell_ops import (
    CellOpLayer,
    FactorizedConv,
    FactorizedReduction,
    IdentityOp,
    PoolOp,
    ReLUConvBN,
    SeparableConvStack,
    cell_op,
)
from nas_tf.layers.drop_path import ScheduledDropPath, attach_training_progress, drop_path_keep_prob, drop_path_layers
from nas_tf.layers.enas_rnn_cell import EnasRnnCell
from nas_tf.layers.nas_cell import NASCell
from nas_tf.layers.nb201_cell import NB201Cell
from nas_tf.layers.padded_concat import PaddedConcat, padded_concat_reference
from nas_tf.layers.tree_cell import TreeCell, evaluate_tree

__all__ = [
    "BranchMaxPooling2D",
    "CellOpLayer",
    "EnasRnnCell",
    "FactorizedConv",
    "FactorizedReduction",
    "IdentityOp",
    "NASCell",
    "NB201Cell",
    "PaddedConcat",
    "PoolOp",
    "ReLUConvBN",
    "ScheduledDropPath",
    "SeparableConvStack",
    "TreeCell",
    "attach_training_progress",
    "branch_max_pool",
    "cell_op",
    "drop_path_keep_prob",
    "drop_path_layers",
    "evaluate_tree",
    "padded_concat_reference",
]
