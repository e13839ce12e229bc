"""Datasets: CIFAR-10 through tensorflow-datasets, embedded digits (no network)."""

from nas_tf.data.images import (
    IMAGE_DATASETS,
    Augmentation,
    DatasetUnavailableError,
    ImageData,
    load_cifar10,
    load_digits,
    load_image_data,
)

__all__ = [
    "IMAGE_DATASETS",
    "Augmentation",
    "DatasetUnavailableError",
    "ImageData",
    "load_cifar10",
    "load_digits",
    "load_image_data",
]
