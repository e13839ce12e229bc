"""Arch -> keras.Model builders."""

from nas_tf.models.nas_cnn import build_nas_cnn
from nas_tf.models.registry import build_image_model, image_spaces, register_image_builder

__all__ = ["build_image_model", "build_nas_cnn", "image_spaces", "register_image_builder"]
