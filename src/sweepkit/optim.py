"""Optimizers and per-step learning-rate schedules, with linear warm-up (Goyal et al., 2017)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.optim import lr_scheduler

from sweepkit.errors import ConfigError, one_of

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}
SCHEDULERS = ("none", "cosine", "step", "onecycle")


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: Mapping[str, Any], lr: float) -> torch.optim.Optimizer:
    """The optimizer named by ``optimizer.name`` at the effective ``lr``; other keys pass through."""
    name = cfg["name"]
    if name not in OPTIMIZERS:
        raise one_of("optimizer", name, OPTIMIZERS)
    kwargs = {k: (tuple(v) if isinstance(v, list | tuple) else v) for k, v in cfg.items() if k not in ("name", "lr")}
    if kwargs.get("weight_decay", 0) < 0:
        raise ConfigError("optimizer.weight_decay", kwargs["weight_decay"], "must be >= 0")
    try:
        return OPTIMIZERS[name](params, lr=lr, **kwargs)
    except (ValueError, TypeError) as err:  # torch names the bad setting, e.g. nesterov without momentum
        raise ConfigError("optimizer", name, f"rejects its settings {kwargs}: {err}") from err


def _main_schedule(optimizer, cfg: Mapping[str, Any], steps: int, steps_per_epoch: int, lr: float) -> lr_scheduler.LRScheduler:
    name = cfg["name"]
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1), eta_min=cfg["min_lr_factor"] * lr)
    if name == "step":
        if cfg["step_epochs"] < 1:
            raise ConfigError("scheduler.step_epochs", cfg["step_epochs"], "must be >= 1")
        return lr_scheduler.StepLR(optimizer, step_size=cfg["step_epochs"] * steps_per_epoch, gamma=cfg["gamma"])
    return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)  # the constant lr after a warm-up


def _onecycle(optimizer, cfg: Mapping[str, Any], total_steps: int, warmup_steps: int, lr: float):
    pct_start = warmup_steps / total_steps if warmup_steps else cfg["pct_start"]
    if not 0.0 < pct_start < 1.0:
        raise ConfigError("scheduler.warmup_epochs", cfg["warmup_epochs"], "must leave part of the run for annealing")
    return lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=lr,
        total_steps=total_steps,
        pct_start=pct_start,
        div_factor=1.0 / cfg["warmup_start_factor"],
        final_div_factor=cfg["final_div_factor"],
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], steps_per_epoch: int, max_epochs: int, lr: float
) -> lr_scheduler.LRScheduler | None:
    """A schedule stepped once per batch; ``warmup_epochs`` > 0 prepends a linear warm-up.

    A constant lr without warm-up needs no scheduler at all (None): nothing to step per batch.
    """
    name = cfg["name"]
    if name not in SCHEDULERS:
        raise one_of("scheduler", name, SCHEDULERS)
    warmup_epochs, start_factor = cfg["warmup_epochs"], cfg["warmup_start_factor"]
    if not 0 <= warmup_epochs < max_epochs:
        raise ConfigError("scheduler.warmup_epochs", warmup_epochs, f"must be in [0, trainer.max_epochs={max_epochs})")
    if not 0.0 < start_factor <= 1.0:
        raise ConfigError("scheduler.warmup_start_factor", start_factor, "must be in (0, 1]")
    total_steps, warmup_steps = steps_per_epoch * max_epochs, steps_per_epoch * warmup_epochs
    if name == "onecycle":
        return _onecycle(optimizer, cfg, total_steps, warmup_steps, lr)
    if name == "none" and warmup_steps == 0:
        return None
    main = _main_schedule(optimizer, cfg, total_steps - warmup_steps, steps_per_epoch, lr)
    if warmup_steps == 0:
        return main
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps)
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])
