"""The training loop. It knows nothing of Hydra, MLflow or Optuna: it talks to a tracker and a
pruning reporter through the two small Protocols below.

The step never syncs with the device: losses are summed on the device and read once per epoch, and
in the epoch at most a few times a second: when the loop checks for divergence (every
``DIVERGENCE_CHECK_S``, whatever the display) or the progress display asks for a value. With fp16 that takes an
optimizer that reads GradScaler's found-inf flag on the device itself (torch's fused ones); with any
other, the scaler reads the flag on the host every step.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from sweepkit import checkpoint
from sweepkit.batching import Batches
from sweepkit.datasets import Task
from sweepkit.devices import DeviceOutOfMemory, Precision, free_memory, out_of_memory_note
from sweepkit.progress import EpochProgress, SilentProgress
from sweepkit.tasks import EPOCH_TIME, GPU_MAX_MEMORY, LOSSES, LR, NOISE_SCALE, SAMPLES_PER_S, TRAIN_LOSS

# How often (seconds) an epoch reads its running loss to stop at a non-finite one: often enough that a
# diverged run stops at once, rarely enough that the read (a device sync) costs nothing measurable.
DIVERGENCE_CHECK_S = 0.5

StopReason = Literal["completed", "early_stopped", "pruned", "diverged", "oom", "interrupted"]


class EpochTracker(Protocol):
    """Receives each epoch's metrics (step = epoch)."""

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...


class NoiseProbe(Protocol):
    """Estimates the gradient noise scale at the current weights, leaving training as it was."""

    def b_simple(
        self, model: nn.Module, loss_fn: nn.Module, precision: Precision, loss_scale: float, epoch_s: float
    ) -> float | None: ...


class PruningReporter(Protocol):
    """Receives the objective after each epoch and says whether the run should stop (pruned)."""

    def should_prune(self, epoch: int, value: float) -> bool: ...


class StopRequested(KeyboardInterrupt):
    """Raised at a safe point (between batches, or after an epoch's bookkeeping) when the run was
    asked to stop, e.g. by a scheduler's preemption warning. Everything up to the last finished epoch
    is saved, logged and reported once; nothing of the interrupted epoch is."""


class NullTracker:
    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pass


class NeverPrune:
    def should_prune(self, epoch: int, value: float) -> bool:
        return False


@dataclass
class Objective:
    """The metric that picks the best epoch and drives early stopping."""

    metric: str
    mode: Literal["max", "min"]
    min_delta: float = 0.0

    def improves(self, value: float, best: float | None) -> bool:
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value > best + self.min_delta if self.mode == "max" else value < best - self.min_delta


@dataclass
class LoopState:
    """Everything about the run's progress that a resumed run must continue from."""

    epoch: int = 0  # epochs completed
    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the last improvement (early stopping)
    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: StopReason = "completed"
    stop_detail: str = ""  # the one line that explains an "oom" stop


