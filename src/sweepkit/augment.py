"""Augmentations as batched tensor ops on the training device (no per-sample Python work)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from sweepkit.errors import one_of

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def crop_flip(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """CIFAR-style augmentation: a random crop of the reflect-padded image, then a random h-flip.

    One gather picks every sample's crop window at once; the flip is a masked select.
    """
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    cropped = padded[batch, channel, rows, cols]
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(-1), cropped)


AUGMENTS: dict[str, Augment | None] = {"none": None, "crop_flip": crop_flip}


def build_augment(name: str) -> Augment | None:
    """The augmentation named by ``data.augment`` (None for ``none``)."""
    if name not in AUGMENTS:
        raise one_of("data.augment", name, AUGMENTS)
    return AUGMENTS[name]
