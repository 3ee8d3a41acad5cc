"""A data source of the user's own: two noisy concentric rings, one class each."""

import math

import torch

from sweepkit.datasets import DataSource, TensorSplit


def rings(seed, n_samples=1500, noise=0.15, test_fraction=0.2):
    """Points on the unit circle (class 0) and a circle of radius 2 (class 1), with Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n_samples,), generator=generator)
    angle = torch.rand(n_samples, generator=generator) * 2 * math.pi
    radius = 1.0 + y.float()
    x = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1) + noise * torch.randn(
        n_samples, 2, generator=generator
    )
    n_test = int(n_samples * test_fraction)
    return DataSource(
        TensorSplit(x[n_test:], y[n_test:]), TensorSplit(x[:n_test], y[:n_test]), "classification", (2,), 2
    )
