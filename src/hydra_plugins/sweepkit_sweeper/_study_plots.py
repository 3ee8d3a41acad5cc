"""Study plots (Optuna's matplotlib visualizations) and ``optimization_results.yaml``."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import yaml  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

log = logging.getLogger("sweepkit")
CONTOUR_PARAMS = ("optimizer.lr", "data.batch_size")


def _plotters(study: optuna.Study) -> dict[str, Callable[[], Any]]:
    """The plots that suit this study: single- or multi-objective, with or without lr and batch size."""
    if len(study.directions) > 1:
        return {"pareto_front": lambda: optuna_plots.plot_pareto_front(study)}
    plotters = {
        "optimization_history": lambda: optuna_plots.plot_optimization_history(study),
        "intermediate_values": lambda: optuna_plots.plot_intermediate_values(study),
        "parallel_coordinate": lambda: optuna_plots.plot_parallel_coordinate(study),
        "param_importances": lambda: optuna_plots.plot_param_importances(study),
    }
    searched = {name for t in study.get_trials(deepcopy=False) for name in t.distributions}
    if set(CONTOUR_PARAMS) <= searched:
        plotters["contour_lr_batch_size"] = lambda: optuna_plots.plot_contour(study, params=list(CONTOUR_PARAMS))
    return plotters


def save_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Every plot that can be drawn now as a PNG in ``folder``; a plot that cannot (too few trials,
    a single distinct value) is skipped with a log line, never failing the sweep."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, plot in _plotters(study).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" and "too few trials" warnings
                axes = plot()
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.set_size_inches(10, 6)
            figure.tight_layout()
            figure.savefig(folder / f"{name}.png", dpi=90)
            saved.append(folder / f"{name}.png")
        except Exception as err:  # Optuna raises several types for "not enough data yet"
            log.info("plot %s skipped: %s", name, err)
        finally:
            plt.close("all")
    return saved


def results(study: optuna.Study) -> dict[str, Any]:
    """Best params and value (single objective) or the Pareto front (multi-objective)."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        return {"name": study.study_name, "best_params": None, "best_value": None}
    if len(study.directions) == 1:
        best = study.best_trial
        return {"name": study.study_name, "best_trial": best.number, "best_params": best.params, "best_value": best.value}
    front = [{"number": t.number, "params": t.params, "values": t.values} for t in study.best_trials]
    return {"name": study.study_name, "directions": [d.name for d in study.directions], "pareto_front": front}


def save_results(study: optuna.Study, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(results(study), sort_keys=False))
    return path
