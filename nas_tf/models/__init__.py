"""Arch -> keras.Model builders."""

from nas_tf.models.enas_macro import build_enas_macro
from nas_tf.models.language_model import (
    LanguageModel,
    build_language_model,
    make_cell,
    recurrent_spaces,
    register_cell_builder,
)
from nas_tf.models.nas_cnn import build_nas_cnn
from nas_tf.models.nasnet import build_nasnet, nasnet_a_cifar, nasnet_a_large, nasnet_a_mobile
from nas_tf.models.nb201 import build_nb201
from nas_tf.models.registry import build_image_model, image_spaces, register_image_builder

__all__ = [
    "LanguageModel",
    "build_enas_macro",
    "build_image_model",
    "build_language_model",
    "build_nas_cnn",
    "build_nasnet",
    "build_nb201",
    "image_spaces",
    "make_cell",
    "nasnet_a_cifar",
    "nasnet_a_large",
    "nasnet_a_mobile",
    "recurrent_spaces",
    "register_cell_builder",
    "register_image_builder",
]
