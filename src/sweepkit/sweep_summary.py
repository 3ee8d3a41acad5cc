"""The words a sweep is told in: the line per finished trial and the closing summary (best value by
its metric's name, best params, trials by state, epochs saved, where to look). The sweeper prints
them; ``sweepkit-report`` tells a study's best and counts in the same words.

Each summary line starts with a word of its own (``best``, ``params``, ``trials``, ``results``,
``mlflow``, ``report``), so a reader, or a script, finds what it wants without parsing.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sweepkit import studies
from sweepkit.studies import StudySummary

if TYPE_CHECKING:  # Optuna is imported where a study is opened, not by importing this
    import optuna
    from optuna.trial import FrozenTrial

SHOWN_STATES = ("COMPLETE", "PRUNED", "FAIL")  # always counted, zeros too; other states when present
# What a sweep leaves in its folder to look at (the sweeper writes them under these names)
RESULTS_FILE, PLOTS_FOLDER = "optimization_results.yaml", "plots"


@dataclass
class Where:
    """Where a sweep's results are: its folder, its MLflow parent run (None: not tracked to MLflow)."""

    sweep_dir: Path
    launch_dir: Path
    mlflow_uri: str | None = None
    mlflow_experiment_id: str | None = None
    parent_run_id: str | None = None


def metric_names(study: optuna.Study, fallback: Sequence[str] | None = None) -> list[str]:
    """The study's metric names (``study.set_metric_names``), else ``fallback``, else ``value``."""
    names = study.metric_names or list(fallback or [])
    return names if len(names) == len(study.directions) else ["value"] * len(study.directions)


def _value(values: Sequence[float] | None) -> str:
    return "-" if values is None else ", ".join(f"{v:.4f}" for v in values)


def _elapsed(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def best_so_far(summary: StudySummary) -> str:
    """The best value so far, as the trial lines and the sweep's bar show it."""
    return f"{summary.best_values[0]:.4f}" if summary.best_values else "-"


def trial_line(trial: FrozenTrial, summary: StudySummary, n_trials: int, elapsed_s: float) -> str:
    """``trial 3 PRUNED value - [pruner at epoch 2] | best 0.9167 (trial 2) | 4/10 finished | 0m12s``."""
    detail = trial.user_attrs.get(studies.PRUNE_REASON) or trial.user_attrs.get(studies.FAIL_REASON) or ""
    if trial.state.name == "PRUNED":
        detail = f"{detail} at epoch {trial.user_attrs.get(studies.PRUNED_EPOCH, '?')}"
    elif trial.state.name == "RUNNING":
        detail = "stopped: resumes on the next run"
    detail = f"[{detail.strip()[:80]}] " if detail.strip() else ""
    best = f"{best_so_far(summary)} (trial {summary.best_number})" if summary.best_values else "-"
    return (
        f"trial {trial.number} {trial.state.name} value {_value(trial.values)} {detail}| best {best} | "
        f"{summary.finished}/{n_trials} finished | {_elapsed(elapsed_s)}"
    )


def best_lines(study: optuna.Study, summary: StudySummary, names: Sequence[str]) -> list[str]:
    """``best val/acc 0.9167 (trial 2)`` and ``params k=v ...``; a Pareto front for several objectives."""
    if len(study.directions) > 1:
        front = [t.number for t in study.best_trials]
        return [f"best {', '.join(names)}: Pareto front of trials {', '.join(map(str, front)) or '-'}"]
    if summary.best_number is None:
        return [f"best {names[0]} - (no trial COMPLETE yet)"]
    best = study.best_trial
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
    return [f"best {names[0]} {best.value:.4f} (trial {best.number})", f"params {params or '-'}"]


def counts_line(summary: StudySummary) -> str:
    """``trials COMPLETE 7, PRUNED 2, FAIL 1 | epochs run 31 of 50 budgeted (38% saved by pruning)``."""
    others = [s for s in sorted(summary.counts) if s not in SHOWN_STATES and summary.counts[s]]
    counts = ", ".join(f"{state} {summary.counts.get(state, 0)}" for state in (*SHOWN_STATES, *others))
    if not summary.epochs_budget:  # a task that reports no epochs
        return f"trials {counts}"
    return (
        f"trials {counts} | epochs run {summary.epochs_run} of {summary.epochs_budget} budgeted "
        f"({100 * summary.epochs_saved_share:.0f}% saved by pruning)"
    )


def _shown(path: Path, launch_dir: Path) -> str:
    """A path as the user would type it in the launch directory: relative there, absolute elsewhere."""
    return str(path.relative_to(launch_dir)) if path.is_relative_to(launch_dir) else str(path)


def where_lines(where: Where) -> list[str]:
    """``results <folder>``, the MLflow parent run and its UI (when tracked), the report command."""
    folder = _shown(where.sweep_dir, where.launch_dir)
    present = [
        name + ("/" if (where.sweep_dir / name).is_dir() else "")
        for name in (RESULTS_FILE, PLOTS_FOLDER)
        if (where.sweep_dir / name).exists()
    ]
    lines = [f"results {folder}" + (f" ({', '.join(present)})" if present else "")]
    if where.mlflow_uri is not None and where.parent_run_id is not None:
        lines.append(f"mlflow {where.mlflow_uri} parent run {where.parent_run_id}")
        page = (
            f"#/experiments/{where.mlflow_experiment_id}/runs/{where.parent_run_id}"
            if where.mlflow_experiment_id
            else ""
        )
        if where.mlflow_uri.startswith(("http://", "https://")):  # a tracking server is its own UI
            lines.append(f"mlflow ui at {where.mlflow_uri.rstrip('/')}/{page}")
        else:
            lines.append(
                f"mlflow ui --backend-store-uri {shlex.quote(where.mlflow_uri)}   (then http://127.0.0.1:5000/{page})"
            )
    lines.append(f"report sweepkit-report {shlex.quote(folder)}")
    return lines


def closing_lines(
    study: optuna.Study, summary: StudySummary, names: Sequence[str], where: Where
) -> list[str]:
    """The summary at the end of a sweep, in this order: best, params, trials, results, mlflow, report."""
    return [*best_lines(study, summary, names), counts_line(summary), *where_lines(where)]
