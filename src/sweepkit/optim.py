"""Optimizers and per-step learning-rate schedules by ``_target_``, with linear warm-up (Goyal et al., 2017).

An optimizer config names any class or function called as ``target(params, lr=..., **settings)``
that returns a ``torch.optim.Optimizer``; a scheduler config any class or function called as
``target(optimizer, **settings)`` that returns an lr scheduler, stepped once per optimizer step.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch.optim import lr_scheduler

from sweepkit.errors import ConfigError, one_of
from sweepkit.targets import accepts, call, import_target, settings

OPTIMIZER_KEYS = ("name", "lr", "auto_rule")  # sweepkit's own; every other key goes to the target
SCHEDULER_KEYS = ("name", "warmup_epochs", "warmup_start_factor", "units")
IMPLEMENTATION_KEYS = ("fused", "foreach")  # the user chose how torch runs the update: leave it


def fused_setting(target: Callable[..., Any], device_type: str, chosen: Mapping[str, Any]) -> dict[str, bool]:
    """``{"fused": True}`` on CUDA when ``target`` takes ``fused`` and the config picks no implementation.

    torch's fused Adam, AdamW, SGD and Adagrad update all parameters in one kernel and take
    GradScaler's inf check on the device, where the others read it back every step (a host sync
    in fp16). On the CPU only an explicit ``optimizer.fused=true`` fuses.
    """
    if device_type != "cuda" or not accepts(target, "fused") or any(k in chosen for k in IMPLEMENTATION_KEYS):
        return {}
    if chosen.get("differentiable"):  # torch has no fused differentiable update
        return {}
    return {"fused": True}


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: Mapping[str, Any], lr: float
) -> torch.optim.Optimizer:
    """The optimizer ``optimizer._target_`` names, at the effective ``lr``; the other keys pass through."""
    target = import_target("optimizer._target_", cfg["_target_"])
    params = list(params)
    kwargs = settings(cfg, OPTIMIZER_KEYS)
    device_type = params[0].device.type if params else "cpu"
    kwargs.update(fused_setting(target, device_type, kwargs))
    optimizer = call(target, "optimizer", cfg["name"], params, lr=lr, **kwargs)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError(
            "optimizer._target_",
            cfg["_target_"],
            f"returned a {type(optimizer).__name__}, not a torch.optim.Optimizer",
        )
    return optimizer


# -- schedules -----------------------------------------------------------------------------------


def unit_sizes(steps_per_epoch: int, main_steps: int, lr: float) -> dict[str, float]:
    """What one of each ``scheduler.units`` unit is worth: the run's own numbers, known only once it is built."""
    return {
        "epochs": steps_per_epoch,  # an epoch, in optimizer steps
        "run": main_steps,  # the whole schedule after the warm-up, in optimizer steps
        "lr": lr,  # the effective lr
    }


def _convert(key: str, value: Any, unit: str, size: float) -> Any:
    if isinstance(value, list | tuple):
        return type(value)(_convert(key, v, unit, size) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"scheduler.{key}", value, f"must be a number (or a list of numbers) in {unit}")
    return value * size if unit == "lr" else round(value * size)  # step counts are whole steps


def in_steps(kwargs: dict[str, Any], units: Mapping[str, str], sizes: Mapping[str, float]) -> dict[str, Any]:
    """``kwargs`` with each key named in ``units`` converted from its unit to optimizer steps (or an lr)."""
    converted = dict(kwargs)
    for key, unit in units.items():
        if key not in kwargs:
            raise ConfigError(
                f"scheduler.units.{key}",
                unit,
                f"names no setting of the scheduler; its settings: {', '.join(kwargs) or '(none)'}",
            )
        if unit not in sizes:
            raise one_of(f"scheduler.units.{key}", unit, sizes)
        converted[key] = _convert(key, kwargs[key], unit, sizes[unit])
    return converted


def _check_steppable(scheduler: Any, path: str) -> None:
    """The loop calls ``scheduler.step()`` after every optimizer step, with no arguments, and
    checkpoints save and restore its ``state_dict()``."""
    missing = [
        m for m in ("step", "state_dict", "load_state_dict") if not callable(getattr(scheduler, m, None))
    ]
    if missing:
        raise ConfigError(
            "scheduler._target_",
            path,
            f"returned a {type(scheduler).__name__}, which has no {', '.join(m + '()' for m in missing)}",
        )
    required = [
        p.name
        for p in inspect.signature(scheduler.step).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if required:
        raise ConfigError(
            "scheduler._target_",
            path,
            f"needs {', '.join(required)} at each step(); sweepkit steps it once per optimizer step without arguments",
        )


def _main_schedule(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], sizes: Mapping[str, float]
) -> Any:
    target = import_target("scheduler._target_", cfg["_target_"])
    kwargs = in_steps(settings(cfg, SCHEDULER_KEYS), cfg["units"], sizes)
    scheduler = call(target, "scheduler", cfg["name"], optimizer, **kwargs)
    _check_steppable(scheduler, cfg["_target_"])
    return scheduler


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], steps_per_epoch: int, max_epochs: int, lr: float
) -> lr_scheduler.LRScheduler | None:
    """The schedule ``scheduler._target_`` names, stepped once per batch; ``warmup_epochs`` > 0
    puts a linear warm-up in front of it.

    ``_target_: null`` is a constant lr: after a warm-up, or with none, no scheduler at all (None:
    nothing to step per batch).
    """
    warmup_epochs, start_factor = cfg["warmup_epochs"], cfg["warmup_start_factor"]
    if not 0 <= warmup_epochs < max_epochs:
        raise ConfigError(
            "scheduler.warmup_epochs", warmup_epochs, f"must be in [0, trainer.max_epochs={max_epochs})"
        )
    if not 0.0 < start_factor <= 1.0:
        raise ConfigError("scheduler.warmup_start_factor", start_factor, "must be in (0, 1]")
    total_steps, warmup_steps = steps_per_epoch * max_epochs, steps_per_epoch * warmup_epochs
    sizes = unit_sizes(steps_per_epoch, total_steps - warmup_steps, lr)
    main = None if cfg["_target_"] is None else _main_schedule(optimizer, cfg, sizes)
    if warmup_steps == 0:
        return main
    warmup = lr_scheduler.LinearLR(
        optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps
    )
    if main is None:
        return warmup  # LinearLR holds end_factor (1.0) once its total_iters are done
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])
