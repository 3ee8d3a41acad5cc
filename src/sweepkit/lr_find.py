"""``sweepkit-lr-find [overrides]``: the learning-rate range test (Smith, 2017), as fastai's and
Lightning's ``lr_find``.

From the run's initial weights, one optimizer step per batch while the lr grows exponentially from
``lr_find.min_lr`` to ``lr_find.max_lr``; the test stops early once the smoothed loss diverges. Two
lrs are read off the smoothed loss curve, leaving out its first tenth and its last five points:

- ``steepest``: where the smoothed loss falls fastest per unit of log lr, before its lowest point;
- ``valley``: a tenth of the lr at the valley's bottom, the lowest smoothed loss (fastai's ``minimum``).

Both are given at the tested batch size and as ``optimizer.lr`` at ``lr_scaling.base_batch_size``.
The trained weights are thrown away: only the plot and the tracked run are written.

    sweepkit-lr-find                                    # the default model, data and optimizer
    sweepkit-lr-find optimizer=sgd data.batch_size=256 lr_find.max_lr=1
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sweepkit import lr_scaling
from sweepkit.batching import Batches
from sweepkit.console import reports_errors, run_console_script
from sweepkit.errors import ConfigError, RunFailed, integer, number
from sweepkit.loop import TrainingLoop, train_step
from sweepkit.optim import build_optimizer
from sweepkit.plots import lr_find_curve
from sweepkit.tracking import RunTracker, build_tracker
from sweepkit.train import CONFIG_DIR
from sweepkit.training import Setup, build, group_choices, launch_dir, record_failure, run_params

log = logging.getLogger("sweepkit")
MIN_STEPS = 10  # fewer leaves no points between the skipped start and end of the curve
SKIP_END = 5  # the last points climb into divergence, where no lr is worth suggesting (fastai skips 5 too)
MIN_POINTS = 3  # fewer is no curve to read a slope or a lowest point from
StopReason = Literal["completed", "diverged"]


class RangeTestFailed(RunFailed):
    """The loss diverged too early to leave a curve to suggest an lr from."""


@dataclass(frozen=True)
class RangeTestSettings:
    """The ``lr_find`` block of the config, checked on construction."""

    min_lr: float
    max_lr: float
    num_steps: int
    smoothing: float
    diverge_factor: float

    def __post_init__(self) -> None:
        for key in ("min_lr", "max_lr"):
            number(f"lr_find.{key}", getattr(self, key), above=0)
        if not self.min_lr < self.max_lr:
            raise ConfigError("lr_find.min_lr", self.min_lr, f"must be < lr_find.max_lr={self.max_lr}")
        integer("lr_find.num_steps", self.num_steps, at_least=MIN_STEPS)
        if not 0.0 <= number("lr_find.smoothing", self.smoothing) < 1.0:
            raise ConfigError("lr_find.smoothing", self.smoothing, "must be in [0, 1) (0: no smoothing)")
        number("lr_find.diverge_factor", self.diverge_factor, above=1)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> RangeTestSettings:
        """The settings of ``cfg.lr_find`` (a config composed from ``lr_find.yaml``)."""
        if "lr_find" not in cfg:
            raise ConfigError(
                "lr_find", "(missing)", "must be set: compose the lr_find config, which adds it to train"
            )
        node = cfg.lr_find
        return cls(node.min_lr, node.max_lr, node.num_steps, node.smoothing, node.diverge_factor)

    def lr_at(self, step: int) -> float:
        """The lr of batch ``step`` (from 0): min_lr first, max_lr last, the same ratio between neighbours."""
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.num_steps - 1))


class SmoothedLoss:
    """An exponential moving average of the loss, debiased as Adam's moments are, so that the first
    values are not pulled towards the zero it starts from."""

    def __init__(self, beta: float) -> None:
        self.beta, self.mean, self.count = beta, 0.0, 0

    def update(self, loss: float) -> float:
        self.count += 1
        self.mean = self.beta * self.mean + (1.0 - self.beta) * loss
        return self.mean / (1.0 - self.beta**self.count)


@dataclass
class Curve:
    """What the range test measured, one entry per batch trained."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stop_reason: StopReason = "completed"

    def append(self, lr: float, loss: float, smoothed: float) -> None:
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(smoothed)