class SkippedSteps:
    """Which optimizer steps fp16's GradScaler skipped (their gradients overflowed), so that the
    scheduler skips them too: the schedule counts the steps that changed the weights.

    The skip flag is never waited for. On a CPU it is known at once; on CUDA it is copied to pinned
    host memory behind an event, and read once the device has run that step (the event is polled,
    never synchronized). Until then the scheduler steps; a skip learned late holds it back by one step
    at the next step, so the schedule may run ahead by the few steps the host runs ahead of the device.
    """

    def __init__(self) -> None:
        self.pending: deque[tuple[torch.cuda.Event | None, torch.Tensor]] = deque()
        self.spare: list[torch.Tensor] = []  # pinned buffers whose flag was read: reused, not reallocated
        self.owed = 0  # skips learned that the scheduler has not held back for yet

    def record(self, scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer) -> None:
        """Note whether this step was skipped; between ``scaler.step`` and ``scaler.update`` (which
        forgets the flag)."""
        found = scaler._per_optimizer_states[id(optimizer)]["found_inf_per_device"]
        flag = torch.stack(list(found.values())).sum() if found else torch.zeros(())
        if flag.device.type != "cuda":
            self.pending.append((None, flag))
            return
        host = self.spare.pop() if self.spare else torch.empty((), dtype=flag.dtype, pin_memory=True)
        host.copy_(flag, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.pending.append((event, host))

    def scheduler_may_step(self) -> bool:
        """Whether the scheduler steps for the optimizer step just taken (flags not yet read: yes)."""
        while self.pending and (self.pending[0][0] is None or self.pending[0][0].query()):
            event, flag = self.pending.popleft()
            self.owed += int(flag.item() > 0)  # a host value by now: no sync
            if event is not None:
                self.spare.append(flag)
        if self.owed:
            self.owed -= 1
            return False
        return True


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: Precision,
    grad_clip_norm: float | None = None,
    skips: SkippedSteps | None = None,
) -> torch.Tensor:
    """One optimization step under the precision policy; returns the detached loss (no sync).
    ``skips`` learns whether fp16's scaler skipped the step."""
    with precision.autocast():
        output = model(x)
    loss = loss_fn(output.float(), y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip_norm is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
    scaler.step(optimizer)
    if skips is not None:
        skips.record(scaler, optimizer)
    scaler.update()
    return loss.detach()


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: Batches, loss_fn: nn.Module, precision: Precision, task: Task
) -> dict[str, float]:
    """Mean loss (and accuracy for classification) over ``batches``, summed on the device.
    Raises DeviceOutOfMemory (with its one line) when a batch does not fit."""
    was_training = model.training
    model.eval()
    loss_sum = correct = None
    try:
        for x, y in batches:
            with precision.autocast():
                output = model(x)
            batch_loss = loss_fn(output.float(), y) * len(y)
            loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
            if task == "classification":
                hits = (output.argmax(dim=1) == y).sum()
                correct = hits if correct is None else correct + hits
    except torch.OutOfMemoryError:
        device = next(model.parameters()).device
        raise DeviceOutOfMemory(
            out_of_memory_note(
                device, "evaluation", "data.eval_batch_size", batches.batch_size, precision.name
            )
        ) from None
    finally:
        model.train(was_training)
    n = batches.num_samples
    metrics = {"loss": loss_sum.item() / n}
    if correct is not None:
        metrics["acc"] = correct.item() / n
    return metrics


