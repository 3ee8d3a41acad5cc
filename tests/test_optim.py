"""Optimizers and per-step schedules by ``_target_``, with linear warm-up and fused selection."""

import pytest
import torch
from conftest import compose_config, shipped_options

from sweepkit.errors import ConfigError
from sweepkit.optim import build_optimizer, build_scheduler, fused_setting


def _config(*overrides):
    return compose_config(["trainer=debug", "tracking=none", *overrides], None)


def _sgd(lr=1.0):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def _lrs(scheduler, optimizer, steps):
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def _schedule(*overrides, steps_per_epoch=10, max_epochs=3, lr=1.0):
    optimizer = _sgd(lr)
    scheduler = build_scheduler(optimizer, _config(*overrides).scheduler, steps_per_epoch, max_epochs, lr)
    return scheduler, optimizer


# -- schedules ---------------------------------------------------------------------------------------


def test_warmup_rises_linearly_then_hands_over_to_cosine():
    scheduler, optimizer = _schedule("scheduler=cosine", "scheduler.warmup_epochs=1")
    lrs = _lrs(scheduler, optimizer, 30)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[:10] == sorted(lrs[:10]) and lrs[10] == pytest.approx(1.0)
    assert lrs[10:] == sorted(lrs[10:], reverse=True) and lrs[-1] < 0.05


def test_cosine_decays_to_its_share_of_the_effective_lr():
    # eta_min is stated in unit lr: a share of lr_effective, whatever the batch size made that.
    scheduler, optimizer = _schedule("scheduler=cosine", "scheduler.eta_min=0.1", lr=0.5)
    lrs = _lrs(scheduler, optimizer, 31)
    assert lrs[-1] == pytest.approx(0.05)


def test_constant_lr_without_warmup_needs_no_scheduler():
    # Nothing to step per batch: the loop skips the scheduler call entirely.
    scheduler, _ = _schedule("scheduler=none")
    assert scheduler is None


def test_warmup_then_constant():
    scheduler, optimizer = _schedule(
        "scheduler=none", "scheduler.warmup_epochs=1", "scheduler.warmup_start_factor=0.5", steps_per_epoch=4
    )
    lrs = _lrs(scheduler, optimizer, 12)
    assert lrs[0] == pytest.approx(0.5) and lrs[4:] == [1.0] * 8


def test_step_schedule_decays_every_step_size_epochs():
    # step_size is in unit epochs: one epoch of 4 batches is 4 optimizer steps.
    scheduler, optimizer = _schedule("scheduler=step", "scheduler.step_size=1", steps_per_epoch=4)
    lrs = _lrs(scheduler, optimizer, 12)
    assert lrs[0] == lrs[3] == 1.0 and lrs[4] == 0.5 and lrs[8] == 0.25


def test_onecycle_peaks_at_the_effective_lr():
    scheduler, optimizer = _schedule("scheduler=onecycle", steps_per_epoch=10, max_epochs=4)
    lrs = _lrs(scheduler, optimizer, 40)
    assert lrs[0] == pytest.approx(1.0 / 25) and max(lrs) == pytest.approx(1.0, rel=1e-3)
    assert lrs.index(max(lrs)) in (11, 12) and lrs[-1] < 1e-3


def test_any_torch_scheduler_by_target_is_stepped_per_optimizer_step():
    # A class no shipped config names, with its own keyword: gamma applies per optimizer step.
    scheduler, optimizer = _schedule(
        "scheduler._target_=torch.optim.lr_scheduler.ExponentialLR", "+scheduler.gamma=0.5"
    )
    assert _lrs(scheduler, optimizer, 3) == [1.0, 0.5, 0.25]


def test_warmup_is_composed_in_front_of_any_target():
    scheduler, optimizer = _schedule(
        "scheduler._target_=torch.optim.lr_scheduler.ExponentialLR",
        "+scheduler.gamma=0.5",
        "scheduler.warmup_epochs=1",
        steps_per_epoch=4,
    )
    lrs = _lrs(scheduler, optimizer, 7)
    assert lrs[0] == pytest.approx(0.1) and lrs[:4] == sorted(lrs[:4])
    assert lrs[4:] == pytest.approx([1.0, 0.5, 0.25])


