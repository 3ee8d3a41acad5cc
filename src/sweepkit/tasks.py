"""What a task computes: its default loss, the metrics it produces, and which objective is valid."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from sweepkit.datasets import Task
from sweepkit.errors import ConfigError, one_of

LOSSES: dict[str, type[nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
    "l1": nn.L1Loss,
    "smooth_l1": nn.SmoothL1Loss,
}
DEFAULT_LOSS: dict[Task, str] = {"classification": "cross_entropy", "regression": "mse"}
LOSSES_FOR_TASK: dict[Task, tuple[str, ...]] = {
    "classification": ("cross_entropy",),
    "regression": ("mse", "l1", "smooth_l1"),
}
EPOCH_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("train/loss", "val/loss", "val/acc", "lr", "epoch_time_s", "train/samples_per_s"),
    "regression": ("train/loss", "val/loss", "lr", "epoch_time_s", "train/samples_per_s"),
}
NOISE_SCALE = "grad_noise_scale"  # per-epoch metric of trainer.noise_scale=true (sweepkit.noise_scale)
MODES = ("max", "min")


def build_loss(name: str, task: Task) -> nn.Module:
    """The loss named by ``loss`` (``auto``: cross-entropy for classes, MSE for regression)."""
    name = DEFAULT_LOSS[task] if name == "auto" else name
    if name not in LOSSES_FOR_TASK[task]:
        raise one_of("loss", name, ["auto", *LOSSES_FOR_TASK[task]])
    return LOSSES[name]()


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
            raise ConfigError("objective.metric", name, f"is never produced by {task}; choose from: {', '.join(EPOCH_METRICS[task])}")
