"""Image-classification data: CIFAR-10 (tensorflow-datasets) and embedded digits.

Two datasets, one interface (:class:`ImageData`):

* ``cifar10`` -- CIFAR-10 through tensorflow-datasets with the preprocessing of
  Zoph & Le (2017): per-image whitening, upsampling then a random 32x32 crop,
  random horizontal flips, and 5,000 of the 50,000 training images held out
  for validation (the reward). If the dataset is not prepared in
  ``data_dir`` (and ``download`` is off, or there is no network) a
  :class:`DatasetUnavailableError` says how to provide it. A directory with
  the original ``cifar-10-batches-py`` pickles works too.
* ``digits`` -- the 1,797 real 8x8 handwritten digits that scikit-learn ships
  (UCI optical recognition of handwritten digits), so a search runs on a
  fresh machine without network. Same preprocessing, no flips (digits are not
  mirror-symmetric).

Images are kept in memory as uint8/float arrays; :meth:`ImageData.batches`
builds the ``tf.data`` pipeline (seeded shuffling and augmentation).

What a network sees is not what users hold: the pixels are scaled to [0, 1]
and every image is standardised (``tf.image.per_image_standardization``).
:class:`RawPixels` says what the users of a dataset hold (the *raw* images:
CIFAR-10 as uint8 0-255, the digits as scikit-learn's float counts 0-16), and
:class:`ImagePreprocessing` is the Keras layer that turns raw images into the
network's input, so that an exported model carries its preprocessing
(:mod:`nas_tf.export`).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops


class DatasetUnavailableError(RuntimeError):
    """The dataset is not on this machine and cannot be downloaded."""


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation.

    Args:
        upsample: resize images to this square size before the random crop
            back to the original size (0 disables upsample-and-crop).
        flip: random horizontal flips.
        cutout: side of the zeroed square of CutOut (0 disables it).
    """

    upsample: int = 0
    flip: bool = False
    cutout: int = 0


@dataclasses.dataclass(frozen=True)
class RawPixels:
    """The images the users of a dataset hold, before any preprocessing.

    Args:
        dtype: ``"uint8"`` or ``"float32"``: the dtype an exported model takes.
        max_value: the value of a full-intensity pixel (255 for 8-bit
            images; 16 for the digits, whose pixels count 0-16 set bits of a
            4x4 block).
        description: where users get such images.

    Example:

    >>> RAW_PIXELS["cifar10"].dtype, RAW_PIXELS["digits"].max_value
    ('uint8', 16.0)
    """

    dtype: str
    max_value: float
    description: str = ""

    def __post_init__(self):
        if self.dtype not in ("uint8", "float32"):
            raise ValueError(f"RawPixels.dtype must be 'uint8' or 'float32', got {self.dtype!r}")
        if not self.max_value > 0:
            raise ValueError(f"RawPixels.max_value must be > 0, got {self.max_value!r}")


# What the users of each dataset hold.
RAW_PIXELS = {
    "digits": RawPixels(
        "float32", 16.0,
        "sklearn.datasets.load_digits().images[..., None]: [N, 8, 8, 1] counts 0-16 (UCI optical digits)",
    ),
    "cifar10": RawPixels(
        "uint8", 255.0,
        "tfds.load('cifar10') 'image' or the cifar-10-batches-py pickles (as HWC): [N, 32, 32, 3] uint8 0-255",
    ),
}


