"""A training job as one trial of a sweepkit sweep.

The sweeper passes the study, the storage and the trial number through ``hydra.sweeper.*``; the
job reconnects to the study, rebuilds the pruner from the sweeper config (Optuna does not store
it), reports the objective every epoch, asks the pruner, and tells its own outcome. Its MLflow run
is a child of the sweep's parent run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from optuna.trial import TrialState

from sweepkit import studies
from sweepkit.optuna_parts import build_optuna_part
from sweepkit.preemption import PreemptionFlag, on_preemption
from sweepkit.tracking import MlflowTracker, RunTracker

log = logging.getLogger("sweepkit")


class OptunaReporter:
    """The loop's pruning reporter: reports each epoch once (a resumed trial skips what it reported)."""

    def __init__(self, trial: optuna.Trial, multi_objective: bool) -> None:
        self.trial, self.multi_objective = trial, multi_objective
        self.reported = set(trial.study._storage.get_trial(trial._trial_id).intermediate_values)

    def should_prune(self, epoch: int, value: float) -> bool:
        if self.multi_objective:  # Optuna cannot prune multi-objective studies
            return False
        if epoch not in self.reported:
            self.trial.report(value, epoch)
            self.reported.add(epoch)
        return self.trial.should_prune()


class TrialTracker(MlflowTracker):
    """The trial's child run; a requeued job continues the run its first attempt started."""

    def __init__(self, context: TrialContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        previous = self.context.frozen().user_attrs.get(studies.MLFLOW_RUN_ID)
        if previous:
            self.run_id = previous
            self.client.update_run(previous, status="RUNNING")
            return
        super().start(run_name, params, tags)
        self.context.set_user_attr(studies.MLFLOW_RUN_ID, self.run_id)


@dataclass
class TrialContext:
    """The study and trial a Hydra job runs as, when the sweepkit sweeper launched it."""

    study: optuna.Study
    trial: optuna.Trial
    heartbeat_interval: float

    @classmethod
    def from_hydra(cls) -> TrialContext | None:
        """The current job's trial, or None outside a sweepkit sweep."""
        if not HydraConfig.initialized():
            return None
        sweeper = HydraConfig.get().sweeper
        if sweeper.get("trial_number") is None or sweeper.get("study_name") is None:
            return None
        pruner = build_optuna_part("pruner", sweeper.pruner)
        study = optuna.load_study(study_name=sweeper.study_name, storage=studies.open_storage(sweeper.storage), pruner=pruner)
        trial = optuna.trial.Trial(study, studies.trial_id(study, sweeper.trial_number))
        return cls(study, trial, float(sweeper.heartbeat_interval))

    @property
    def number(self) -> int:
        return self.trial.number

    def frozen(self):
        return self.study._storage.get_trial(self.trial._trial_id)

    def set_user_attr(self, key: str, value: Any) -> None:
        self.trial.set_user_attr(key, value)

    # -- around the run ------------------------------------------------------------------------------
    def prepare(self, cfg: DictConfig) -> None:
        """A trial resumes from its own folder's last.pt when it exists (a requeued or adopted job)."""
        if self.frozen().system_attrs.get(studies.PREEMPTED):
            log.info("trial %d was preempted: resuming it", self.number)
            self.study._storage.set_trial_system_attr(self.trial._trial_id, studies.PREEMPTED, None)
        with open_dict(cfg):
            if cfg.trainer.resume is None:
                cfg.trainer.resume = "auto"
        self.set_user_attr(studies.MAX_EPOCHS, int(cfg.trainer.max_epochs))

    @contextlib.contextmanager
    def alive(self) -> Iterator[PreemptionFlag]:
        """Heartbeats while the job runs; a preemption signal marks the trial for resumption and
        raises the flag the loop polls (yielded)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_interval):
                studies.record_heartbeat(self.study._storage, self.trial._trial_id)

        def mark_preempted(signum: int) -> None:
            self.study._storage.set_trial_system_attr(self.trial._trial_id, studies.PREEMPTED, time.time())
            log.warning("trial %d preempted (signal %d): last.pt holds its last finished epoch", self.number, signum)

        studies.record_heartbeat(self.study._storage, self.trial._trial_id)
        thread = threading.Thread(target=beat, name="sweepkit-trial-heartbeat", daemon=True)
        thread.start()
        try:
            with on_preemption(mark_preempted) as flag:
                yield flag
        finally:
            stop.set()
            thread.join()

    def make_tracker(self, cfg: DictConfig) -> RunTracker | None:
        """The child run under the sweep's parent (None: let the run build its own tracker)."""
        attrs = self.study.user_attrs
        if cfg.tracking.backend != "mlflow" or studies.MLFLOW_PARENT_RUN_ID not in attrs:
            return None
        return TrialTracker(
            self,
            tracking_uri=attrs[studies.MLFLOW_URI],
            experiment=cfg.tracking.experiment,
            experiment_id=attrs[studies.MLFLOW_EXPERIMENT_ID],
            parent_run_id=attrs[studies.MLFLOW_PARENT_RUN_ID],
            system_metrics=cfg.tracking.system_metrics,
        )

    def reporter(self) -> OptunaReporter:
        return OptunaReporter(self.trial, multi_objective=len(self.study.directions) > 1)

    def tags(self) -> dict[str, str]:
        return {"optuna.study": self.study.study_name, "optuna.trial_number": str(self.number)}

    # -- outcome -------------------------------------------------------------------------------------
    def tell(self, metrics: Mapping[str, Any], values: float | list[float]) -> TrialState:
        """Tell the study how the run ended: COMPLETE with its best value(s), or PRUNED (by the pruner,
        or because the loss diverged, so the sampler learns that region is bad)."""
        stop_reason, epochs = metrics["stop_reason"], int(metrics["epochs_run"])
        self.set_user_attr(studies.EPOCHS_RUN, epochs)
        if stop_reason in ("pruned", "diverged"):
            reason = "pruner" if stop_reason == "pruned" else "diverged"
            self.set_user_attr(studies.PRUNED_EPOCH, epochs)
            self.set_user_attr(studies.PRUNE_REASON, reason)
            self.study.tell(self.trial, state=TrialState.PRUNED)
            self._tag_child(metrics, {"optuna.state": "PRUNED", "optuna.pruned_epoch": str(epochs), "optuna.prune_reason": reason})
            return TrialState.PRUNED
        self.study.tell(self.trial, values)
        self._tag_child(metrics, {"optuna.state": "COMPLETE"})
        return TrialState.COMPLETE

    def fail(self, err: BaseException) -> None:
        """Tell FAIL with the error; the run itself already recorded the traceback."""
        studies.fail_trial(self.study, self.frozen(), f"{type(err).__name__}: {err}")
        run_id, uri = self.frozen().user_attrs.get(studies.MLFLOW_RUN_ID), self.study.user_attrs.get(studies.MLFLOW_URI)
        if run_id and uri:
            from mlflow import MlflowClient

            MlflowClient(uri).set_tag(run_id, "optuna.state", "FAIL")

    def _tag_child(self, metrics: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        run_id, uri = metrics.get("mlflow_run_id"), self.study.user_attrs.get(studies.MLFLOW_URI)
        if run_id and uri:
            from mlflow import MlflowClient

            client = MlflowClient(uri)
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
