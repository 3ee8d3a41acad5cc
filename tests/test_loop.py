"""The loop: no device sync per step, divergence stops at once, the reporter can prune."""

import math
import os
import sys

import torch

from sweepkit.loop import NeverPrune
from sweepkit.progress import SilentProgress
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
    # Reading a loss (.item()) syncs with the device; the loop may do it once an epoch, not per batch.
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
    loop.train_epoch(SilentProgress())
    assert len(calls) == 1


def test_reporter_sees_each_epoch_objective_and_can_prune(make_cfg):
    setup = build(make_cfg("trainer.max_epochs=5"), output_dir=None)
    reporter, tracker = RecordingReporter(prune_at=2), RecordingTracker()
    state = setup.loop.fit(5, setup.objective, tracker=tracker, reporter=reporter)
    assert state.stop_reason == "pruned" and state.epoch == 2
    assert [e for e, _ in reporter.seen] == [1, 2]
    assert reporter.seen[1][1] == tracker.epochs[1][1]["val/acc"]


def test_divergence_stops_the_run_at_once(make_cfg):
    # A huge lr makes the loss non-finite within the first epoch; the run stops there.
    setup = build(make_cfg("optimizer=sgd", "optimizer.lr=1e12", "optimizer.nesterov=false", "optimizer.momentum=0", "trainer.max_epochs=5"), output_dir=None)
    tracker = RecordingTracker()
    state = setup.loop.fit(5, setup.objective, tracker=tracker, reporter=NeverPrune())
    assert state.stop_reason == "diverged" and state.epoch == 1
    assert not math.isfinite(tracker.epochs[0][1]["train/loss"])


def test_epoch_metrics_have_the_design_names(make_cfg):
    setup = build(make_cfg(), output_dir=None)
    tracker = RecordingTracker()
    setup.loop.fit(1, setup.objective, tracker=tracker)
    assert set(tracker.epochs[0][1]) == {"train/loss", "val/loss", "val/acc", "lr", "epoch_time_s", "train/samples_per_s"}
