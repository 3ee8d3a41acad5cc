"""Figures written as PNG files (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sweepkit.tasks import LOSSES


def learning_curve(history: Sequence[Mapping[str, float]], objective: str, path: Path) -> Path:
    """Train and validation loss, and the objective, against the epoch."""
    with _curve_lock:
        _curve_figure().draw(history, objective, path)
    return path


class LearningCurveFigure:
    """The learning-curve figure, made once per process and redrawn for each run: making its axes and
    their ticks was a third of the time to draw it, on the way out of every tracked run."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(10, 4))
        # Fixed margins, not tight_layout: it would double the time of a figure drawn for every run.
        self.figure.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.91, wspace=0.25)
        self.loss_ax, self.objective_ax = self.figure.subplots(1, 2)
        self.losses = {name: self.loss_ax.plot([], [], marker="o", label=name)[0] for name in LOSSES}
        (self.objective,) = self.objective_ax.plot([], [], marker="o", color="tab:green")
        self.loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
        self.loss_ax.legend()
        self.objective_ax.set(xlabel="epoch")
        for ax in (self.loss_ax, self.objective_ax):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers

    def draw(self, history: Sequence[Mapping[str, float]], objective: str, path: Path) -> None:
        epochs = range(1, len(history) + 1)
        for name, line in self.losses.items():
            line.set_data(epochs, [m.get(name, float("nan")) for m in history])
        self.objective.set_data(epochs, [m.get(objective, float("nan")) for m in history])
        self.objective_ax.set(ylabel=objective, title=objective)
        for ax in (self.loss_ax, self.objective_ax):
            ax.set(xlim=(0, 1), ylim=(0, 1))  # a new axes' limits: kept when a curve has no finite point
            ax.autoscale()
            ax.relim()
            ax.autoscale_view()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.figure.savefig(path, dpi=100)


_curve_lock = threading.Lock()  # one figure: runs in threads of one process draw it in turn


@functools.cache
def _curve_figure() -> LearningCurveFigure:
    return LearningCurveFigure()


def lr_find_curve(
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    marks: Mapping[str, tuple[float, float]],
    path: Path,
    title: str = "LR range test",
) -> Path:
    """Loss against the learning rate (log axis) of an LR range test; ``marks`` are named (lr, loss) points."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, losses, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
    ax.plot(lrs, smoothed, color="tab:blue", linewidth=2, label="smoothed loss")
    for (name, (lr, loss)), color in zip(marks.items(), ("tab:red", "tab:green", "tab:orange", "tab:purple")):
        ax.axvline(lr, color=color, linestyle="--", linewidth=1)
        ax.plot([lr], [loss], marker="o", color=color, label=f"{name}: lr {lr:.3g}")
    finite_smoothed = [v for v in smoothed if math.isfinite(v)]
    if finite_smoothed:
        # Frame the fall, from the starting loss down: the climb into divergence may leave the top,
        # else its losses, many times the start, would squash the fall flat.
        low = min(finite_smoothed + [v for v in losses if math.isfinite(v)])
        high = finite_smoothed[0] if min(finite_smoothed) < finite_smoothed[0] else max(finite_smoothed)
        pad = 0.1 * (high - low) or 0.1 * abs(high) or 1.0
        ax.set_ylim(low - pad, high + 2 * pad)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (at the tested batch size)", ylabel="training loss", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def lr_vs_batch(fits: Sequence, path: Path, title: str) -> Path:
    """Best lr against batch size (log-log) per fit of ``sweepkit.scaling_law``: the optima with
    their intervals (hollow: at the edge of the searched lrs, left out), the fitted law, and the
    linear and square-root rules drawn through the smallest batch size's best lr."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ticks: set[int] = set()
    for fit, color in zip(fits, ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")):
        if not fit.optima:
            continue
        name = f"{fit.group} " if fit.group else ""
        for o in fit.optima:
            ax.errorbar(
                [o.batch_size],
                [o.lr],
                yerr=[[o.lr - o.low], [o.high - o.lr]],
                fmt="o",
                color=color,
                mfc="white" if o.at_edge else color,
                capsize=3,
            )
        law, brk = fit.law, fit.breakpoint
        batches = [o.batch_size for o in fit.optima]
        if law is not None:
            ends = [law.batch_sizes[0], brk.batch_size if brk else law.batch_sizes[-1]]
            ax.plot(
                ends,
                [law.lr_at(b) for b in ends],
                color=color,
                linewidth=2,
                label=f"{name}fit: alpha {law.alpha:.2f} [{law.low:.2f}..{law.high:.2f}] {law.verdict}",
            )
            if brk is not None:
                beyond = [brk.batch_size, batches[-1]]
                ax.plot(
                    beyond,
                    [law.lr_at(brk.batch_size) * (b / brk.batch_size) ** brk.alpha_above for b in beyond],
                    color=color,
                    linewidth=2,
                    alpha=0.5,
                    label=f"{name}past the break: alpha {brk.alpha_above:.2f}",
                )
        smallest = fit.optima[0]
        span = [batches[0], batches[-1]]
        for exponent, style, rule in ((1.0, "--", "linear"), (0.5, ":", "square-root")):
            ax.plot(
                span,
                [smallest.lr * (b / smallest.batch_size) ** exponent for b in span],
                style,
                color=color,
                linewidth=1,
                label=f"{name}{rule} rule from batch {smallest.batch_size}",
            )
        if brk is not None:
            ax.axvline(
                brk.batch_size,
                color=color,
                linestyle="-.",
                linewidth=1,
                label=f"{name}break: batch ~{brk.batch_size:.0f}",
            )
        ticks.update(batches)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ticks), [str(b) for b in sorted(ticks)])
    ax.set_yscale("log")
    ax.set(xlabel="batch size", ylabel="best learning rate (the lr trained with)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
