"""Batches on the training device: device-resident tensors when the data fits, a DataLoader otherwise.

Device-resident batching (as in the CIFAR-10 speed records) moves the data once and indexes a
permutation made on the device, so a step costs one gather instead of collation, pinning and a copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from sweepkit.augment import Augment
from sweepkit.datasets import Split, TensorSplit
from sweepkit.errors import ConfigError, one_of

LOADERS = ("auto", "device", "dataloader")
# auto puts a data set on the GPU when it takes at most this share of the GPU's total memory (not
# of the memory free at that moment, so the same config always takes the same path there); the rest
# is for the model, its optimizer state and the activations
DEVICE_MEMORY_SHARE = 0.25
DataPathKind = Literal["device", "dataloader"]


class Batches(Protocol):
    """An iterable of (inputs, targets) already on the training device."""

    kind: DataPathKind
    batch_size: int

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    @property
    def num_samples(self) -> int: ...


def gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of ``x``, in ``x``'s memory format: ``index_select`` (several times faster than
    ``x[index]`` on a CPU) returns NCHW, so a channels-last batch is gathered as its NHWC view."""
    if (
        x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    ):  # (1 channel: both)
        return x.permute(0, 2, 3, 1).index_select(0, index).permute(0, 3, 1, 2)
    return x.index_select(0, index)


class DeviceBatches:
    """Batches cut from tensors held on the device by a shuffled on-device permutation."""

    kind: DataPathKind = "device"

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
            x = gather(self.x, index)
            yield (self.augment(x, self.generator) if self.augment else x), self.y.index_select(0, index)


class LoaderBatches:
    """A DataLoader (workers, pinned memory) whose batches are copied to the device without blocking.

    ``host_generator`` (CPU) shuffles; ``generator`` (on the device) draws the augmentation.
    """

    kind: DataPathKind = "dataloader"

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
        self.device, self.generator, self.augment, self.batch_size = device, generator, augment, batch_size
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


def split_bytes(split: Split) -> int | None:
    """Memory of an in-memory split (None: it reads from files)."""
    if not isinstance(split, TensorSplit):
        return None
    return split.x.element_size() * split.x.nelement() + split.y.element_size() * split.y.nelement()


def device_memory(device: torch.device) -> int | None:
    """Total memory of a GPU (None for a CPU, whose data is in host memory already)."""
    return torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None


@dataclass(frozen=True)
class DataPath:
    """Device-resident batches or a DataLoader, for all splits of a run, and why."""

    kind: DataPathKind
    reason: str


def choose_data_path(
    loader: str, splits: Sequence[Split], device: torch.device, total_memory: int | None
) -> DataPath:
    """``data.loader`` for a whole data set (its splits together) on ``device`` with ``total_memory``."""
    if loader not in LOADERS:
        raise one_of("data.loader", loader, LOADERS)
    sizes = [split_bytes(s) for s in splits]
    if loader == "dataloader":
        return DataPath("dataloader", "data.loader=dataloader")
    if None in sizes:
        if loader == "device":
            raise ConfigError(
                "data.loader", loader, "needs an in-memory data set; image_folder reads files: use dataloader"
            )
        return DataPath("dataloader", "the data set is read from files")
    size = f"{sum(sizes) / 2**20:,.0f} MiB"
    if loader == "device":
        return DataPath("device", f"data.loader=device ({size})")
    if total_memory is None:
        return DataPath("device", f"the data set ({size}) is in host memory already")
    budget = f"{DEVICE_MEMORY_SHARE:.0%} of {device}'s {total_memory / 2**30:.1f} GiB total memory"
    if sum(sizes) <= DEVICE_MEMORY_SHARE * total_memory:
        return DataPath("device", f"the data set ({size}) fits in {budget}")
    return DataPath("dataloader", f"the data set ({size}) exceeds {budget}")


def check_batch_size(batch_size: int, train_size: int) -> None:
    """A batch must hold at least one sample and no more than the training set."""
    if not 1 <= batch_size <= train_size:
        raise ConfigError(
            "data.batch_size", batch_size, f"must be between 1 and the {train_size} training samples"
        )


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
    """Batches of one split on the path ``loader`` names (``auto``: :func:`choose_data_path` for
    this split alone; a run chooses once for all its splits and passes the kind).

    Without generators the batches come in order and unaugmented (validation and test).
    """
    if loader not in ("device", "dataloader"):
        loader = choose_data_path(loader, [split], device, device_memory(device)).kind
    if loader == "device":
        if not isinstance(split, TensorSplit):
            raise ConfigError(
                "data.loader", loader, "needs an in-memory data set; image_folder reads files: use dataloader"
            )
        return DeviceBatches(split, batch_size, device, generator, augment, channels_last)
    return LoaderBatches(
        split, batch_size, device, num_workers, generator, host_generator, augment, channels_last
    )
