"""Losses by ``_target_``, each task's own loss as config, and the check that a loss fits its task."""

import pytest
import torch
from conftest import compose_config
from torch import nn

from sweepkit.errors import ConfigError
from sweepkit.tasks import build_loss

CPU = torch.device("cpu")


def _loss_cfg(*overrides):
    return compose_config(list(overrides), None).loss


@pytest.mark.parametrize(
    ("task", "num_outputs", "loss_class"),
    [("classification", 10, nn.CrossEntropyLoss), ("regression", 1, nn.MSELoss)],
)
def test_auto_is_the_tasks_own_loss(task, num_outputs, loss_class):
    # loss=auto (the default): cross-entropy for classes, the mean squared error for regression.
    assert type(build_loss(_loss_cfg(), task, num_outputs, CPU)) is loss_class


def test_any_loss_module_by_target_gets_its_keys():
    # A class no shipped config names, set on top of the default: its keys pass through.
    loss = build_loss(_loss_cfg("loss._target_=torch.nn.HuberLoss", "+loss.delta=0.5"), "regression", 1, CPU)
    assert isinstance(loss, nn.HuberLoss) and loss.delta == 0.5


def test_a_loss_function_is_called_with_outputs_targets_and_its_keys():
    loss = build_loss(
        _loss_cfg("loss._target_=torch.nn.functional.cross_entropy", "+loss.label_smoothing=0.2"),
        "classification",
        3,
        CPU,
    )
    outputs, targets = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert loss(outputs, targets) == pytest.approx(
        nn.functional.cross_entropy(outputs, targets, label_smoothing=0.2).item()
    )


def test_shipped_loss_keys_pass_through():
    loss = build_loss(_loss_cfg("loss=cross_entropy", "loss.label_smoothing=0.1"), "classification", 10, CPU)
    assert loss.label_smoothing == 0.1


@pytest.mark.parametrize(
    ("overrides", "task", "message"),
    [
        # class indices cannot be a mean squared error's targets: refused before the first step
        (["loss=mse"], "classification", "loss=torch.nn.MSELoss does not fit a classification task"),
        (
            ["loss=l1", "+loss.reduction=none"],
            "regression",
            "loss=torch.nn.L1Loss must return the batch's mean loss as one number",
        ),
        (["loss._target_=torch.nn.Nope"], "regression", r"loss._target_=torch.nn.Nope cannot be imported"),
        (
            ["loss=smooth_l1", "+loss.bta=0.5"],
            "regression",
            "loss=torch.nn.SmoothL1Loss rejects its settings",
        ),
        (
            ["~loss.for_task.regression"],
            "regression",
            "loss.for_task=['classification'] has no loss for this data's task (regression)",
        ),
    ],
)
def test_a_loss_that_cannot_serve_the_task_is_one_line(overrides, task, message):
    with pytest.raises(
        ConfigError,
        match="^" + message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)").replace("[", r"\["),
    ):
        build_loss(_loss_cfg(*overrides), task, 10 if task == "classification" else 1, CPU)
