"""The sweep's MLflow parent run, held through ``MlflowClient`` so that no fluent run is active when
an in-process trial job starts its own child run."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from sweepkit import studies
from sweepkit.studies import StudySummary
from sweepkit.tracking import (
    mlflow_key,
    name_outcome,
    open_experiment,
    param_items,
    resolve_store,
    tracker_names,
)

log = logging.getLogger("sweepkit")


class ParentRun:
    """One parent run per study, reused when the sweep resumes or another worker joins it."""

    def __init__(self, client, run_id: str, metric_names: list[str]) -> None:
        self.client, self.run_id, self.metric_names = client, run_id, metric_names

    @classmethod
    def open(
        cls, tracking: Mapping[str, Any], launch_dir: Path, study: optuna.Study, params: Mapping[str, Any]
    ) -> ParentRun | None:
        """Create (or reopen) the tracking database, experiment and parent run before any trial."""
        if "mlflow" not in tracker_names(tracking):
            return None
        uri, artifact_location = resolve_store(tracking["uri"], launch_dir)
        client, experiment_id = open_experiment(
            uri, tracking["experiment"], tracking.get("artifact_location") or artifact_location
        )
        run_id = cls._existing(client, study)
        if run_id is None:
            # Workers starting one fresh study together: one makes the parent, the others find it.
            with studies.study_mutex(study, "mlflow-parent"):
                run_id = cls._existing(client, study) or cls._create(client, experiment_id, study, params)
        else:
            client.update_run(run_id, status="RUNNING")
        study.set_user_attr(studies.MLFLOW_URI, uri)
        study.set_user_attr(studies.MLFLOW_EXPERIMENT_ID, experiment_id)
        return cls(client, run_id, studies.metric_names(study))

    @staticmethod
    def _existing(client, study: optuna.Study) -> str | None:
        run_id = study.user_attrs.get(studies.MLFLOW_PARENT_RUN_ID)
        if run_id is None:
            return None
        try:
            return client.get_run(run_id).info.run_id
        except Exception:  # deleted, or a different tracking store: start a new parent
            return None

    @staticmethod
    def _create(client, experiment_id: str, study: optuna.Study, params: Mapping[str, Any]) -> str:
        from mlflow.entities import Param

        run = client.create_run(
            experiment_id,
            run_name=f"sweep-{study.study_name}",
            tags={"optuna.study": study.study_name, "sweepkit.role": "sweep"},
        )
        items = [
            Param(key, value) for key, value in param_items({"objective": objective(study), **params}).items()
        ]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per call
            client.log_batch(run.info.run_id, params=items[i : i + 100])
        study.set_user_attr(studies.MLFLOW_PARENT_RUN_ID, run.info.run_id)
        return run.info.run_id

    def log_summary(self, summary: StudySummary, n_trials: int, artifacts: list[Path]) -> None:
        """Best value and trial, counts per state, epochs run against the budget, plots."""
        from mlflow.entities import Metric

        # every state, zeros too: a count logged earlier (trials_running=1 of a stopped sweep) is put right
        metrics = {f"trials_{state.name.lower()}": summary.counts.get(state.name, 0) for state in TrialState}
        metrics.update(
            {
                "trials_finished": summary.finished,
                "n_trials": n_trials,
                "epochs_run": summary.epochs_run,
                "epochs_budget": summary.epochs_budget,
                "epochs_saved_share": summary.epochs_saved_share,
            }
        )
        if summary.best_values is not None:
            # best_value for whoever reads it by that key; best/<metric> says which metric it is
            metrics.update(
                {
                    "best_value": summary.best_values[0],
                    mlflow_key(f"best/{self.metric_names[0]}"): summary.best_values[0],
                    "best_trial": summary.best_number,
                }
            )
        step = summary.finished
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), 0, step) for k, v in metrics.items()])
        if summary.best_number is not None:
            self.client.set_tag(self.run_id, "best_trial", str(summary.best_number))
        for path in artifacts:
            self.client.log_artifact(self.run_id, str(path), "plots" if path.suffix == ".png" else None)

    def log_scaling(self, fits) -> None:
        """The lr-vs-batch law (sweepkit.scaling_law): alpha, its interval and the break as metrics,
        the verdict as a tag."""
        from mlflow.entities import Metric

        metrics = {name: value for fit in fits for name, value in fit.metrics().items()}
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
        for fit in fits:
            for key, value in fit.tags().items():
                self.client.set_tag(self.run_id, key, value)

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


def objective(study: optuna.Study) -> str:
    """What the study optimizes, as the parent run's ``objective`` param: ``val/acc maximize``."""
    return ", ".join(
        f"{name} {d.name.lower()}" for name, d in zip(studies.metric_names(study), study.directions)
    )


def close_child(client_uri: str, run_id: str, reason: str) -> None:
    """End a trial's child run that its process left RUNNING (it died): FAILED, with the reason."""
    from mlflow import MlflowClient

    client = MlflowClient(client_uri)
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_tag(run_id, "optuna.state", "FAIL")
            client.set_tag(run_id, "error", reason[:8000])
            name_outcome(client, run_id, "failed")
            client.set_terminated(run_id, "FAILED")
    except Exception as err:  # the store may be unreachable; the Optuna state is what counts
        log.warning("could not close MLflow run %s: %s", run_id, err)
