"""Progress output: a rich bar on a terminal, plain periodic log lines in cluster logs; for a run's
epochs (:func:`build_progress`) and for a sweep's trials (:class:`SweepProgress`)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Protocol

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sweepkit.errors import one_of
from sweepkit.tasks import LR, TRAIN_LOSS

log = logging.getLogger("sweepkit")
MODES = ("auto", "bar", "log", "none")


def format_metrics(metrics: Mapping[str, float]) -> str:
    """``train/loss 0.1234  val/acc 0.9750 ...`` with a precision that suits each metric."""
    parts = []
    for name, value in metrics.items():
        text = f"{value:.3g}" if name == LR else f"{value:.1f}" if name.endswith("per_s") else f"{value:.4f}"
        parts.append(f"{name} {text}")
    return "  ".join(parts)


class EpochProgress(Protocol):
    """What the loop tells about its progress; ``wants_update`` lets it sync with the device rarely."""

    def start_epoch(self, epoch: int, max_epochs: int, batches: int) -> None: ...

    def wants_update(self) -> bool: ...

    def advance(self, batches: int, loss: float | None = None) -> None: ...

    def end_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class SilentProgress:
    """Prints nothing (tests, ``trainer.progress=none``)."""

    def start_epoch(self, epoch: int, max_epochs: int, batches: int) -> None:
        pass

    def wants_update(self) -> bool:
        return False

    def advance(self, batches: int, loss: float | None = None) -> None:
        pass

    def end_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class LogProgress(SilentProgress):
    """One log line per epoch, plus an in-epoch line at most every ``every_s`` seconds."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.done = self.total = self.epoch = self.max_epochs = 0
        self.next_line = 0.0

    def start_epoch(self, epoch: int, max_epochs: int, batches: int) -> None:
        self.epoch, self.max_epochs, self.total, self.done = epoch, max_epochs, batches, 0
        self.next_line = time.monotonic() + self.every_s

    def wants_update(self) -> bool:
        return time.monotonic() >= self.next_line

    def advance(self, batches: int, loss: float | None = None) -> None:
        self.done += batches
        if loss is not None and self.wants_update():
            log.info(
                "epoch %d/%d  batch %d/%d  %s %.4f",
                self.epoch,
                self.max_epochs,
                self.done,
                self.total,
                TRAIN_LOSS,
                loss,
            )
            self.next_line = time.monotonic() + self.every_s

    def end_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        log.info("epoch %d/%d  %s", epoch, self.max_epochs, format_metrics(metrics))


class BarProgress(LogProgress):
    """A rich progress bar over the batches of each epoch; epoch summaries are logged as lines."""

    REFRESH_S = 0.5

    def __init__(self) -> None:
        super().__init__(every_s=self.REFRESH_S)
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            transient=True,
        )
        self.bar.start()
        self.task = None

    def start_epoch(self, epoch: int, max_epochs: int, batches: int) -> None:
        super().start_epoch(epoch, max_epochs, batches)
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task("train", total=batches, epoch=f"{epoch}/{max_epochs}", loss="-")

    def advance(self, batches: int, loss: float | None = None) -> None:
        self.done += batches
        fields = {"loss": f"{loss:.4f}"} if loss is not None else {}
        self.bar.update(self.task, completed=self.done, **fields)
        self.next_line = time.monotonic() + self.every_s

    def close(self) -> None:
        self.bar.stop()


def build_progress(mode: str, log_every_s: float) -> EpochProgress:
    """``trainer.progress``: ``auto`` shows a bar on a terminal and log lines otherwise."""
    if mode not in MODES:
        raise one_of("trainer.progress", mode, MODES)
    if mode == "auto":
        mode = "bar" if sys.stdout.isatty() else "log"
    return {"bar": BarProgress, "log": lambda: LogProgress(log_every_s), "none": SilentProgress}[mode]()


class SweepProgress:
    """A sweep's console: its lines (one per finished trial, the closing summary) printed as they come
    and, on a terminal only, a bar of finished trials under them (rich; never in a log file)."""

    def __init__(self, total: int, done: int, bar: bool | None = None) -> None:
        self.bar = None
        if sys.stdout.isatty() if bar is None else bar:
            self.bar = Progress(
                TextColumn("trials"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("best {task.fields[best]}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self.task = self.bar.add_task("trials", total=total, completed=done, best="-")
            self.bar.start()

    def line(self, text: str) -> None:
        """One line above the bar (or on stdout as it is); thread-safe, as trials end on threads."""
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, flush=True)

    def advance(self, finished: int, best: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=finished, best=best)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
