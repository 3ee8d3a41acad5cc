"""Optimizers and per-step schedules with linear warm-up."""

import pytest
import torch

from sweepkit.errors import ConfigError
from sweepkit.optim import build_optimizer, build_scheduler


def _optimizer(lr=1.0):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def _lrs(scheduler, optimizer, steps):
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_warmup_rises_linearly_then_hands_over_to_cosine():
    optimizer = _optimizer()
    cfg = {"name": "cosine", "warmup_epochs": 1, "warmup_start_factor": 0.1, "min_lr_factor": 0.0}
    lrs = _lrs(build_scheduler(optimizer, cfg, steps_per_epoch=10, max_epochs=3, lr=1.0), optimizer, 30)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[:10] == sorted(lrs[:10]) and lrs[10] == pytest.approx(1.0)
    assert lrs[10:] == sorted(lrs[10:], reverse=True) and lrs[-1] < 0.05


def test_constant_lr_without_warmup_needs_no_scheduler():
    # Nothing to step per batch: the loop skips the scheduler call entirely.
    cfg = {"name": "none", "warmup_epochs": 0, "warmup_start_factor": 0.1}
    assert build_scheduler(_optimizer(), cfg, 10, 3, 1.0) is None


def test_warmup_then_constant():
    optimizer = _optimizer()
    cfg = {"name": "none", "warmup_epochs": 1, "warmup_start_factor": 0.5}
    lrs = _lrs(build_scheduler(optimizer, cfg, 4, 3, 1.0), optimizer, 12)
    assert lrs[0] == pytest.approx(0.5) and lrs[4:] == [1.0] * 8


def test_step_schedule_decays_every_step_epochs():
    optimizer = _optimizer()
    cfg = {"name": "step", "warmup_epochs": 0, "warmup_start_factor": 0.1, "step_epochs": 1, "gamma": 0.5}
    lrs = _lrs(build_scheduler(optimizer, cfg, 4, 3, 1.0), optimizer, 12)
    assert lrs[0] == lrs[3] == 1.0 and lrs[4] == 0.5 and lrs[8] == 0.25


def test_onecycle_peaks_at_the_effective_lr_after_warmup():
    optimizer = _optimizer()
    cfg = {"name": "onecycle", "warmup_epochs": 1, "warmup_start_factor": 0.04, "pct_start": 0.3, "final_div_factor": 1000.0}
    lrs = _lrs(build_scheduler(optimizer, cfg, 10, 4, 1.0), optimizer, 40)
    assert lrs[0] == pytest.approx(0.04) and max(lrs) == pytest.approx(1.0, rel=1e-3)
    assert lrs.index(max(lrs)) in (9, 10) and lrs[-1] < 1e-3


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_optimizers_take_the_effective_lr(name):
    optimizer = build_optimizer([torch.zeros(1, requires_grad=True)], {"name": name, "lr": 9.0, "weight_decay": 0.0}, lr=0.25)
    assert optimizer.param_groups[0]["lr"] == 0.25


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ConfigError, match="optimizer=adamx is not one of: sgd, adam, adamw, rmsprop, adagrad"):
        build_optimizer([], {"name": "adamx", "lr": 0.1}, 0.1)


def test_invalid_optimizer_setting_names_the_optimizer():
    with pytest.raises(ConfigError, match="optimizer=sgd rejects its settings"):
        build_optimizer([torch.zeros(1, requires_grad=True)], {"name": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": True}, 0.1)


def test_warmup_longer_than_the_run_is_rejected():
    with pytest.raises(ConfigError, match=r"scheduler.warmup_epochs=5 must be in \[0, trainer.max_epochs=5\)"):
        build_scheduler(_optimizer(), {"name": "none", "warmup_epochs": 5, "warmup_start_factor": 0.1}, 10, 5, 1.0)
