"""``optimization_results.yaml``: the sweep's best params and value, or its Pareto front, by metric name.

Apart from the plots (``_study_plots``) so that the sweep process writes it without importing matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from sweepkit.studies import metric_names


def results(study: optuna.Study) -> dict[str, Any]:
    """Best params and value (single objective) or the Pareto front (multi-objective), with the
    metric each value is of."""
    names = metric_names(study)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(study.directions) == 1:
        head = {"name": study.study_name, "metric": names[0], "direction": study.direction.name.lower()}
        if not completed:
            return {**head, "best_params": None, "best_value": None}
        best = study.best_trial
        return {**head, "best_trial": best.number, "best_params": best.params, "best_value": best.value}
    front = (
        [{"number": t.number, "params": t.params, "values": t.values} for t in study.best_trials]
        if completed
        else []
    )
    return {
        "name": study.study_name,
        "metrics": names,
        "directions": [d.name.lower() for d in study.directions],
        "pareto_front": front,
    }


def save_results(study: optuna.Study, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(results(study), sort_keys=False))
    return path
