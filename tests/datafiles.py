"""Small data files in the formats torchvision reads, written by tests (no download anywhere)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _learnable_images(
    n: int, shape: tuple[int, ...], classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Noise plus a class-dependent bright stripe, so that a step of training can lower the loss."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % classes).astype(np.uint8)  # every class present in every split
    images = rng.integers(0, 60, (n, *shape)).astype(np.uint8)
    rows = shape[0]  # (H, W) or (H, W, C): the stripe runs across the rows either way
    for i, label in enumerate(labels):
        row = int(label) * rows // classes
        images[i, row : row + 2] = 255
    return images, labels


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format of MNIST: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, class_name: str = "MNIST", n_train: int = 256, n_test: int = 64) -> Path:
    """The four uncompressed IDX files under ``<root>/<class_name>/raw/``, as torchvision expects."""
    raw = root / class_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = _learnable_images(n, (28, 28), 10, seed)
        write_idx(raw / MNIST_FILES[split][0], images)
        write_idx(raw / MNIST_FILES[split][1], labels)
    return root


def write_cifar10(root: Path, per_batch: int = 40, n_test: int = 40) -> Path:
    """CIFAR-10's python pickles under ``<root>/cifar-10-batches-py/`` (HWC images flattened CHW)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        images, labels = _learnable_images(
            n_test if name == "test_batch" else per_batch, (32, 32, 3), 10, seed
        )
        data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels.tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return root


def write_image_folder(root: Path, classes: int = 3, per_class: int = 8, with_test: bool = True) -> Path:
    """PNG files in ``<root>/train/<class>/`` (and ``<root>/test/<class>/``)."""
    splits = ("train", "test") if with_test else ("train",)
    for split in splits:
        images, labels = _learnable_images(classes * per_class, (16, 16, 3), classes, seed=len(split))
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.png")
    return root
