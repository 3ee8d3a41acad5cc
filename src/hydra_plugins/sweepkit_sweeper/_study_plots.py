"""Study plots and ``optimization_results.yaml``, every axis and key named by the study's metric
(``studies.metric_names``: ``val/acc``, not "Objective Value").

Optuna's matplotlib plots serve where they show what a sweep needs (parallel coordinates, param
importances, the Pareto front); three are drawn here instead: the history, which must show pruned
trials too (Optuna's leaves them out, hiding most of a pruned sweep); the intermediate values, coloured
by state with one legend entry per state (Optuna's lists every trial and is cut after 25); and the
lr x batch size map, one panel per optimizer (one map over all optimizers mixes their lr scales).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from optuna.visualization import matplotlib as optuna_plots

from sweepkit.scaling_law import BATCH, LR, OPTIMIZER
from sweepkit.studies import metric_names

log = logging.getLogger("sweepkit")
CONTOUR_PARAMS = (LR, BATCH)
FIGURE_SIZE = (10, 6)  # inches, at 90 dpi
STATE_STYLES = {  # colour and the marker that ends the trial's curve
    TrialState.COMPLETE: ("tab:blue", "o"),
    TrialState.PRUNED: ("tab:orange", "x"),
    TrialState.FAIL: ("tab:red", "s"),
    TrialState.RUNNING: ("tab:gray", "."),
}


def _plotters(study: optuna.Study) -> dict[str, Callable[[], Any]]:
    """The plots that suit this study: single- or multi-objective, with or without lr and batch size."""
    if len(study.directions) > 1:
        return {"pareto_front": lambda: optuna_plots.plot_pareto_front(study)}
    plotters = {
        "optimization_history": lambda: optimization_history(study),
        "intermediate_values": lambda: intermediate_values(study),
        "parallel_coordinate": lambda: parallel_coordinate(study),
        "param_importances": lambda: optuna_plots.plot_param_importances(study),
    }
    searched = {name for t in study.get_trials(deepcopy=False) for name in t.distributions}
    if set(CONTOUR_PARAMS) <= searched:
        plotters["contour_lr_batch_size"] = lambda: lr_batch_contours(study)
    return plotters


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna's plots log "does not have any completed trials" as warnings; the skip line says it."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def draw_plots(study: optuna.Study) -> Iterator[tuple[str, Figure]]:
    """Every plot that can be drawn now, by name, laid out for saving; a plot that cannot (too few
    trials, a single distinct value) is skipped with a log line, never failing the sweep. The caller
    closes each figure."""
    for name, plot in _plotters(study).items():
        try:
            # Optuna's plots switch matplotlib to its ggplot style for good: a context keeps that in them
            with warnings.catch_warnings(), plt.style.context("default"), _optuna_quiet():
                warnings.simplefilter("ignore")  # "experimental" and "too few trials" warnings
                drawn = plot()
            figure = (
                drawn
                if isinstance(drawn, Figure)
                else (drawn.flat[0] if hasattr(drawn, "flat") else drawn).get_figure()
            )
            if not isinstance(drawn, Figure):  # Optuna's: sized here; ours are sized where drawn
                figure.set_size_inches(*FIGURE_SIZE)
                figure.tight_layout()
        except Exception as err:  # Optuna raises several types for "not enough data yet"
            log.info("plot %s skipped: %s", name, err)
            plt.close("all")
            continue
        yield name, figure


def save_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Every plot that can be drawn now as a PNG in ``folder`` (``draw_plots``)."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, figure in draw_plots(study):
        try:
            figure.savefig(folder / f"{name}.png", dpi=90)
            saved.append(folder / f"{name}.png")
        finally:
            plt.close(figure)
    return saved


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def last_reported(trial: FrozenTrial) -> tuple[int, float] | None:
    """A trial's last reported (step, value) that is a number (a diverged trial's may not be)."""
    steps = [(step, value) for step, value in sorted(trial.intermediate_values.items()) if _finite(value)]
    return steps[-1] if steps else None


def optimization_history(study: optuna.Study) -> Figure:
    """Each trial's value against its number, pruned ones at their last reported value (a
    different marker), and the best so far of the completed."""
    name = metric_names(study)[0]
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and _finite(t.value)]
    pruned = [
        (t.number, last[1]) for t in trials if t.state == TrialState.PRUNED and (last := last_reported(t))
    ]
    if not complete and not pruned:
        raise ValueError("no trial has a value yet")
    figure = Figure(figsize=FIGURE_SIZE)
    ax = figure.subplots()
    if complete:
        color, marker = STATE_STYLES[TrialState.COMPLETE]
        ax.scatter(
            [t.number for t in complete],
            [t.value for t in complete],
            color=color,
            marker=marker,
            label=f"complete ({len(complete)})",
        )
        better = max if study.direction == StudyDirection.MAXIMIZE else min
        best, so_far = [], None
        for t in complete:
            so_far = t.value if so_far is None else better(so_far, t.value)
            best.append(so_far)
        ax.step([t.number for t in complete], best, where="post", color="tab:red", label="best so far")
    if pruned:
        color, marker = STATE_STYLES[TrialState.PRUNED]
        ax.scatter(
            *zip(*pruned), color=color, marker=marker, label=f"pruned ({len(pruned)}): last reported value"
        )
    ax.set(xlabel="trial", ylabel=name, title=f"optimization history: {name}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    figure.tight_layout()
    return figure


def intermediate_values(study: optuna.Study) -> Figure:
    """Each trial's reported values against the step, coloured by state, a pruned trial's curve
    ending in a cross; the legend has one entry per state, however many trials."""
    name = metric_names(study)[0]
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    if not trials:
        raise ValueError("no trial has reported a value yet")
    figure = Figure(figsize=FIGURE_SIZE)
    ax = figure.subplots()
    counts: dict[TrialState, int] = {}
    for t in trials:
        color, marker = STATE_STYLES.get(t.state, ("tab:gray", "."))
        steps = sorted(t.intermediate_values)
        ax.plot(steps, [t.intermediate_values[s] for s in steps], color=color, alpha=0.6, linewidth=1)
        ax.plot(steps[-1:], [t.intermediate_values[steps[-1]]], color=color, marker=marker, linestyle="none")
        counts[t.state] = counts.get(t.state, 0) + 1
    handles = [
        Line2D(
            [],
            [],
            color=STATE_STYLES.get(state, ("tab:gray", "."))[0],
            marker=STATE_STYLES.get(state, ("tab:gray", "."))[1],
            label=f"{state.name.lower()} ({n})",
        )
        for state, n in counts.items()
    ]
    ax.legend(handles=handles, title="trials")
    ax.set(xlabel="step (epoch)", ylabel=name, title=f"intermediate values: {name} per step")
    ax.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def parallel_coordinate(study: optuna.Study) -> Figure:
    """Optuna's parallel coordinates with readable axis names: level, below the tick labels of the
    axes (Optuna slants them into those), on a figure wide enough for one name per axis."""
    ax = optuna_plots.plot_parallel_coordinate(study, target_name=metric_names(study)[0])
    figure = ax.get_figure()
    labels = [label.get_text() for label in ax.get_xticklabels()]
    width = max(
        FIGURE_SIZE[0], 0.11 * sum(max(len(text), 8) for text in labels) + 2.5
    )  # ~0.11 in per character at 10 pt
    figure.set_size_inches(width, FIGURE_SIZE[1])
    ax.set_xticks(ax.get_xticks(), labels, rotation=0, ha="center")
    figure.tight_layout()
    # each parameter's axis labels its lowest tick at the bottom edge: the names go below the lowest
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    ticks = [
        t
        for other in figure.axes[1:]
        for t in (*other.get_yticklabels(), *other.get_yticklabels(minor=True))
        if t.get_visible() and t.get_text()
    ]
    ticks += [t for t in ax.get_yticklabels() if t.get_text()]
    frame = ax.get_window_extent(renderer)
    boxes = [t.get_window_extent(renderer) for t in ticks]
    shown = [
        box for box in boxes if frame.y0 - 1 <= (box.y0 + box.y1) / 2 <= frame.y1 + 1
    ]  # a log axis labels ticks out of view too
    reach = frame.y0 - min((box.y0 for box in shown), default=frame.y0)
    ax.tick_params(axis="x", pad=max(reach, 0) * 72 / figure.dpi + 4)
    figure.tight_layout()
    return figure


def lr_batch_contours(study: optuna.Study) -> Figure:
    """The objective over learning rate and batch size, one panel per optimizer (each optimizer's lr
    has its own scale: one map over all of them would mix them), on one colour scale."""
    name = metric_names(study)[0]
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if set(CONTOUR_PARAMS) <= set(t.params) and _finite(t.value)
    ]
    if len(complete) < 2:
        raise ValueError("fewer than 2 completed trials")
    groups: dict[str, list[FrozenTrial]] = {}
    for t in complete:
        groups.setdefault(str(t.params.get(OPTIMIZER, "")), []).append(t)
    norm = Normalize(min(t.value for t in complete), max(t.value for t in complete))
    figure = Figure(figsize=(max(FIGURE_SIZE[0], 4.5 * len(groups)), FIGURE_SIZE[1]))
    axes = figure.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    points = None
    for ax, (optimizer, trials) in zip(axes, sorted(groups.items())):
        xs, ys = [math.log10(t.params[LR]) for t in trials], [math.log2(t.params[BATCH]) for t in trials]
        values = [t.value for t in trials]
        if len(set(zip(xs, ys))) >= 3:
            try:
                ax.tricontourf(xs, ys, values, levels=12, cmap="viridis", norm=norm, alpha=0.6)
            except (RuntimeError, ValueError):  # collinear points: no triangulation, the points alone
                pass
        points = ax.scatter(xs, ys, c=values, cmap="viridis", norm=norm, edgecolors="black", label=optimizer)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{10**x:.2g}"))  # log10 positions, lr labels
        ax.set(title=f"optimizer {optimizer}" if optimizer else "all trials", xlabel=f"{LR} (log scale)")
        ax.margins(0.08)  # points on the edge of the searched ranges stay whole
        ax.grid(True, alpha=0.3)
    batches = sorted({t.params[BATCH] for t in complete})
    axes[0].set_yticks([math.log2(b) for b in batches], [str(b) for b in batches])
    axes[0].set_ylabel(BATCH)
    figure.colorbar(points, ax=list(axes), label=name)
    figure.suptitle(f"{name} over {LR} and {BATCH} (completed trials)")
    return figure
