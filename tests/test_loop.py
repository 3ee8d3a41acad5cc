"""The loop: no device sync per step, divergence stops at once, the reporter can prune, the scheduler
skips the steps fp16's scaler skipped, a batch that does not fit the device stops the run."""

import math
import os
import sys

import pytest
import torch
from torch import nn

from sweepkit.batching import DeviceBatches
from sweepkit.datasets import TensorSplit
from sweepkit.devices import Precision
from sweepkit.loop import EpochData, NeverPrune, Objective, Optimization, TrainingLoop
from sweepkit.progress import LogProgress, SilentProgress
from sweepkit.training import build


class RecordingReporter:
    """A pruning reporter that prunes at a given epoch and records what it was told."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.prune_at, self.seen = prune_at, []

    def should_prune(self, epoch: int, value: float) -> bool:
        self.seen.append((epoch, value))
        return epoch == self.prune_at


class RecordingTracker:
    def __init__(self) -> None:
        self.epochs = []

    def log_epoch(self, epoch, metrics):
        self.epochs.append((epoch, dict(metrics)))


def test_no_host_sync_per_training_step(make_cfg, monkeypatch):
    # Reading a loss (.item()) syncs with the device; the loop may do it once an epoch and once per
    # divergence check (every divergence_check_s), not per batch.
    # (Optimizers read their CPU step counters with .item(); only the loop's own reads count here.)
    loop = build(make_cfg("data.batch_size=16"), output_dir=None).loop
    assert len(loop.train_batches) > 50
    calls = []
    real_item = torch.Tensor.item

    def counting_item(tensor):
        if sys._getframe(1).f_code.co_filename.endswith(os.path.join("sweepkit", "loop.py")):
            calls.append(tensor.device)
        return real_item(tensor)

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    _, seconds = loop.train_epoch(SilentProgress())
    assert len(calls) <= 1 + seconds / loop.divergence_check_s < len(loop.train_batches)


def test_reporter_sees_each_epoch_objective_and_can_prune(make_cfg):
    setup = build(make_cfg("trainer.max_epochs=5"), output_dir=None)
    reporter, tracker = RecordingReporter(prune_at=2), RecordingTracker()
    state = setup.loop.fit(5, setup.objective, tracker=tracker, reporter=reporter)
    assert state.stop_reason == "pruned" and state.epoch == 2
    assert [e for e, _ in reporter.seen] == [1, 2]
    assert reporter.seen[1][1] == tracker.epochs[1][1]["val/acc"]


def test_divergence_stops_the_run_at_once(make_cfg):
    # A huge lr makes the loss non-finite within the first epoch; the run stops there.
    setup = build(
        make_cfg(
            "optimizer=sgd",
            "optimizer.lr=1e12",
            "optimizer.nesterov=false",
            "optimizer.momentum=0",
            "trainer.max_epochs=5",
        ),
        output_dir=None,
    )
    tracker = RecordingTracker()
    state = setup.loop.fit(5, setup.objective, tracker=tracker, reporter=NeverPrune())
    assert state.stop_reason == "diverged" and state.epoch == 1
    assert not math.isfinite(tracker.epochs[0][1]["train/loss"])


def test_epoch_metrics_have_the_design_names(make_cfg):
    setup = build(make_cfg(), output_dir=None)
    tracker = RecordingTracker()
    setup.loop.fit(1, setup.objective, tracker=tracker)
    assert set(tracker.epochs[0][1]) == {
        "train/loss",
        "val/loss",
        "val/acc",
        "lr",
        "epoch_time_s",
        "train/samples_per_s",
    }


def _tiny_loop(
    model: nn.Module, precision: Precision, optimizer=None, scheduler_factory=None, batch_size: int = 16
) -> TrainingLoop:
    torch.manual_seed(0)
    split = TensorSplit(torch.randn(128, 8), torch.randint(0, 3, (128,)))
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = scheduler_factory(optimizer) if scheduler_factory else None
    train = DeviceBatches(split, batch_size, torch.device("cpu"), torch.Generator().manual_seed(0))
    val = DeviceBatches(split, 64, torch.device("cpu"))
    return TrainingLoop(
        model,
        Optimization(optimizer, scheduler, precision, nn.CrossEntropyLoss()),
        EpochData(train, val, "classification"),
        {},
    )


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
def test_scheduler_does_not_step_when_the_scaler_skipped_the_optimizer_step(fused):
    # fp16 autocast with a real GradScaler (on the CPU, where torch runs it): a scale of 2**24 makes
    # the first steps' fp16 gradients overflow, so the scaler skips them and halves the scale; the
    # scheduler counts only the steps that changed the weights. Fused optimizers skip inside their
    # kernel (the scaler never reads the flag on the host); unfused ones are not called at all.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, fused=fused)
    applied = []
    optimizer.register_step_post_hook(lambda *_: applied.append(1))
    loop = _tiny_loop(
        model,
        Precision("16", "cpu"),
        optimizer,
        lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0),
    )
    loop.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)
    loss_sum = torch.zeros(())
    for x, y in loop.train_batches:
        loop.train_batch(x, y, loss_sum)
    real_steps = int(optimizer.state[model[0].weight]["step"]) if fused else len(applied)
    assert 0 < real_steps < len(loop.train_batches), "some steps were skipped, some were not"
    assert loop.scheduler.last_epoch == real_steps


def test_without_fp16_every_step_steps_the_scheduler():
    # fp32 and bf16 have no scaler: nothing is skipped, nothing is tracked.
    loop = _tiny_loop(
        nn.Linear(8, 3),
        Precision("bf16", "cpu"),
        scheduler_factory=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
    )
    assert loop.skips is None
    loop.train_epoch(SilentProgress())
    assert loop.scheduler.last_epoch == len(loop.train_batches)


class OutOfMemoryAt(nn.Module):
    """A linear model whose forward raises torch's own out-of-memory error on batches of ``at`` or more."""

    def __init__(self, at: int, in_eval: bool = False) -> None:
        super().__init__()
        self.linear, self.at, self.in_eval = nn.Linear(8, 3), at, in_eval

    def forward(self, x):
        if len(x) >= self.at and (self.training or self.in_eval):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.linear(x)


