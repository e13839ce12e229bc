"""Datasets: embedded digits, CIFAR-10 through tfds or pickles, the input pipeline."""

import os
import pickle
import time

import numpy as np
import pytest

from nas_tf.data import DatasetUnavailableError, load_cifar10, load_digits, load_image_data


def test_digits_splits_are_disjoint_real_images(digits):
    assert digits.input_shape == (8, 8, 1) and digits.num_classes == 10
    sizes = {k: len(v[0]) for k, v in digits.splits.items()}
    assert sizes == {"train": 1200, "validation": 300, "test": 297}
    rows = {k: {x.tobytes() for x in v[0]} for k, v in digits.splits.items()}
    assert not rows["train"] & rows["validation"] and not rows["train"] & rows["test"]
    x, y = digits.splits["train"]
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))
    # The same split every time.
    np.testing.assert_array_equal(load_digits().splits["validation"][1], digits.splits["validation"][1])


def test_pipeline_whitens_augments_and_is_seeded(digits):
    batch = next(iter(digits.batches("train", 64, training=True, seed=3)))
    x, y = batch[0].numpy(), batch[1].numpy()
    assert x.shape == (64, 8, 8, 1) and y.shape == (64,)
    # Per-image whitening: zero mean, unit variance per image.
    np.testing.assert_allclose(x.reshape(64, -1).mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.reshape(64, -1).std(axis=1), 1.0, atol=1e-2)
    again = next(iter(digits.batches("train", 64, training=True, seed=3)))[0].numpy()
    np.testing.assert_array_equal(x, again)
    other = next(iter(digits.batches("train", 64, training=True, seed=4)))[0].numpy()
    assert not np.array_equal(x, other)
    # Evaluation batches: no shuffling, no augmentation, deterministic.
    ev = np.concatenate([b[1].numpy() for b in digits.batches("validation", 128)])
    np.testing.assert_array_equal(ev, digits.splits["validation"][1])


def test_cutout_zeroes_a_square(digits):
    data = digits.with_augmentation(upsample=0, cutout=4)
    x = next(iter(data.batches("train", 32, training=True, seed=0)))[0].numpy()
    plain = next(iter(digits.with_augmentation(upsample=0).batches("train", 32, training=True, seed=0)))[0].numpy()
    zeroed = (x == 0) & (plain != 0)
    counts = zeroed.reshape(32, -1).sum(axis=1)
    assert counts.max() <= 16 and counts.mean() > 2


def test_cifar10_missing_fails_fast_and_says_how_to_provide_it(tmp_path):
    start = time.time()
    with pytest.raises(DatasetUnavailableError) as info:
        load_cifar10(data_dir=str(tmp_path))
    assert time.time() - start < 30
    message = str(info.value)
    assert str(tmp_path) in message and "--data_dir" in message and "--download_data" in message


def _write_cifar_pickles(directory, digits):
    """Tiny CIFAR-format batches made of real digit images (32x32 RGB)."""
    os.makedirs(directory)
    x, y = digits.splits["train"]
    img = np.kron((x[..., 0] * 255).astype(np.uint8), np.ones((4, 4), np.uint8))  # 8x8 -> 32x32
    rgb = np.stack([img] * 3, axis=1).reshape(len(img), -1)  # CHW rows, as in the original files
    for i, name in enumerate(["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]):
        part = slice(i * 100, (i + 1) * 100)
        with open(os.path.join(directory, name), "wb") as f:
            pickle.dump({b"data": rgb[part], b"labels": y[part].tolist()}, f)
    return img, y


def test_cifar10_from_original_pickles(tmp_path, digits):
    img, y = _write_cifar_pickles(str(tmp_path / "cifar-10-batches-py"), digits)
    data = load_cifar10(data_dir=str(tmp_path), validation_size=50)
    assert data.input_shape == (32, 32, 3)
    assert data.size("train") == 450 and data.size("validation") == 50 and data.size("test") == 100
    np.testing.assert_array_equal(data.splits["test"][0][..., 1], img[500:600])
    np.testing.assert_array_equal(data.splits["test"][1], y[500:600])
    assert data.augmentation.flip and data.augmentation.upsample == 40
    x, _ = next(iter(data.batches("train", 8, training=True)))
    assert x.shape == (8, 32, 32, 3)


def test_cifar10_through_tensorflow_datasets(tmp_path):
    # No network here: tfds' own test double stands in for the download and
    # serves examples of the real CIFAR-10 builder (features, dtypes, splits),
    # which exercises our loading code end to end.
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=60):
        data = load_cifar10(data_dir=str(tmp_path), validation_size=10, download=True)
    assert data.input_shape == (32, 32, 3) and data.splits["train"][0].dtype == np.uint8
    assert data.size("train") == 50 and data.size("validation") == 10 and data.size("test") == 60


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown image dataset 'mnist'"):
        load_image_data("mnist")
