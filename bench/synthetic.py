"""Synthetic data sources for the benchmarks, named by ``data.source._target_=synthetic.<name>``
(the bench/ folder is on the path of a benchmark run as a script)."""

from __future__ import annotations

import torch

from sweepkit.datasets import DataSource, TensorSplit


def images(
    seed: int,
    test_fraction: float,
    n_samples: int = 70_000,
    shape: tuple[int, ...] = (1, 28, 28),
    classes: int = 10,
) -> DataSource:
    """MNIST-sized by default: 70,000 images of 1x28x28 (60,000 + 10,000 at test_fraction 1/7), 10
    classes, standard-normal pixels. Learning is not the point; moving and computing on the bytes is."""
    g = torch.Generator().manual_seed(seed)
    n_test = round(n_samples * test_fraction)
    x = torch.randn(n_samples, *shape, generator=g)
    y = torch.randint(0, classes, (n_samples,), generator=g)
    pool, test = TensorSplit(x[n_test:], y[n_test:]), TensorSplit(x[:n_test], y[:n_test])
    return DataSource(pool, test, "classification", tuple(shape), classes)
