"""Search spaces as data: decision lists, typed archs and their JSON form.

This subpackage imports no TensorFlow.
"""

from nas_tf.spaces.arch import (
    Arch,
    ArchError,
    ArchReader,
    arch_from_dict,
    arch_types,
    load_arch,
    named_archs,
    register_arch,
    register_named_arch,
)
from nas_tf.spaces.base import SearchSpace, make_space, register_space, space_names
from nas_tf.spaces.decisions import Anchor, Categorical, Decision, DecisionList, Select, Skip
from nas_tf.spaces.enas_macro import EnasMacroArch, EnasMacroSpace, MacroLayer
from nas_tf.spaces.enas_micro import EnasMicroSpace
from nas_tf.spaces.enas_rnn import EnasRnnArch, EnasRnnNode, EnasRnnSpace
from nas_tf.spaces.nas_cnn import ConvLayer, NASCNNArch, NASCNNSpace
from nas_tf.spaces.nas_rnn import NASRNNArch, NASRNNSpace, TreeNode, nascell_arch
from nas_tf.spaces.nasnet import NASNET_OPS, REDUCED_OPS, NASNetArch, NASNetBlock, NASNetCell, NASNetSpace
from nas_tf.spaces.nb201 import NB201_OPS, NB201Arch, NB201Space
from nas_tf.spaces.short_form import arch_short_form, register_short_form

__all__ = [
    "arch_short_form",
    "register_short_form",
    "Anchor",
    "Arch",
    "ArchError",
    "ArchReader",
    "Categorical",
    "ConvLayer",
    "Decision",
    "DecisionList",
    "EnasMacroArch",
    "EnasMacroSpace",
    "EnasMicroSpace",
    "EnasRnnArch",
    "EnasRnnNode",
    "EnasRnnSpace",
    "NASCNNArch",
    "NASCNNSpace",
    "NASNET_OPS",
    "NASNetArch",
    "NASNetBlock",
    "NASNetCell",
    "NASNetSpace",
    "NASRNNArch",
    "NB201Arch",
    "NB201Space",
    "NB201_OPS",
    "NASRNNSpace",
    "MacroLayer",
    "REDUCED_OPS",
    "SearchSpace",
    "Select",
    "Skip",
    "TreeNode",
    "arch_from_dict",
    "arch_types",
    "load_arch",
    "make_space",
    "named_archs",
    "nascell_arch",
    "register_arch",
    "register_named_arch",
    "register_space",
    "space_names",
]
