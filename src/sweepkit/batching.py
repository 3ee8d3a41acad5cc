"""Batches on the training device: device-resident tensors when the data fits, a DataLoader otherwise.

Device-resident batching (as in the CIFAR-10 speed records) moves the data once and indexes a
permutation made on the device, so a step costs one gather instead of collation, pinning and a copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from sweepkit.augment import Augment
from sweepkit.datasets import Split, TensorSplit
from sweepkit.errors import ConfigError, one_of

LOADERS = ("auto", "device", "dataloader")
DEVICE_MEMORY_SHARE = 0.5  # keep at least half of the free GPU memory for activations


class Batches(Protocol):
    """An iterable of (inputs, targets) already on the training device."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    @property
    def num_samples(self) -> int: ...


class DeviceBatches:
    """Batches cut from tensors held on the device by a shuffled on-device permutation."""

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        device: torch.device,
        generator: torch.Generator | None = None,
        augment: Augment | None = None,
        channels_last: bool = False,
    ) -> None:
        x = split.x.to(device)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        self.x, self.y = x, split.y.to(device)
        self.batch_size, self.generator, self.augment = batch_size, generator, augment

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.num_samples
        if self.generator is None:  # evaluation: in order, no augmentation
            for start in range(0, n, self.batch_size):
                yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]
            return
        order = torch.randperm(n, device=self.x.device, generator=self.generator)
        for index in order.split(self.batch_size):
            x = self.x.index_select(0, index)  # several times faster than x[index] on a CPU
            yield (self.augment(x, self.generator) if self.augment else x), self.y.index_select(0, index)


class LoaderBatches:
    """A DataLoader (workers, pinned memory) whose batches are copied to the device without blocking.

    ``host_generator`` (CPU) shuffles; ``generator`` (on the device) draws the augmentation.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        num_workers: int,
        generator: torch.Generator | None = None,
        host_generator: torch.Generator | None = None,
        augment: Augment | None = None,
        channels_last: bool = False,
    ) -> None:
        dataset: Dataset = TensorDataset(split.x, split.y) if isinstance(split, TensorSplit) else split
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=host_generator is not None,
            generator=host_generator,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
        )
        self.device, self.generator, self.augment = device, generator, augment
        self.memory_format = torch.channels_last if channels_last else torch.preserve_format

    @property
    def num_samples(self) -> int:
        return len(self.loader.dataset)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            if x.dim() == 4:
                x = x.contiguous(memory_format=self.memory_format)
            if self.augment is not None and self.generator is not None:
                x = self.augment(x, self.generator)
            yield x, y.to(self.device, non_blocking=True)


def fits_on_device(split: Split, device: torch.device) -> bool:
    """Whether a split is in memory and small enough to be moved to the device whole."""
    if not isinstance(split, TensorSplit):
        return False
    if device.type != "cuda":
        return True  # already in host memory
    free, _ = torch.cuda.mem_get_info(device)
    size = split.x.element_size() * split.x.nelement() + split.y.element_size() * split.y.nelement()
    return size < DEVICE_MEMORY_SHARE * free


def check_batch_size(batch_size: int, train_size: int) -> None:
    """A batch must hold at least one sample and no more than the training set."""
    if not 1 <= batch_size <= train_size:
        raise ConfigError("data.batch_size", batch_size, f"must be between 1 and the {train_size} training samples")


def make_batches(
    split: Split,
    batch_size: int,
    device: torch.device,
    loader: str,
    num_workers: int,
    generator: torch.Generator | None = None,
    host_generator: torch.Generator | None = None,
    augment: Augment | None = None,
    channels_last: bool = False,
) -> Batches:
    """Pick the device-resident path or the DataLoader path for one split (``data.loader``).

    Without generators the batches come in order and unaugmented (validation and test).
    """
    if loader not in LOADERS:
        raise one_of("data.loader", loader, LOADERS)
    on_device = fits_on_device(split, device) if loader == "auto" else loader == "device"
    if on_device:
        if not isinstance(split, TensorSplit):
            raise ConfigError("data.loader", loader, "needs an in-memory data set; image_folder reads files: use dataloader")
        return DeviceBatches(split, batch_size, device, generator, augment, channels_last)
    return LoaderBatches(split, batch_size, device, num_workers, generator, host_generator, augment, channels_last)