def test_units_convert_lists_of_epochs_to_steps():
    # MultiStepLR's milestones stated in epochs fall on the first step of those epochs.
    scheduler, optimizer = _schedule(
        "scheduler._target_=torch.optim.lr_scheduler.MultiStepLR",
        "+scheduler.milestones=[1,2]",
        "+scheduler.gamma=0.1",
        "+scheduler.units.milestones=epochs",
        steps_per_epoch=4,
    )
    lrs = _lrs(scheduler, optimizer, 12)
    assert (
        lrs[:4] == [1.0] * 4 and lrs[4:8] == pytest.approx([0.1] * 4) and lrs[8:] == pytest.approx([0.01] * 4)
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["scheduler=step", "+scheduler.units.gama=epochs"],
            "scheduler.units.gama=epochs names no setting of the scheduler; its settings: step_size, gamma",
        ),
        (
            ["scheduler=step", "scheduler.units.step_size=weeks"],
            "scheduler.units.step_size=weeks is not one of: epochs, run, lr",
        ),
        (
            ["scheduler=step", "scheduler.step_size=often"],
            "scheduler.step_size=often must be a number (or a list of numbers) in epochs",
        ),
        (
            ["scheduler._target_=torch.optim.lr_scheduler.Nope"],
            "scheduler._target_=torch.optim.lr_scheduler.Nope cannot be imported",
        ),
        (["scheduler=step", "+scheduler.gama=0.5"], "scheduler=steplr rejects its settings"),
        (
            ["scheduler=none", "scheduler.warmup_epochs=3"],
            r"scheduler.warmup_epochs=3 must be in [0, trainer.max_epochs=3)",
        ),
    ],
)
def test_bad_scheduler_settings_are_one_line_naming_the_key(overrides, message):
    with pytest.raises(
        ConfigError,
        match="^" + message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)").replace("[", r"\["),
    ):
        _schedule(*overrides)


def test_a_scheduler_that_needs_a_metric_per_step_is_refused():
    # ReduceLROnPlateau.step(metrics) cannot be stepped per optimizer step without one.
    with pytest.raises(
        ConfigError,
        match=r"^scheduler\._target_=torch\.optim\.lr_scheduler\.ReduceLROnPlateau needs metrics at each step\(\)",
    ):
        _schedule("scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau")


# -- optimizers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", shipped_options("optimizer"))
def test_shipped_optimizers_take_the_effective_lr(option):
    optimizer = build_optimizer(
        [torch.zeros(1, requires_grad=True)], _config(f"optimizer={option}").optimizer, lr=0.25
    )
    assert optimizer.param_groups[0]["lr"] == 0.25


def test_any_torch_optimizer_by_target_gets_the_other_keys():
    # NAdam in place of adam.yaml's Adam: betas and eps pass through, as a tuple where torch wants one.
    cfg = _config("optimizer._target_=torch.optim.NAdam", "optimizer.betas=[0.8,0.9]")
    optimizer = build_optimizer([torch.zeros(1, requires_grad=True)], cfg.optimizer, lr=0.1)
    assert isinstance(optimizer, torch.optim.NAdam) and optimizer.defaults["betas"] == (0.8, 0.9)
    assert cfg.optimizer.name == "nadam"


def sgd_factory(params, lr, beta=0.5):
    """An own optimizer as a function: any callable taking params and lr."""
    return torch.optim.SGD(params, lr=lr, momentum=beta)


def not_an_optimizer(params, lr):
    return list(params)


def test_an_own_optimizer_function_is_called_with_params_lr_and_its_keys():
    cfg = {
        "_target_": "test_optim.sgd_factory",
        "name": "mine",
        "lr": 9.0,
        "auto_rule": "linear",
        "beta": 0.7,
    }
    optimizer = build_optimizer([torch.zeros(1, requires_grad=True)], cfg, lr=0.1)
    assert optimizer.defaults["momentum"] == 0.7 and optimizer.defaults["lr"] == 0.1


def test_a_target_that_returns_no_optimizer_is_refused():
    cfg = {"_target_": "test_optim.not_an_optimizer", "name": "mine", "lr": 0.1, "auto_rule": None}
    with pytest.raises(
        ConfigError,
        match=r"^optimizer\._target_=test_optim\.not_an_optimizer returned a list, not a torch\.optim\.Optimizer$",
    ):
        build_optimizer([torch.zeros(1, requires_grad=True)], cfg, 0.1)


def test_unknown_optimizer_target_is_one_line():
    with pytest.raises(ConfigError, match=r"^optimizer\._target_=torch\.optim\.Adamx cannot be imported"):
        build_optimizer([], _config("optimizer._target_=torch.optim.Adamx").optimizer, 0.1)


def test_invalid_optimizer_setting_names_the_optimizer():
    cfg = _config("optimizer=sgd", "optimizer.momentum=0.0")
    with pytest.raises(ConfigError, match="^optimizer=sgd rejects its settings"):
        build_optimizer([torch.zeros(1, requires_grad=True)], cfg.optimizer, 0.1)


# -- fused selection (issue 17): decided from the class and the device type ---------------------------


@pytest.mark.parametrize(
    "target", [torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.Adagrad]
)
def test_fused_on_cuda_where_the_optimizer_takes_it(target):
    assert fused_setting(target, "cuda", {}) == {"fused": True}


@pytest.mark.parametrize("target", [torch.optim.Adam, torch.optim.SGD])
def test_never_fused_on_the_cpu_by_default(target):
    assert fused_setting(target, "cpu", {}) == {}


@pytest.mark.parametrize("target", [torch.optim.RMSprop, torch.optim.NAdam, sgd_factory])
def test_not_fused_where_the_optimizer_has_no_fused_kernel(target):
    assert fused_setting(target, "cuda", {}) == {}


@pytest.mark.parametrize("chosen", [{"fused": False}, {"foreach": True}, {"differentiable": True}])
def test_an_implementation_the_config_chose_is_left_alone(chosen):
    assert fused_setting(torch.optim.Adam, "cuda", chosen) == {}


def test_a_cpu_run_is_unfused_unless_the_config_says_so():
    params = [torch.zeros(1, requires_grad=True)]
    assert not build_optimizer(params, _config().optimizer, 0.1).defaults["fused"]
    assert build_optimizer(params, _config("+optimizer.fused=true").optimizer, 0.1).defaults["fused"] is True


def constant_lambda(optimizer):
    """An own scheduler as a function returning a torch scheduler."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)


def test_an_own_scheduler_function_is_called_with_the_optimizer():
    scheduler, optimizer = _schedule("scheduler._target_=test_optim.constant_lambda")
    assert _lrs(scheduler, optimizer, 2) == [0.5, 0.5]


def stepper_without_state(optimizer):
    return type("Stepper", (), {"step": lambda self: None})()


def test_a_scheduler_target_without_state_is_refused():
    # Checkpoints save the scheduler's state_dict(): an object without one cannot be resumed.
    with pytest.raises(
        ConfigError,
        match=r"^scheduler\._target_=test_optim\.stepper_without_state returned a Stepper, which has no state_dict\(\), load_state_dict\(\)$",
    ):
        _schedule("scheduler._target_=test_optim.stepper_without_state")