def test_out_of_memory_in_a_training_step_stops_the_run_with_reason_oom():
    # The epoch that ran out of memory is dropped (nothing logged, nothing counted), the gradients
    # are freed, and the run stops with the one line that says what to lower.
    loop = _tiny_loop(OutOfMemoryAt(at=32), Precision("32", "cpu"), batch_size=32)
    tracker = RecordingTracker()
    state = loop.fit(3, Objective("val/acc", "max"), tracker=tracker)
    assert state.stop_reason == "oom" and state.epoch == 0 and tracker.epochs == []
    assert (
        state.stop_detail
        == "cpu ran out of memory in the training step at data.batch_size=32: lower data.batch_size or use trainer.precision=bf16"
    )
    assert all(p.grad is None for p in loop.model.parameters())


def test_out_of_memory_in_evaluation_names_the_eval_batch_size():
    # Validation batches are data.eval_batch_size large: that is the key to lower.
    loop = _tiny_loop(OutOfMemoryAt(at=64, in_eval=True), Precision("32", "cpu"), batch_size=16)
    state = loop.fit(2, Objective("val/acc", "max"))
    assert (
        state.stop_reason == "oom"
        and "in evaluation at data.eval_batch_size=64: lower data.eval_batch_size" in state.stop_detail
    )
    assert loop.model.training, "the model is back in training mode"


class NonFiniteAfter(nn.Module):
    """A loss that turns NaN from the ``after``-th call on, counting the steps it saw."""

    def __init__(self, loss_fn: nn.Module, after: int) -> None:
        super().__init__()
        self.loss_fn, self.after, self.calls = loss_fn, after, 0

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = self.loss_fn(output, target)
        return loss * math.nan if self.calls >= self.after else loss


@pytest.mark.parametrize("progress", [SilentProgress(), LogProgress(every_s=3600)])
def test_a_non_finite_loss_stops_the_epoch_whatever_the_display(make_cfg, progress):
    # Divergence is the loop's own check, not the display's: with no display (or one that asks for a value
    # once an hour) the epoch still stops at the first check after the loss turned NaN.
    loop = build(make_cfg("data.batch_size=16"), output_dir=None).loop
    loop.divergence_check_s = 0.0  # a check after every step, so the test does not hang on the clock
    loop.loss_fn = NonFiniteAfter(loop.loss_fn, after=3)
    assert len(loop.train_batches) > 50
    mean, _ = loop.train_epoch(progress)
    assert not math.isfinite(mean)
    assert loop.loss_fn.calls == 3, "steps trained after the loss turned non-finite"
