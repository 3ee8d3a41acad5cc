"""What a task computes: its loss (by ``_target_``), the metrics it produces, and which objective is valid."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sweepkit.errors import ConfigError, one_of
from sweepkit.targets import call, import_target, settings

if TYPE_CHECKING:  # torch on use: the metric names are read by processes that train nothing (study plots)
    import torch

    from sweepkit.datasets import Task

LOSS_KEYS = ("for_task",)  # sweepkit's own key of a loss config; every other key goes to the target
TARGET_SHAPES: dict[Task, str] = {
    "classification": "class indices [batch]",
    "regression": "[batch, outputs]",
}  # as DataSource yields them
# The names of a run's per-epoch metrics, written here once: the loop records them, the trackers log
# them under these names, objectives, plots and the console read them.
TRAIN_LOSS = "train/loss"  # mean training loss of the epoch
VAL_LOSS, VAL_ACC = "val/loss", "val/acc"  # evaluate()'s loss and acc on the validation split
LR = "lr"  # the first param group's lr at the epoch's end
EPOCH_TIME = "epoch_time_s"  # train and validate, without the noise-scale probe
SAMPLES_PER_S = "train/samples_per_s"  # training samples per second of training time
LOSSES = (TRAIN_LOSS, VAL_LOSS)  # both finite, or the run diverged
EPOCH_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": (TRAIN_LOSS, VAL_LOSS, VAL_ACC, LR, EPOCH_TIME, SAMPLES_PER_S),
    "regression": (TRAIN_LOSS, VAL_LOSS, LR, EPOCH_TIME, SAMPLES_PER_S),
}
NOISE_SCALE = "grad_noise_scale"  # per-epoch metric of trainer.noise_scale=true (sweepkit.noise_scale)
# logged each epoch by runs on CUDA alone, so never an objective: the epoch's peak of GPU memory held
# by tensors, in GiB (torch.cuda.max_memory_allocated; the cache reserves more)
GPU_MAX_MEMORY = "gpu/max_memory_allocated"
MODES = ("max", "min")


def build_loss(
    cfg: Mapping[str, Any], task: Task, num_outputs: int, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``loss._target_`` names: a class (a loss module) is built with the config's other
    keys; a function is called as ``fn(outputs, targets, **other keys)``. ``_target_: null`` takes
    the task's own loss from ``loss.for_task`` (loss=auto: cross-entropy for classes, MSE for regression).
    Either way the loss must return the batch's mean as a scalar tensor.
    """
    import torch

    key = "loss"
    if cfg["_target_"] is None:
        by_task = cfg.get("for_task") or {}
        if task not in by_task:
            raise ConfigError(
                "loss.for_task",
                sorted(by_task),
                f"has no loss for this data's task ({task}); set loss=<option> or loss._target_",
            )
        cfg, key = by_task[task], f"loss.for_task.{task}"
    target = import_target(f"{key}._target_", cfg["_target_"])
    kwargs = settings(cfg, LOSS_KEYS)
    if inspect.isclass(target):
        loss_fn = call(target, key, cfg["_target_"], **kwargs)
    else:
        loss_fn = functools.partial(target, **kwargs) if kwargs else target
    check_loss(loss_fn, task, num_outputs, key, cfg["_target_"])
    return (
        loss_fn.to(device) if isinstance(loss_fn, torch.nn.Module) else loss_fn
    )  # its tensors (class weights) go where the outputs are


def check_loss(loss_fn: Callable[..., Any], task: Task, num_outputs: int, key: str, path: str) -> None:
    """Try the loss once on zeros shaped as the model's outputs and the data's targets: a loss that
    does not fit the task fails here, before anything is written, not at the first step.

    The probe batch is one longer than the output width, so that class-index targets cannot
    broadcast against the outputs (MSE on classes would pass silently on a batch of two classes).
    """
    import torch

    batch = num_outputs + 1
    outputs = torch.zeros(batch, num_outputs, requires_grad=True)
    targets = (
        torch.zeros(batch, dtype=torch.long) if task == "classification" else torch.zeros(batch, num_outputs)
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # torch's broadcast warning precedes its error: the one line says it all
            value = loss_fn(outputs, targets)
            if isinstance(value, torch.Tensor) and value.dim() == 0:
                value.backward()  # the dtype of the targets may be refused only here
    except Exception as err:
        raise ConfigError(
            key,
            path,
            f"does not fit a {task} task (outputs [batch, {num_outputs}], targets {TARGET_SHAPES[task]}): {err}",
        ) from err
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        raise ConfigError(key, path, "must return the batch's mean loss as one number (reduction='mean')")


def objective_metrics(metric: str | Sequence[str]) -> list[str]:
    """``objective.metric`` as a list: one name, or several for a multi-objective sweep."""
    return [metric] if isinstance(metric, str) else list(metric)


def objective_modes(mode: str | Sequence[str], n_metrics: int) -> list[str]:
    """``objective.mode`` as a list matching the metrics (one mode may serve them all)."""
    modes = [mode] * n_metrics if isinstance(mode, str) else list(mode)
    for m in modes:
        if m not in MODES:
            raise one_of("objective.mode", m, MODES)
    if len(modes) != n_metrics:
        raise ConfigError("objective.mode", modes, f"must give one mode per objective.metric ({n_metrics})")
    return modes


def check_objective(metric: str | Sequence[str], task: Task) -> None:
    """Every objective metric must be one this task logs each epoch."""
    for name in objective_metrics(metric):
        if name not in EPOCH_METRICS[task]:
            raise ConfigError(
                "objective.metric",
                name,
                f"is never produced by {task}; choose from: {', '.join(EPOCH_METRICS[task])}",
            )