@keras.saving.register_keras_serializable(package="nas_tf")
class ImagePreprocessing(keras.layers.Layer):
    """Raw pixels to what the networks of :class:`ImageData` are trained on.

    Casts to float32, divides by ``max_value`` (pixels in [0, 1]) and
    standardises every image to zero mean and unit variance over its pixels
    and channels, dividing by ``max(stddev, 1 / sqrt(H * W * C))`` as
    ``tf.image.per_image_standardization`` does (the training pipeline,
    :meth:`ImageData.batches`, without augmentation).

    Args:
        max_value: the value of a full-intensity raw pixel (255 for uint8
            images, 16 for the digits, 1 for pixels already in [0, 1]).
        **kwargs: ``keras.layers.Layer`` arguments (``name``).

    Example:

    >>> layer = ImagePreprocessing(255.0)
    >>> y = layer(np.full((1, 4, 4, 3), 7, "uint8"))   # a flat image standardises to zeros
    >>> float(np.abs(y).max())
    0.0
    """

    def __init__(self, max_value: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(max_value, bool) or not isinstance(max_value, (int, float)) or not max_value > 0:
            raise ValueError(f"max_value must be a positive number, got {max_value!r}")
        self.max_value = float(max_value)

    def call(self, images):
        x = ops.cast(images, "float32") / self.max_value
        axes = tuple(range(1, len(x.shape)))
        count = 1
        for d in x.shape[1:]:
            count *= d
        mean = ops.mean(x, axis=axes, keepdims=True)
        stddev = ops.sqrt(ops.mean(ops.square(x - mean), axis=axes, keepdims=True))
        return (x - mean) / ops.maximum(stddev, 1.0 / float(count) ** 0.5)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, images):
        return keras.KerasTensor(images.shape, dtype="float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "max_value": self.max_value}


@dataclasses.dataclass
class ImageData:
    """An image-classification dataset held in memory.

    Args:
        name: dataset name.
        splits: ``{"train"|"validation"|"test": (images, labels)}``; images
            ``[N, H, W, C]`` (uint8 0-255 or float 0-1), labels int ``[N]``.
        num_classes: number of classes.
        augmentation: training-time augmentation.
        raw: what users of the dataset hold (None: the images as stored, i.e.
            uint8 0-255 or float 0-1). The stored images are the raw ones
            scaled by ``pixel_scale / raw.max_value``.
    """

    name: str
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    num_classes: int
    augmentation: Augmentation
    raw: RawPixels | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.splits["train"][0].shape[1:])

    @property
    def pixel_scale(self) -> float:
        """The value of a full-intensity pixel as stored (255 for uint8 images, else 1)."""
        return 255.0 if self.splits["train"][0].dtype == np.uint8 else 1.0

    @property
    def raw_pixels(self) -> RawPixels:
        """What users of the dataset hold (the input of an exported model)."""
        if self.raw is not None:
            return self.raw
        stored = self.splits["train"][0].dtype
        return RawPixels("uint8" if stored == np.uint8 else "float32", self.pixel_scale, f"the {self.name} images as stored")

    def raw_images(self, split: str) -> np.ndarray:
        """The images of ``split`` as users hold them (:attr:`raw_pixels`), e.g. the digits 0-16."""
        x = self.splits[split][0]
        raw = self.raw_pixels
        factor = raw.max_value / self.pixel_scale
        if x.dtype == np.dtype(raw.dtype) and factor == 1.0:
            return x
        return (x.astype(np.float64) * factor).astype(raw.dtype)

    def preprocessing(self, name: str = "preprocessing") -> ImagePreprocessing:
        """The Keras layer from raw images (:attr:`raw_pixels`) to the networks' input."""
        return ImagePreprocessing(self.raw_pixels.max_value, name=name)

    def size(self, split: str) -> int:
        return int(self.splits[split][0].shape[0])

    def with_augmentation(self, **changes: Any) -> ImageData:
        return dataclasses.replace(self, augmentation=dataclasses.replace(self.augmentation, **changes))

    def subset(self, split: str, num: int) -> ImageData:
        """A copy whose ``split`` keeps only its first ``num`` examples."""
        x, y = self.splits[split]
        splits = dict(self.splits)
        splits[split] = (x[:num], y[:num])
        return dataclasses.replace(self, splits=splits)

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        training: bool = False,
        seed: int = 0,
        drop_remainder: bool = False,
        repeat: bool = False,
    ) -> tf.data.Dataset:
        """The ``tf.data`` pipeline of one split.

        Args:
            split: ``"train"``, ``"validation"`` or ``"test"``.
            batch_size: examples per batch.
            training: shuffle and augment.
            seed: seed of the shuffling and of the augmentation.
            drop_remainder: drop the last partial batch.
            repeat: repeat forever (reshuffled every pass).

        Returns:
            A dataset of ``(float32 images [B, H, W, C], int32 labels [B])``.
        """
        if split not in self.splits:
            raise ValueError(f"dataset {self.name!r} has no split {split!r}; splits: {sorted(self.splits)}")
        x, y = self.splits[split]
        ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
        if training:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        scale = 255.0 if x.dtype == np.uint8 else 1.0
        aug = self.augmentation
        height, width = x.shape[1], x.shape[2]

        def prepare(image, label, rng_seed):
            image = tf.cast(image, tf.float32) / scale
            if training:
                seeds = tf.random.experimental.stateless_split(rng_seed, 3)
                if aug.upsample:
                    image = tf.image.resize(image, (aug.upsample, aug.upsample))
                    image = tf.image.stateless_random_crop(image, (height, width, image.shape[-1]), seed=seeds[0])
                if aug.flip:
                    image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
            image = tf.image.per_image_standardization(image)
            if training and aug.cutout:
                image = cutout(image, aug.cutout, seeds[2])
            return image, label

        # One independent stateless seed per example, derived from ``seed``.
        rngs = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, rngs)).map(
            lambda xy, s: prepare(xy[0], xy[1], s), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def cutout(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """Zeroes a ``size`` x ``size`` square centred at a random pixel (DeVries & Taylor 2017)."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    centre = tf.random.stateless_uniform([2], seed=seed, maxval=tf.int32.max, dtype=tf.int32)
    cy, cx = centre[0] % height, centre[1] % width
    ys = tf.range(height)[:, None]
    xs = tf.range(width)[None, :]
    half = size // 2
    inside = (ys >= cy - half) & (ys < cy - half + size) & (xs >= cx - half) & (xs < cx - half + size)
    return image * tf.cast(~inside, image.dtype)[:, :, None]


def _split_indices(num: int, sizes: list[int], seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(num)
    out, start = [], 0
    for s in sizes:
        out.append(np.sort(order[start : start + s]))
        start += s
    return out


def load_digits(validation_size: int = 300, test_size: int = 297, seed: int = 0) -> ImageData:
    """The 8x8 handwritten digits shipped with scikit-learn (1,797 images).

    The images are split once, with a fixed permutation, into train,
    validation (the search reward) and test.

    Args:
        validation_size: images held out for validation.
        test_size: images held out for the final test.
        seed: seed of the split.

    Returns:
        An :class:`ImageData` with float images in [0, 1], shape (8, 8, 1).
    """
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int32)
    n = len(images)
    if validation_size < 1 or test_size < 0 or validation_size + test_size >= n:
        raise ValueError(
            f"validation_size={validation_size} and test_size={test_size} must leave training images out of {n}"
        )
    train, val, test = _split_indices(n, [n - validation_size - test_size, validation_size, test_size], seed)
    return ImageData(
        name="digits",
        splits={
            "train": (images[train], labels[train]),
            "validation": (images[val], labels[val]),
            "test": (images[test], labels[test]),
        },
        num_classes=10,
        augmentation=Augmentation(upsample=10, flip=False),
        raw=RAW_PIXELS["digits"],
    )


def _read_cifar_pickles(directory: str) -> tuple[np.ndarray, ...] | None:
    """(train images, labels, test images, labels) from the original pickles, if ``directory`` has them."""
    for candidate in (directory, os.path.join(directory, "cifar-10-batches-py")):
        if os.path.exists(os.path.join(candidate, "data_batch_1")):
            break
    else:
        return None

    def read(name):
        path = os.path.join(candidate, name)
        if not os.path.exists(path):
            raise DatasetUnavailableError(f"CIFAR-10 pickle directory {candidate} is missing the file {name}")
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(d[b"labels"], dtype=np.int32)

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    tx, ty = read("test_batch")
    return x, y, tx, ty


def _cifar_data(x, y, tx, ty, validation_size: int = 5000) -> ImageData:
    n = len(x)
    if validation_size:
        train, val = _split_indices(n, [n - validation_size, validation_size], seed=0)
        splits = {"train": (x[train], y[train]), "validation": (x[val], y[val])}
    else:
        splits = {"train": (x, y)}
    splits["test"] = (tx, ty)
    return ImageData(
        name="cifar10", splits=splits, num_classes=10, augmentation=Augmentation(upsample=40, flip=True),
        raw=RAW_PIXELS["cifar10"],
    )


def load_cifar10(data_dir: str | None = None, download: bool = False, validation_size: int = 5000) -> ImageData:
    """CIFAR-10 with a random 45k/5k train/validation split (fixed seed).

    Args:
        data_dir: a tensorflow-datasets data directory (default: tfds's own,
            ``~/tensorflow_datasets``), or a directory with the original
            ``cifar-10-batches-py`` pickles.
        download: let tensorflow-datasets download and prepare CIFAR-10 if it
            is missing (needs network).
        validation_size: training images held out for validation.

    Returns:
        An :class:`ImageData` with uint8 images (32, 32, 3).

    Raises:
        DatasetUnavailableError: CIFAR-10 is not in ``data_dir`` and was not
            (or could not be) downloaded; the message says how to provide it.
    """
    if not 0 <= validation_size < 50000:
        raise ValueError(f"validation_size must be in [0, 50000), got {validation_size}")
    if data_dir:
        data_dir = os.path.expanduser(data_dir)
        arrays = _read_cifar_pickles(data_dir)
        if arrays is not None:
            return _cifar_data(*arrays, validation_size=validation_size)
    import tensorflow_datasets as tfds

    where = data_dir or "the default tensorflow-datasets directory (~/tensorflow_datasets)"
    how = (
        f"CIFAR-10 is not prepared in {where}. Provide it in one of these ways: "
        "(1) on a machine with network run `python -c \"import tensorflow_datasets as tfds; "
        "tfds.load('cifar10', data_dir='DIR')\"` and copy DIR here, then pass --data_dir=DIR; "
        "(2) pass --data_dir pointing at a directory holding the original cifar-10-batches-py pickles; "
        "(3) pass --download_data to let tensorflow-datasets download it (needs network)."
    )
    builder = tfds.builder("cifar10", data_dir=data_dir)
    if not builder.is_prepared() or download:
        if not download:
            raise DatasetUnavailableError(how)
        try:
            builder.download_and_prepare()
        except Exception as e:  # network errors come in many types
            raise DatasetUnavailableError(f"downloading CIFAR-10 failed ({type(e).__name__}: {e}). {how}") from e
    train, test = (_as_arrays(builder.as_dataset(split=split, batch_size=5000)) for split in ("train", "test"))
    return _cifar_data(
        train["image"], train["label"].astype(np.int32), test["image"], test["label"].astype(np.int32),
        validation_size=validation_size,
    )


def _as_arrays(dataset) -> dict[str, np.ndarray]:
    """Concatenates the batches of a tfds dataset of dicts into numpy arrays."""
    import tensorflow_datasets as tfds

    parts: dict[str, list] = {}
    for batch in tfds.as_numpy(dataset):
        for key in ("image", "label"):
            parts.setdefault(key, []).append(batch[key])
    return {key: np.concatenate(values) for key, values in parts.items()}


IMAGE_DATASETS = ("digits", "cifar10")


def load_image_data(name: str, data_dir: str | None = None, download: bool = False) -> ImageData:
    """Loads an image dataset by name (``"digits"`` or ``"cifar10"``)."""
    if name == "digits":
        return load_digits()
    if name == "cifar10":
        return load_cifar10(data_dir=data_dir, download=download)
    raise ValueError(f"unknown image dataset {name!r}; known: {', '.join(IMAGE_DATASETS)}")
