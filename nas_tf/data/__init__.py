"""Datasets: CIFAR-10 (tensorflow-datasets), embedded digits, Penn Treebank, embedded text (no network)."""

from nas_tf.data.images import (
    IMAGE_DATASETS,
    Augmentation,
    DatasetUnavailableError,
    ImageData,
    load_cifar10,
    load_digits,
    load_image_data,
)
from nas_tf.data.text import TEXT_DATASETS, TextCorpus, load_ptb, load_pydoc_corpus, load_text_data

__all__ = [
    "IMAGE_DATASETS",
    "TEXT_DATASETS",
    "TextCorpus",
    "Augmentation",
    "DatasetUnavailableError",
    "ImageData",
    "load_cifar10",
    "load_digits",
    "load_image_data",
    "load_ptb",
    "load_pydoc_corpus",
    "load_text_data",
]
