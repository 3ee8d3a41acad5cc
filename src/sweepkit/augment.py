"""Augmentations as batched tensor ops on the training device (no per-sample Python work)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sweepkit.errors import one_of

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Indices of a reflect-padded axis (``F.pad(mode="reflect")``) mapped back into ``0..size-1``."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def crop_flip(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """CIFAR-style augmentation: a random crop of the reflect-padded image, then a random h-flip.

    One gather reads every sample's crop window, flipped or not, straight from ``images``: no padded
    copy, and the output keeps the input's memory format (a channels-last batch stays channels-last,
    as tensor cores want it).
    """
    n, c, h, w = images.shape
    device = images.device
    dy = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    columns = torch.arange(w, device=device)
    columns = torch.where(
        flip[:, None], columns.flip(0), columns
    )  # a flipped crop reads its window backwards
    rows = reflect(dy[:, None] + torch.arange(h, device=device) - pad, h)[:, :, None]  # (n, h, 1)
    cols = reflect(dx[:, None] + columns - pad, w)[:, None, :]  # (n, 1, w)
    batch = torch.arange(n, device=device)[:, None, None]
    if images.is_contiguous(memory_format=torch.channels_last):
        return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # gathered as NHWC
    channel = torch.arange(c, device=device)[None, :, None, None]
    return images[batch[:, None], channel, rows[:, None], cols[:, None]]


AUGMENTS: dict[str, Augment | None] = {"none": None, "crop_flip": crop_flip}


def build_augment(name: str) -> Augment | None:
    """The augmentation named by ``data.augment`` (None for ``none``)."""
    if name not in AUGMENTS:
        raise one_of("data.augment", name, AUGMENTS)
    return AUGMENTS[name]
