"""Your data. sweepkit calls ``blobs(seed=..., <the keys of conf/data/blobs.yaml's source>)``.

A data source returns a ``sweepkit.datasets.DataSource``: a pool that sweepkit splits into train and
validation (``data.val_fraction``, seeded), a test split, the task (``classification`` or
``regression``), the input shape of one sample and the number of outputs. Splits that fit in memory
are ``TensorSplit(x, y)``; replace the synthetic points below with your own tensors (or return any
``torch.utils.data.Dataset`` for data read from files, with ``data.loader: dataloader``).
"""

import torch

from sweepkit.datasets import DataSource, TensorSplit


def blobs(seed, n_samples=1200, n_classes=3, noise=0.6, test_fraction=0.2):
    """Gaussian blobs in 2-D, one per class: a problem that trains in a second on any CPU."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, 2, generator=generator) * 4
    y = torch.randint(0, n_classes, (n_samples,), generator=generator)
    x = centres[y] + noise * torch.randn(n_samples, 2, generator=generator)
    n_test = int(n_samples * test_fraction)
    pool, test = TensorSplit(x[n_test:], y[n_test:]), TensorSplit(x[:n_test], y[:n_test])
    return DataSource(pool, test, "classification", input_shape=(2,), num_outputs=n_classes)