@dataclass(frozen=True)
class Optimization:
    """How a training step changes the weights: the loss, its precision, the optimizer and its schedule."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    precision: Precision
    loss_fn: nn.Module
    grad_clip_norm: float | None = None


@dataclass(frozen=True)
class EpochData:
    """What an epoch reads: the batches it trains and validates on, and the task they are for."""

    train: Batches
    val: Batches
    task: Task


@dataclass(frozen=True)
class Checkpoints:
    """Where ``last.pt`` and ``best.pt`` go (None: nowhere) and what each carries beside the state."""

    folder: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class TrainingLoop:
    """Epochs of training and validation with checkpoints, early stopping and pruning."""

    def __init__(
        self,
        model: nn.Module,
        optimization: Optimization,
        data: EpochData,
        generators: dict[str, torch.Generator],
        checkpoints: Checkpoints = Checkpoints(),
        compiled: nn.Module | None = None,
        noise_probe: NoiseProbe | None = None,
    ) -> None:
        self.model = model
        self.optimizer, self.scheduler = optimization.optimizer, optimization.scheduler
        self.forward_model = (
            compiled if compiled is not None else model
        )  # torch.compile wraps, state stays on model
        self.precision, self.loss_fn, self.task = optimization.precision, optimization.loss_fn, data.task
        self.scaler = self.precision.grad_scaler()
        self.skips = SkippedSteps() if self.scaler.is_enabled() else None
        self.device = next(model.parameters()).device
        self.train_batches, self.val_batches = data.train, data.val
        self.generators, self.grad_clip_norm = generators, optimization.grad_clip_norm
        self.checkpoint_dir, self.checkpoint_extra = checkpoints.folder, dict(checkpoints.extra)
        self.checkpoints = checkpoint.CheckpointWriter()
        self.state = LoopState()
        self.best_model_state: dict[str, torch.Tensor] | None = None
        self.noise_probe = noise_probe
        self.divergence_check_s = DIVERGENCE_CHECK_S

    # -- one epoch -------------------------------------------------------------------------------
    def train_epoch(
        self, progress: EpochProgress, stop_requested: Callable[[], bool] = lambda: False
    ) -> tuple[float, float]:
        """Train over all batches; returns (mean loss, seconds). A non-finite loss ends the epoch at the
        next divergence check (within ``divergence_check_s``), whatever the progress display."""
        self.forward_model.train()
        loss_sum = torch.zeros((), device=self.device)
        seen = pending = 0
        start = time.perf_counter()
        next_check = start + self.divergence_check_s
        try:
            for x, y in self.train_batches:
                if stop_requested():
                    raise StopRequested("stop requested mid-epoch: the epoch is dropped")
                self.train_batch(x, y, loss_sum)
                seen, pending = seen + len(y), pending + 1
                now = time.perf_counter()
                if (
                    now >= next_check or progress.wants_update()
                ):  # the only in-epoch syncs, a few a second at most
                    mean = loss_sum.item() / seen
                    progress.advance(pending, mean)
                    pending, next_check = 0, now + self.divergence_check_s
                    if not math.isfinite(mean):
                        break
        except torch.OutOfMemoryError:
            note = out_of_memory_note(
                self.device,
                "the training step",
                "data.batch_size",
                self.train_batches.batch_size,
                self.precision.name,
            )
            raise DeviceOutOfMemory(note) from None
        mean = loss_sum.item() / seen
        progress.advance(pending, mean)
        return mean, time.perf_counter() - start

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """One step on one batch, the scheduler's step (unless fp16's scaler skipped the optimizer's)
        and the loss added to ``loss_sum`` on the device: nothing here waits for the device."""
        loss = train_step(
            self.forward_model,
            x,
            y,
            self.loss_fn,
            self.optimizer,
            self.scaler,
            self.precision,
            self.grad_clip_norm,
            self.skips,
        )
        scheduler_may_step = self.skips is None or self.skips.scheduler_may_step()
        if self.scheduler is not None and scheduler_may_step:
            self.scheduler.step()
        loss_sum.add_(loss, alpha=len(y))

    def run_epoch(
        self, progress: EpochProgress, max_epochs: int, stop_requested: Callable[[], bool]
    ) -> dict[str, float]:
        """Train then validate one epoch; returns its metrics."""
        epoch = self.state.epoch + 1
        progress.start_epoch(epoch, max_epochs, len(self.train_batches))
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)  # the peak of this epoch alone
        start = time.perf_counter()
        train_loss, train_seconds = self.train_epoch(progress, stop_requested)
        metrics = {TRAIN_LOSS: train_loss}
        if math.isfinite(train_loss):
            val = evaluate(self.forward_model, self.val_batches, self.loss_fn, self.precision, self.task)
            metrics.update({f"val/{name}": value for name, value in val.items()})
        metrics[LR] = self.optimizer.param_groups[0]["lr"]
        metrics[EPOCH_TIME] = time.perf_counter() - start
        metrics[SAMPLES_PER_S] = self.train_batches.num_samples / max(train_seconds, 1e-9)
        if self.device.type == "cuda":
            metrics[GPU_MAX_MEMORY] = torch.cuda.max_memory_allocated(self.device) / 2**30
        if self.noise_probe is not None and math.isfinite(train_loss):
            # after the clock: epoch_time_s means the same with the probe on or off
            scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
            value = self.noise_probe.b_simple(
                self.model, self.loss_fn, self.precision, scale, metrics[EPOCH_TIME]
            )
            if value is not None:  # None: this epoch was too short for the probe's time budget
                metrics[NOISE_SCALE] = value
        return metrics

    # -- the run ---------------------------------------------------------------------------------
    def fit(
        self,
        max_epochs: int,
        objective: Objective,
        patience: int | None = None,
        tracker: EpochTracker | None = None,
        reporter: PruningReporter | None = None,
        progress: EpochProgress | None = None,
        stop_requested: Callable[[], bool] | None = None,
    ) -> LoopState:
        """Train until ``max_epochs``, early stopping, pruning, divergence or a batch that does not fit
        the device (``oom``: the epoch is dropped, the cache emptied); returns the final state.

        ``stop_requested`` is polled between batches and after each epoch's bookkeeping (log, best
        checkpoint, pruning report, last checkpoint), which therefore happens whole or not at all.
        The checkpoints are written in the background and are all on disk when this returns or raises.
        """
        tracker, reporter, progress = (
            tracker or NullTracker(),
            reporter or NeverPrune(),
            progress or SilentProgress(),
        )
        stop_requested = stop_requested or (lambda: False)
        state = self.state
        try:
            while state.epoch < max_epochs:
                oom = None
                try:
                    metrics = self.run_epoch(progress, max_epochs, stop_requested)
                except DeviceOutOfMemory as err:
                    oom = str(err)
                if (
                    oom is not None
                ):  # out of the except block: its traceback no longer holds the batch's tensors
                    self.optimizer.zero_grad(set_to_none=True)
                    free_memory()
                    state.stop_reason, state.stop_detail = "oom", oom
                    break
                state.epoch += 1
                state.history.append(metrics)
                tracker.log_epoch(state.epoch, metrics)
                progress.end_epoch(state.epoch, metrics)
                if not all(math.isfinite(metrics.get(name, math.nan)) for name in LOSSES):
                    state.stop_reason = "diverged"
                    break
                value = metrics[objective.metric]
                self._track_best(objective, value)
                pruned = reporter.should_prune(state.epoch, value)
                self.save("last.pt")
                if pruned:
                    state.stop_reason = "pruned"
                    break
                if patience is not None and state.bad_epochs >= patience:
                    state.stop_reason = "early_stopped"
                    break
                if stop_requested():
                    raise StopRequested(f"stop requested after epoch {state.epoch}")
        finally:
            progress.close()
            self.checkpoints.wait()
        return state

    def _track_best(self, objective: Objective, value: float) -> None:
        state = self.state
        if objective.improves(value, state.best_value):
            state.best_value, state.best_epoch, state.bad_epochs = value, state.epoch, 0
            self.best_model_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.save("best.pt")
        else:
            state.bad_epochs += 1

    def restore_best_weights(self) -> None:
        """Load the best epoch's weights into the model (for the final test)."""
        if self.best_model_state is not None:
            self.model.load_state_dict(self.best_model_state)

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """All a resumed run needs, in types ``torch.load(weights_only=True)`` accepts."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "loop": asdict(self.state),
            "rng": checkpoint.capture_rng(self.generators, self.device),
            "device": str(self.device),
            **self.checkpoint_extra,
        }

    def save(self, name: str) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        return self.checkpoints.save(self.state_dict(), self.checkpoint_dir / name)

    def load_state_dict(
        self, state: Mapping[str, Any], best_model: Mapping[str, torch.Tensor] | None
    ) -> list[str]:
        """Continue from a checkpoint written by :meth:`save` (and the best weights, if known); returns
        the random states it could not restore (a checkpoint from another kind of device)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.state = LoopState(**state["loop"])
        self.state.stop_reason, self.state.stop_detail = "completed", ""
        not_restored = checkpoint.restore_rng(state["rng"], self.generators, self.device)
        self.best_model_state = (
            {k: v.to(self.device) for k, v in best_model.items()} if best_model is not None else None
        )
        return not_restored
