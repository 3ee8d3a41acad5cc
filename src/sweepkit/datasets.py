"""Data sources: each returns a training pool and a test split, in memory when the data allows.

Every source is a function named by ``data.source._target_``; it receives the run's seed. The
train/validation split is made later, in one place (:func:`split_train_val`), with the same seed, so
that every trial of a sweep sees the same split.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import Dataset, Subset

from sweepkit.errors import ConfigError, one_of

Task = Literal["classification", "regression"]
TORCHVISION_DATASETS = ("MNIST", "FashionMNIST", "CIFAR10")


@dataclass
class TensorSplit:
    """Inputs and targets held as two tensors with the same first dimension."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: torch.Tensor) -> TensorSplit:
        return TensorSplit(self.x[index], self.y[index])


Split = TensorSplit | Dataset


@dataclass
class DataSource:
    """What a source yields: a pool to split into train/val, a test split, and the task's shape."""

    pool: Split
    test: Split
    task: Task
    input_shape: tuple[int, ...]
    num_outputs: int  # classes for classification, target width for regression


def _seeded_permutation(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _holdout(split: Split, fraction: float, seed: int, key: str) -> tuple[Split, Split]:
    """Split off a seeded share ``fraction`` of ``split``: returns (rest, held_out)."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(key, fraction, "must be in (0, 1)")
    n = len(split)
    n_held = max(1, round(n * fraction))
    order = _seeded_permutation(n, seed)
    rest_idx, held_idx = order[n_held:].sort().values, order[:n_held].sort().values
    if isinstance(split, TensorSplit):
        return split.take(rest_idx), split.take(held_idx)
    return Subset(split, rest_idx.tolist()), Subset(split, held_idx.tolist())


def split_train_val(pool: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """The seeded train/validation split of a source's pool."""
    return _holdout(pool, val_fraction, seed, "data.val_fraction")


def _standardize(pool: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Scale images per channel with the pool's mean and std (dim 1 is the channel)."""
    dims = [d for d in range(pool.dim()) if d != 1]
    mean = pool.mean(dim=dims, keepdim=True)
    std = pool.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (pool, *others)]


DIGITS_FILE = ("datasets", "data", "digits.csv.gz")  # inside scikit-learn: 64 pixels and the label per row


@functools.cache
def _digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """The digits decoded once per process (a sweep's trials in one worker read them again and
    again); never changed in place: the holdout and the scaling make new tensors."""
    images, labels = _read_digits_file()
    return torch.from_numpy(images).float().reshape(-1, 1, 8, 8), torch.from_numpy(labels).long()


def _read_digits_file():
    """The rows ``load_digits`` reads, read without importing scikit-learn (its import takes 1.5-2 s of
    every process that trains, each sweep worker's too; reading the file takes a few ms). A scikit-learn
    that keeps the file elsewhere is asked through ``load_digits``."""
    import gzip
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    path = Path(spec.submodule_search_locations[0], *DIGITS_FILE) if spec else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data, bunch.target
    with gzip.open(path, "rt") as rows:
        table = np.loadtxt(rows, delimiter=",", dtype=np.float32)
    return table[:, :-1], table[:, -1].astype(np.int64)


def digits(seed: int, test_fraction: float = 0.2) -> DataSource:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes): no download, trains anywhere."""
    x, y = _digits_tensors()
    pool, test = _holdout(TensorSplit(x, y), test_fraction, seed, "data.source.test_fraction")
    pool.x, test.x = _standardize(pool.x, test.x)
    return DataSource(pool, test, "classification", tuple(x.shape[1:]), 10)


def _images_as_tensor(data) -> torch.Tensor:
    """torchvision keeps MNIST as an N x H x W uint8 tensor and CIFAR-10 as an N x H x W x C array."""
    images = torch.as_tensor(data)
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    return images.float().div_(255.0)


def torchvision_dataset(seed: int, name: str, root: str, download: bool) -> DataSource:
    """torchvision's MNIST, FashionMNIST or CIFAR10, decoded once into memory."""
    import torchvision

    if name not in TORCHVISION_DATASETS:
        raise one_of("data.source.name", name, TORCHVISION_DATASETS)
    root_path = Path(root).expanduser()
    if not download and not root_path.is_dir():
        raise ConfigError("data.root", root, "does not exist; point it at the data or set data.download=true")
    cls = getattr(torchvision.datasets, name)
    try:
        train = cls(str(root_path), train=True, download=download)
        test = cls(str(root_path), train=False, download=download)
    except RuntimeError as err:  # torchvision's "Dataset not found or corrupted"
        raise ConfigError(
            "data.root", root, f"holds no readable {name} files ({err}); set data.download=true"
        ) from err
    x_train, x_test = _standardize(_images_as_tensor(train.data), _images_as_tensor(test.data))
    pool = TensorSplit(x_train, torch.as_tensor(train.targets, dtype=torch.long))
    test_split = TensorSplit(x_test, torch.as_tensor(test.targets, dtype=torch.long))
    return DataSource(pool, test_split, "classification", tuple(x_train.shape[1:]), len(train.classes))


def _to_rgb(image):
    """Module-level (not a lambda) so DataLoader workers can pickle the transform."""
    return image.convert("RGB")


def image_folder(seed: int, root: str, image_size: int, grayscale: bool, test_fraction: float) -> DataSource:
    """A user's images in ``<root>/train/<class>/`` (and ``<root>/test/<class>/``), read per sample."""
    from torchvision import datasets, transforms

    root_path = Path(root).expanduser()
    if not (root_path / "train").is_dir():
        raise ConfigError("data.root", root, "must be a folder holding train/<class>/ image folders")
    steps = [transforms.Resize((image_size, image_size))]
    channels = 1 if grayscale else 3
    steps += [transforms.Grayscale(1)] if grayscale else [transforms.Lambda(_to_rgb)]
    steps += [transforms.ToTensor(), transforms.Normalize([0.5] * channels, [0.5] * channels)]
    transform = transforms.Compose(steps)
    pool = datasets.ImageFolder(str(root_path / "train"), transform=transform)
    if (root_path / "test").is_dir():
        test = datasets.ImageFolder(str(root_path / "test"), transform=transform)
    else:
        pool, test = _holdout(pool, test_fraction, seed, "data.source.test_fraction")
    n_classes = len(pool.classes if isinstance(pool, datasets.ImageFolder) else pool.dataset.classes)
    return DataSource(pool, test, "classification", (channels, image_size, image_size), n_classes)


def _regression(x: torch.Tensor, y: torch.Tensor, seed: int, test_fraction: float) -> DataSource:
    pool, test = _holdout(TensorSplit(x, y), test_fraction, seed, "data.source.test_fraction")
    return DataSource(pool, test, "regression", tuple(x.shape[1:]), y.shape[1])


def sine(seed: int, n_samples: int, noise: float, test_fraction: float) -> DataSource:
    """y = sin(x) + noise for x uniform in [-pi, pi]: a smooth curve an MLP must bend to fit."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_samples, 1, generator=g) * 2 - 1) * math.pi
    y = torch.sin(x) + noise * torch.randn(n_samples, 1, generator=g)
    return _regression(x, y, seed, test_fraction)


def linear(seed: int, n_samples: int, in_features: int, noise: float, test_fraction: float) -> DataSource:
    """y = x @ w + b + noise with a seeded w and b: the case linear regression solves exactly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_samples, in_features, generator=g)
    w, b = torch.randn(in_features, 1, generator=g), torch.randn(1, generator=g)
    y = x @ w + b + noise * torch.randn(n_samples, 1, generator=g)
    return _regression(x, y, seed, test_fraction)
