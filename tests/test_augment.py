"""Crop-and-flip augmentation as one batched op on the device."""

import pytest
import torch
import torch.nn.functional as F

from sweepkit.augment import build_augment, crop_flip
from sweepkit.errors import ConfigError


def test_crop_flip_keeps_shape_and_moves_content():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8).repeat(16, 1, 1, 1)
    out = crop_flip(images, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == images.shape
    changed = (out != images).flatten(1).any(1)
    assert changed.float().mean() > 0.5  # most samples are shifted or flipped


def test_zero_shift_without_flip_is_identity():
    # With pad 0 every crop is the whole image, so only flips change anything.
    images = torch.randn(64, 1, 6, 6)
    out = crop_flip(images, torch.Generator().manual_seed(1), pad=0)
    same = (out == images).flatten(1).all(1)
    flipped = (out == images.flip(-1)).flatten(1).all(1)
    assert (same | flipped).all() and flipped.any() and same.any()


def test_crop_flip_is_seeded():
    images = torch.randn(8, 3, 16, 16)
    a = crop_flip(images, torch.Generator().manual_seed(7))
    b = crop_flip(images, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_unknown_augment_lists_the_choices():
    with pytest.raises(ConfigError, match="data.augment=mixup is not one of: none, crop_flip"):
        build_augment("mixup")


def pad_crop_flip(images, generator, pad=4):
    """The textbook form, three copies deep: reflect-pad, gather the crops, flip half of them."""
    n, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    cropped = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(-1), cropped)


@pytest.mark.parametrize(
    "memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"]
)
def test_crop_flip_is_pad_then_crop_then_flip_in_one_gather(memory_format):
    # The one-gather form reads the same pixels as the textbook form, in either memory format.
    images = torch.randn(32, 3, 8, 8).contiguous(memory_format=memory_format)
    ours = crop_flip(images, torch.Generator().manual_seed(4), pad=3)
    assert torch.equal(ours, pad_crop_flip(images, torch.Generator().manual_seed(4), pad=3))
    assert ours.is_contiguous(memory_format=memory_format)
