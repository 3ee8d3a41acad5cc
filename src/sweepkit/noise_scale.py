"""The gradient noise scale B_simple = tr(Σ) / |G|², measured once per epoch by a probe that leaves
training as it was (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training").

|G|² is the squared norm of the true gradient, tr(Σ) the summed variance of per-sample gradients.
B_simple predicts the critical batch size: below it a batch twice as large buys nearly twice the
progress per step; well above it, little. A batch of b samples drawn with replacement has
E|G_b|² = |G|² + tr(Σ)/b, so squared gradient norms at a small and a big batch give unbiased
estimates of both (their appendix A):

    |G|²  ~ (B_big |G_big|² - B_small |G_small|²) / (B_big - B_small)
    tr(Σ) ~ (|G_small|² - |G_big|²) / (1/B_small - 1/B_big)

The probe draws a few small batches from the training data; |G_small|² is their mean squared norm
and G_big their mean gradient (the big batch is all of them). It draws ``trainer.noise_scale_share``
of an epoch's samples, and it keeps to a time budget (``trainer.noise_scale_budget`` of the
training time so far): an epoch short enough that one measurement would overspend it (a few
large batches of a small data set) goes without one, and the next epochs catch up. A probe of n
samples resolves |G|² only while B_simple is not many times n: beyond, the estimate of |G|² drowns
in noise and the metric is NaN ("more than this probe can resolve"), not a wrong number.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sweepkit.devices import Precision
from sweepkit.errors import ConfigError

MIN_SAMPLES = 64  # below this the estimate is noise even early in training
MIN_SMALL_BATCHES = (
    2  # tr(Σ) from their spread: two suffice in thousands of dimensions; |G|² rests on all n samples
)
MAX_SHARE = 10.0  # a probe may look at more samples than an epoch holds (for a steadier estimate)
SEED_OFFSET = 7919  # the probe's draws are not the shuffling generator's stream

Draw = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class NoiseScale:
    """One measurement: the two unbiased estimates and their ratio (NaN when not resolved)."""

    grad_sq: float  # |G|²
    trace: float  # tr(Σ)

    @property
    def b_simple(self) -> float:
        return self.trace / self.grad_sq if self.grad_sq > 0 and self.trace > 0 else math.nan


def estimate(small_sq: float, big_sq: float, small: int, big: int) -> NoiseScale:
    """|G|² and tr(Σ) from the mean squared gradient norm at batch size ``small`` and the squared
    norm of the gradient at ``big`` (appendix A of McCandlish et al.)."""
    if not 0 < small < big:
        raise ValueError(f"batch sizes must satisfy 0 < small < big, got {small} and {big}")
    grad_sq = (big * big_sq - small * small_sq) / (big - small)
    trace = (small_sq - big_sq) / (1.0 / small - 1.0 / big)
    return NoiseScale(grad_sq, trace)


def probe_sizes(train_samples: int, batch_size: int, share: float) -> tuple[int, int]:
    """(small batch size, number of small batches) for a probe of ``share`` of an epoch's samples.

    A small batch is never larger than the training batch, which is known to fit in memory.
    """
    if not 0 < share <= MAX_SHARE:
        raise ConfigError("trainer.noise_scale_share", share, f"must be in (0, {MAX_SHARE:g}]")
    samples = max(MIN_SAMPLES, math.ceil(share * train_samples))
    small = max(1, min(batch_size, samples // MIN_SMALL_BATCHES))
    return small, max(MIN_SMALL_BATCHES, math.ceil(samples / small))


class NoiseScaleProbe:
    """Measures B_simple at the model's current weights from its own random draws of training data.

    Training is left exactly as it was: the probe uses its own generator, forks the global RNG
    (dropout), restores buffers such as BatchNorm statistics, and never touches ``.grad``.
    """

    def __init__(self, draw: Draw, small_batch: int, small_batches: int, budget: float = 1.0) -> None:
        if not 0 < budget <= 1:
            raise ConfigError("trainer.noise_scale_budget", budget, "must be in (0, 1]")
        self.draw, self.small_batch, self.small_batches, self.budget = (
            draw,
            small_batch,
            small_batches,
            budget,
        )
        self.spent_s = self.epochs_s = self.longest_s = (
            0.0  # its own time, the epochs', its longest measurement
        )
        self.measured = self.skipped = 0

    @classmethod
    def for_batches(
        cls, batches, batch_size: int, share: float, seed: int, budget: float = 1.0
    ) -> NoiseScaleProbe:
        """A probe drawing (with replacement) from the data behind a run's training batches."""
        small, count = probe_sizes(batches.num_samples, batch_size, share)
        return cls(_drawer(batches, seed + SEED_OFFSET), small, count, budget)

    def measure(
        self, model: nn.Module, loss_fn: nn.Module, precision: Precision, loss_scale: float = 1.0
    ) -> NoiseScale:
        """One estimate at the current weights (``loss_scale``: the fp16 GradScaler's scale, so
        that small gradients do not underflow)."""
        params = [p for p in model.parameters() if p.requires_grad]
        device = params[0].device
        buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
        was_training = model.training
        model.train()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                small_sq, total = self._gradients(model, loss_fn, precision, params, loss_scale)
        finally:
            model.train(was_training)
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(buffers[name])
        count = self.small_batches
        big_sq = sum(g.square().sum() for g in total) / count**2
        small_mean, big = torch.stack([small_sq / count, big_sq]).tolist()  # the probe's one sync
        return estimate(small_mean, big, self.small_batch, self.small_batch * count)

    def b_simple(
        self, model: nn.Module, loss_fn: nn.Module, precision: Precision, loss_scale: float, epoch_s: float
    ) -> float | None:
        """The loop's reading after an epoch of ``epoch_s`` seconds: B_simple at the current weights
        (NaN when not resolved), or None when measuring now would overspend the time budget."""
        self.epochs_s += epoch_s
        if self.spent_s > self.budget * self.epochs_s:
            self.skipped += 1
            return None
        start = time.perf_counter()
        value = self.measure(model, loss_fn, precision, loss_scale).b_simple
        took = time.perf_counter() - start
        self.spent_s, self.longest_s, self.measured = (
            self.spent_s + took,
            max(self.longest_s, took),
            self.measured + 1,
        )
        return value

    def _gradients(self, model, loss_fn, precision, params, loss_scale):
        """Sum of the small batches' squared gradient norms and of their gradients (on the device)."""
        small_sq, total = None, None
        for _ in range(self.small_batches):
            x, y = self.draw(self.small_batch)
            with precision.autocast():
                output = model(x)
            loss = loss_fn(output.float(), y) * loss_scale
            grads = [
                g.float() / loss_scale if g is not None else torch.zeros_like(p, dtype=torch.float32)
                for g, p in zip(torch.autograd.grad(loss, params, allow_unused=True), params)
            ]
            sq = sum(g.square().sum() for g in grads)
            small_sq = sq if small_sq is None else small_sq + sq
            total = grads if total is None else [t.add_(g) for t, g in zip(total, grads)]
        return small_sq, total


def _drawer(batches, seed: int) -> Draw:
    """Draws of n training samples with replacement, augmented as training augments them.

    Device-resident data is indexed where it lies; a DataLoader's data set is read sample by sample.
    """
    augment = getattr(batches, "augment", None)
    if hasattr(batches, "x") and hasattr(batches, "y"):  # DeviceBatches
        x_all, y_all = batches.x, batches.y
        generator = torch.Generator(x_all.device).manual_seed(seed)

        def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            index = torch.randint(len(y_all), (n,), device=x_all.device, generator=generator)
            x = x_all.index_select(0, index)
            return (augment(x, generator) if augment else x), y_all.index_select(0, index)

        return draw
    dataset, device = batches.loader.dataset, batches.device
    host = torch.Generator().manual_seed(seed)
    on_device = torch.Generator(device).manual_seed(seed)

    def draw_from_dataset(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        from torch.utils.data import default_collate

        index = torch.randint(len(dataset), (n,), generator=host).tolist()
        x, y = default_collate([dataset[i] for i in index])
        x = x.to(device, memory_format=batches.memory_format) if x.dim() == 4 else x.to(device)
        return (augment(x, on_device) if augment else x), y.to(device)

    return draw_from_dataset