def repeat_epochs(batches: Batches) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The training batches epoch after epoch, each epoch shuffled afresh (``itertools.cycle`` would
    replay the first epoch's order and hold all its batches in memory)."""
    while True:
        yield from batches


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Overwrite every param group's lr: in a range test the schedule, not a scheduler, sets it."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def diverged(smoothed: float, best: float, factor: float) -> bool:
    """Whether the smoothed loss is non-finite or above ``factor`` times the best one so far."""
    return not math.isfinite(smoothed) or smoothed > factor * best


def unscheduled(setup: Setup, cfg: DictConfig) -> TrainingLoop:
    """The run's loop with a fresh optimizer and no scheduler: building the configured scheduler may
    already have changed the optimizer (OneCycleLR sets SGD's momentum and Adam's beta1 to its
    cycle's start), and only the range test may set the lr."""
    loop = setup.loop
    loop.optimizer = build_optimizer(loop.model.parameters(), cfg.optimizer, setup.lr_effective)
    loop.scheduler = None
    return loop


def range_test(loop: TrainingLoop, settings: RangeTestSettings) -> Curve:
    """Train ``loop``'s model one batch per lr of the schedule, until the last lr or divergence.

    The model, optimizer and scaler of ``loop`` are trained in place, under the loop's precision and
    gradient clipping; throw them away afterwards. The loop's scheduler, if any, is never stepped.
    """
    curve, smoother, best = Curve(), SmoothedLoss(settings.smoothing), math.inf
    loop.forward_model.train()
    batches = repeat_epochs(loop.train_batches)
    for step in range(settings.num_steps):
        x, y = next(batches)
        lr = settings.lr_at(step)
        set_lr(loop.optimizer, lr)
        loss = train_step(
            loop.forward_model,
            x,
            y,
            loop.loss_fn,
            loop.optimizer,
            loop.scaler,
            loop.precision,
            loop.grad_clip_norm,
        )
        loss_value = loss.item()  # a sync per step, unlike training: the stop rule needs every value
        smoothed = smoother.update(loss_value)
        curve.append(lr, loss_value, smoothed)
        if diverged(smoothed, best, settings.diverge_factor):
            curve.stop_reason = "diverged"
            break
        best = min(best, smoothed)
    return curve


# -- suggestions -------------------------------------------------------------------------------------


def steepest(lrs: list[float], smoothed: list[float]) -> int:
    """Index of the steepest descent: the most negative d(smoothed loss) / d(log lr), by central
    differences, before the lowest smoothed loss. A fall after the lowest point is a recovery from a
    spike on the way to divergence, not an lr to train at."""
    slopes = np.gradient(np.asarray(smoothed, dtype=float), np.log(np.asarray(lrs, dtype=float)))
    lowest = int(np.argmin(smoothed))
    return int(np.argmin(slopes[: max(lowest, 1)]))


def valley(lrs: list[float], smoothed: list[float]) -> float:
    """A tenth of the lr at the valley's bottom (the lowest smoothed loss): Smith's rule of thumb,
    fastai's ``minimum``. The bottom is already close to divergence; an order of magnitude below it
    the loss still falls, and steadily."""
    return lrs[int(np.argmin(smoothed))] / 10


@dataclass(frozen=True)
class Suggestion:
    """A suggested lr at the tested batch size, and the ``optimizer.lr`` that gives it there."""

    lr: float
    reference_lr: float
    smoothed_loss: float  # on the curve at this lr (to mark it on the plot)


def suggestion_window(curve: Curve, num_steps: int) -> range:
    """The indices that suggestions choose from: the finite smoothed losses, without the schedule's
    first tenth (the smoothed loss has barely moved there) and the last ``SKIP_END`` points (as fastai)."""
    finite = next((i for i, v in enumerate(curve.smoothed) if not math.isfinite(v)), len(curve.smoothed))
    window = range(num_steps // 10, finite - SKIP_END)
    if len(window) < MIN_POINTS:
        raise RangeTestFailed(
            f"the loss diverged at batch {len(curve.lrs)} of {num_steps} (lr {curve.lrs[-1]:.3g}), too early to "
            f"suggest an lr (the first {num_steps // 10} and last {SKIP_END} batches are not used): lower lr_find.min_lr"
        )
    return window


def suggest(curve: Curve, num_steps: int, to_reference: Callable[[float], float]) -> dict[str, Suggestion]:
    """Both suggestions: ``valley`` (the cautious one, to paste when in doubt) and ``steepest``."""
    window = suggestion_window(curve, num_steps)
    lrs = curve.lrs[window.start : window.stop]
    smoothed = curve.smoothed[window.start : window.stop]
    picks = {"valley": valley(lrs, smoothed), "steepest": lrs[steepest(lrs, smoothed)]}
    log_lrs = np.log(lrs)
    return {
        name: Suggestion(lr, to_reference(lr), float(np.interp(math.log(lr), log_lrs, smoothed)))
        for name, lr in picks.items()
    }


def range_notes(curve: Curve, num_steps: int) -> list[str]:
    """What the curve says about the range itself: a fall that had not begun, or not ended, in it."""
    window = suggestion_window(curve, num_steps)
    smoothed = curve.smoothed[window.start : window.stop]
    lowest = window.start + int(np.argmin(smoothed))
    notes = []
    if lowest == window.start:
        notes.append(
            f"the smoothed loss never fell below its value at lr {curve.lrs[lowest]:.3g}: lower lr_find.min_lr"
        )
    if (
        curve.stop_reason == "completed"
        and int(np.argmin(curve.smoothed)) >= len(curve.smoothed) - SKIP_END - 1
    ):
        notes.append(f"the smoothed loss was still falling at lr {curve.lrs[-1]:.3g}: raise lr_find.max_lr")
    return notes


# -- the command -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LrFindResult:
    """A range test's curve and suggestions, with what is needed to read them."""

    curve: Curve
    suggestions: dict[str, Suggestion]  # "valley" and "steepest"
    num_steps: int
    batch_size: int  # the tested batch size (data.batch_size)
    base_batch_size: int  # lr_scaling.base_batch_size, where reference_lr applies
    rule: str  # the lr_scaling rule that converts between the two
    optimizer: str
    plot: Path | None
    mlflow_run_id: str | None

    @property
    def valley(self) -> Suggestion:
        return self.suggestions["valley"]

    @property
    def steepest(self) -> Suggestion:
        return self.suggestions["steepest"]


def run_name(cfg: DictConfig, choices: Mapping[str, str]) -> str:
    """``lr-find-mlp-digits-adam-bs64`` (no lr in it: the test tries many)."""
    model = choices.get("model", "model")
    return (
        cfg.tracking.get("run_name")
        or f"lr-find-{model}-{cfg.data.name}-{cfg.optimizer.name}-bs{cfg.data.batch_size}"
    )


def log_start(cfg: DictConfig, setup: Setup, settings: RangeTestSettings) -> None:
    """What is about to be tried, printed before training (as ``sweepkit-train`` prints its lr)."""
    log.info(
        "lr range test: %d batches, lr %.3g -> %.3g at batch size %d  [optimizer %s, device %s, precision %s, %d batches/epoch]",
        settings.num_steps,
        settings.min_lr,
        settings.max_lr,
        cfg.data.batch_size,
        cfg.optimizer.name,
        setup.device,
        cfg.trainer.precision,
        len(setup.loop.train_batches),
    )


def log_curve(tracker: RunTracker, curve: Curve) -> None:
    """The curve as metrics, step = batch (from 1)."""
    for batch, (lr, loss, smoothed) in enumerate(zip(curve.lrs, curve.losses, curve.smoothed), start=1):
        tracker.log_epoch(batch, {"lr_find/lr": lr, "lr_find/loss": loss, "lr_find/smoothed_loss": smoothed})


def find_lr(
    cfg: DictConfig,
    make_tracker: Callable[[], RunTracker] | None = None,
    choices: Mapping[str, str] | None = None,
) -> LrFindResult:
    """Run the LR range test that ``cfg`` (composed from ``lr_find.yaml``) describes.

    Builds the run as ``sweepkit-train`` would (seeded initial weights, precision, batches), trains
    it through the lr schedule and returns the curve and both suggestions. Writes ``lr_find.png`` to
    ``cfg.output_dir`` when set, and tracks a run as ``cfg.tracking`` says (or ``make_tracker``).
    Raises ConfigError on bad input, before anything is written, and RangeTestFailed when the loss
    diverges too early to suggest anything.
    """
    settings = RangeTestSettings.from_config(cfg)
    setup = build(cfg, output_dir=None)  # no output folder: the loop cannot write a checkpoint
    log_start(cfg, setup, settings)
    tracker = make_tracker() if make_tracker is not None else build_tracker(cfg.tracking, launch_dir())
    chosen = group_choices(cfg, choices)
    tracker.start(run_name(cfg, chosen), run_params(cfg, setup), {**chosen, "sweepkit.command": "lr_find"})
    try:
        result = _test_and_report(cfg, setup, settings, tracker)
    except BaseException as err:
        record_failure(tracker, None, err)  # KILLED or FAILED, with the error as tag and traceback
        raise
    tracker.end("FINISHED")
    return result


def _test_and_report(
    cfg: DictConfig, setup: Setup, settings: RangeTestSettings, tracker: RunTracker
) -> LrFindResult:
    curve = range_test(unscheduled(setup, cfg), settings)
    log_curve(tracker, curve)  # before suggesting: a failed test's curve is worth seeing too
    scaling = (
        cfg.data.batch_size,
        cfg.lr_scaling.base_batch_size,
        cfg.lr_scaling.rule,
        cfg.optimizer.auto_rule,
    )
    suggestions = suggest(curve, settings.num_steps, lambda lr: lr_scaling.reference_lr(lr, *scaling))
    for note in range_notes(curve, settings.num_steps):
        log.warning(note)
    plot = None
    if cfg.output_dir is not None:
        marks = {name: (s.lr, s.smoothed_loss) for name, s in suggestions.items()}
        title = f"LR range test: {cfg.data.name}, {cfg.optimizer.name}, batch {cfg.data.batch_size}"
        plot = lr_find_curve(
            curve.lrs, curve.losses, curve.smoothed, marks, Path(cfg.output_dir) / "lr_find.png", title
        )
        tracker.log_artifact(plot, "plots")
    tracker.log_metrics(
        {
            f"lr_find/{name}_{kind}": getattr(s, kind)
            for name, s in suggestions.items()
            for kind in ("lr", "reference_lr")
        }
    )
    tracker.set_tags({"lr_find.stop_reason": curve.stop_reason, "lr_find.batches_run": str(len(curve.lrs))})
    return LrFindResult(
        curve,
        suggestions,
        settings.num_steps,
        cfg.data.batch_size,
        cfg.lr_scaling.base_batch_size,
        setup.rule,
        cfg.optimizer.name,
        plot,
        tracker.run_id,
    )


def summarize(result: LrFindResult) -> None:
    """How the test ended, both suggestions at both batch sizes, and the override to paste."""
    curve = result.curve
    batches = len(curve.lrs)
    ended = (
        f"diverged after batch {batches} of {result.num_steps}"
        if curve.stop_reason == "diverged"
        else f"completed {batches} batches"
    )
    finite = [(loss, lr) for loss, lr in zip(curve.smoothed, curve.lrs) if math.isfinite(loss)]
    lowest, lowest_lr = min(finite) if finite else (math.nan, math.nan)
    log.info("%s, at lr %.3g (lowest smoothed loss %.4g at lr %.3g)", ended, curve.lrs[-1], lowest, lowest_lr)
    reference = f"optimizer.lr at base batch {result.base_batch_size} (rule {result.rule})"
    log.info("%-10s %-16s %s", "suggested", f"lr at batch {result.batch_size}", reference)
    for name, s in result.suggestions.items():
        log.info("%-10s %-16.3g %.3g", name, s.lr, s.reference_lr)
    log.info(
        "paste: optimizer.lr=%.3g   (valley; the bolder steepest: optimizer.lr=%.3g)",
        result.valley.reference_lr,
        result.steepest.reference_lr,
    )
    log.info("plot %s", result.plot)
    if result.mlflow_run_id is not None:  # tracking=none: no MLflow run to name
        log.info("mlflow run %s", result.mlflow_run_id)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="lr_find")
@reports_errors
def main(cfg: DictConfig) -> None:
    """One LR range test, then its summary (in a multirun: one test per job)."""
    summarize(find_lr(cfg, choices=HydraConfig.get().runtime.choices))


def cli() -> None:
    """The console script ``sweepkit-lr-find``: every known error is one line (sweepkit.console)."""
    run_console_script("sweepkit-lr-find", main)


if __name__ == "__main__":
    cli()
