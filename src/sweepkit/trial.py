"""A Hydra job as one trial of a sweepkit sweep, whatever the app's task function is.

The sweeper hands its launcher a :class:`TrialTask` wrapped around the app's task function. In the
job (the sweep process itself, a joblib worker, a submitit job) it reconnects to the study the
sweeper names in ``hydra.sweeper.*``, rebuilds the pruner (Optuna does not store it), and runs the
task inside one scope that every way out passes through:

- the task returns its objective: the trial is told COMPLETE with it;
- the task raises ``optuna.TrialPruned``: PRUNED, at the last epoch it reported;
- a signal stops it (a scheduler's preemption warning, SIGTERM, Ctrl-C): the trial stays RUNNING,
  marked preempted, and the next sweep run resumes it first, under the same number and folder;
- anything else: FAIL, with the error as its reason.

While the task runs, :func:`current_trial` gives it Optuna's trial interface (``number``,
``params``, ``report``, ``should_prune``) and, when the sweep tracks to MLflow, the trial's child
run under the sweep's parent is the active MLflow run, so ``mlflow.log_metric`` lands in it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from optuna.trial import TrialState

from sweepkit import studies
from sweepkit.errors import Stopped
from sweepkit.optuna_parts import build_optuna_part
from sweepkit.preemption import on_preemption

log = logging.getLogger("sweepkit")
PRUNE_REASONS = ("pruner", "diverged", "oom")  # optuna.prune_reason: why a trial stopped early
_current: SweepTrial | None = None


def current_trial() -> SweepTrial | None:
    """The trial this code runs as, inside a trial job of the sweepkit sweeper; None elsewhere."""
    return _current


class TrialStopped(Exception):
    """The job was stopped by a signal before its trial finished: the trial is left for resumption.

    An Exception (not a KeyboardInterrupt) so that every launcher returns it as the job's outcome.
    """


class SweepTrial:
    """What a task function sees of its trial: the part of ``optuna.Trial`` a training loop needs,
    plus the stop flag a sweepkit-aware loop polls between batches."""

    def __init__(self, study: optuna.Study, number: int) -> None:
        self.study = study
        self._trial = optuna.trial.Trial(study, studies.trial_id(study, number))
        self.multi_objective = len(study.directions) > 1
        self._reported = set(self.frozen().intermediate_values)  # a resumed trial skips what it reported
        self.prune_reason = "pruner"  # set before raising TrialPruned for another reason (diverged, oom)
        self.stop_signal: int | None = None
        self.polled = False  # the task polls stop_requested(): signals wait for its safe point
        self.mlflow_run_id: str | None = None  # the trial's MLflow child run, when the sweep tracks
        self.value: float | list[float] | None = None  # the objective, once the task returned it
        # Called with the state (COMPLETE, PRUNED, FAIL) and its details once the study knows it, by
        # trackers that compare trials (TensorBoard's HParams); the task adds them.
        self.when_told: list[Callable[[str, Mapping[str, Any]], None]] = []

    @property
    def number(self) -> int:
        return self._trial.number

    @property
    def params(self) -> dict[str, Any]:
        return self.frozen().params

    @property
    def user_attrs(self) -> dict[str, Any]:
        return self.frozen().user_attrs

    def set_user_attr(self, key: str, value: Any) -> None:
        self._trial.set_user_attr(key, value)

    def frozen(self) -> optuna.trial.FrozenTrial:
        return self.study._storage.get_trial(self._trial._trial_id)

    def report(self, value: float, step: int) -> None:
        """Optuna's ``trial.report``, once per step (a resumed trial's earlier steps are kept)."""
        if self.multi_objective or step in self._reported:  # Optuna cannot prune multi-objective studies
            return
        self._trial.report(value, step)
        self._reported.add(step)

    def should_prune(self) -> bool:
        return not self.multi_objective and self._trial.should_prune()

    def stop_requested(self) -> bool:
        """Whether a signal asked the job to stop; a task that polls this stops at its own safe point."""
        self.polled = True
        return self.stop_signal is not None

    @property
    def last_step(self) -> int:
        return max(self._reported, default=0)


class TrialTask:
    """The app's task function as a trial job (picklable: launchers send it to their workers)."""

    def __init__(self, task_function: Callable[[Any], Any]) -> None:
        self.task_function = task_function

    def __call__(self, cfg: Any) -> Any:
        from sweepkit.console import make_launch_dir_importable

        hydra_cfg = HydraConfig.get()
        make_launch_dir_importable(Path(hydra_cfg.runtime.cwd))  # the user's modules, in every worker
        keep_info_in_log_file()
        with trial_scope(hydra_cfg.sweeper) as trial:
            trial.value = outcome(trial, self.task_function(cfg))
        return trial.value


def keep_info_in_log_file() -> None:
    """A trial's INFO lines (every epoch of it) and tracebacks go to its job's log file alone (Hydra's job
    logging writes ``<job>.log`` in the trial's folder); its console keeps warnings and errors, one line
    each. The sweep's console then holds one line per trial, however many epochs and trials run."""
    root = logging.getLogger()
    log_files = [h.baseFilename for h in root.handlers if isinstance(h, logging.FileHandler)]
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(max(handler.level, logging.WARNING))
            if log_files:
                handler.setFormatter(
                    _TracebackInLogFile(handler.formatter or logging.Formatter(), log_files[0])
                )


class _TracebackInLogFile(logging.Formatter):
    """A console formatter that names the log file instead of printing the traceback it holds."""

    def __init__(self, inner: logging.Formatter, log_file: str) -> None:
        super().__init__()
        self.inner, self.log_file = inner, log_file

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text:
            error = record.exc_info[1] if record.exc_info else None
            message = (
                f"{record.getMessage()}: {type(error).__name__}: {error}"
                if error is not None
                else record.getMessage()
            )
            record = logging.makeLogRecord(
                {
                    **record.__dict__,
                    "msg": f"{message} (traceback in {self.log_file})",
                    "args": None,
                    "exc_info": None,
                    "exc_text": None,
                }
            )
        return self.inner.format(record)


def outcome(trial: SweepTrial, value: Any) -> float | list[float]:
    """The objective the task returned, checked: one finite number per study direction."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise TypeError(f"the task returned {value!r}, not its objective (a number per direction)") from None
    if len(floats) != len(trial.study.directions):
        raise TypeError(
            f"the task returned {len(floats)} values for a study of {len(trial.study.directions)} directions"
        )
    if not all(math.isfinite(v) for v in floats):
        raise TypeError(f"the task returned a non-finite objective {value!r}")
    return floats if trial.multi_objective else floats[0]


@contextlib.contextmanager
def trial_scope(sweeper: Mapping[str, Any]) -> Iterator[SweepTrial]:
    """Reconnect to the trial, keep it alive, run the body as it, and tell how it ended (the body
    sets ``trial.value`` to the objective)."""
    global _current
    study = optuna.load_study(
        study_name=sweeper["study_name"],
        storage=studies.open_storage(sweeper["storage"]),
        pruner=build_optuna_part("pruner", sweeper["pruner"]),
    )
    trial = SweepTrial(study, int(sweeper["trial_number"]))
    studies.take_up(study._storage, trial.frozen())
    trial.set_user_attr(studies.WORKER, f"{socket.gethostname()}:{os.getpid()}")
    child = _ChildRun.open(study, trial, sweeper.get("parent_run_id"))
    _current = trial
    try:
        with _alive(study, trial, float(sweeper["heartbeat_interval"])):
            yield trial
    except optuna.TrialPruned:
        _tell_pruned(trial, child)
        raise
    except BaseException as err:
        if trial.stop_signal is None:
            log.exception("trial %d failed", trial.number)  # the traceback lands in the job's log file
            studies.fail_trial(study, trial.frozen(), f"{type(err).__name__}: {err}")
            child.end(
                "FAILED", {"optuna.state": "FAIL", "error": f"{type(err).__name__}: {err}"}, outcome="failed"
            )
            _told(trial, "FAIL", {})
            raise
        log.warning(
            "trial %d stopped by signal %d: it stays RUNNING, marked preempted, to resume on the next run",
            trial.number,
            trial.stop_signal,
        )
        child.end("KILLED")
        if isinstance(err, SystemExit):  # a scheduler's handler (submitit) requeues the job and exits
            raise
        raise TrialStopped(f"trial {trial.number} stopped by signal {trial.stop_signal}") from err
    else:
        study.tell(trial._trial, trial.value)
        child.end("FINISHED", {"optuna.state": "COMPLETE"})
        _told(trial, "COMPLETE", {})
        log.info("trial %d COMPLETE", trial.number)
    finally:
        _current = None


def _tell_pruned(trial: SweepTrial, child: _ChildRun) -> None:
    epoch = int(trial.user_attrs.get(studies.EPOCHS_RUN, trial.last_step))
    trial.set_user_attr(studies.PRUNED_EPOCH, epoch)
    trial.set_user_attr(studies.PRUNE_REASON, trial.prune_reason)
    trial.study.tell(trial._trial, state=TrialState.PRUNED)
    child.end(
        "FINISHED",
        {
            "optuna.state": "PRUNED",
            "optuna.pruned_epoch": str(epoch),
            "optuna.prune_reason": trial.prune_reason,
        },
        outcome=f"{'pruned' if trial.prune_reason == 'pruner' else trial.prune_reason}@{epoch}",
    )
    _told(trial, "PRUNED", {"optuna.pruned_epoch": epoch, "optuna.prune_reason": trial.prune_reason})
    log.info("trial %d PRUNED (%s) at epoch %d", trial.number, trial.prune_reason, epoch)


def _told(trial: SweepTrial, state: str, details: Mapping[str, Any]) -> None:
    """Run the trial's ``when_told`` hooks; one that fails is logged: the study has the outcome already."""
    for hook in trial.when_told:
        try:
            hook(state, details)
        except Exception as err:
            log.warning(
                "trial %d: could not record its outcome (%s): %s",
                trial.number,
                getattr(hook, "__name__", hook),
                err,
            )


@contextlib.contextmanager
def _alive(study: optuna.Study, trial: SweepTrial, interval: float) -> Iterator[None]:
    """Heartbeats while the body runs. A stop signal raises the flag that a sweepkit-aware task polls
    (it stops at its next safe point), or stops a task that never polls at once; either way the trial
    is marked preempted once the body has unwound (never from the handler: a storage write there could
    wait forever on a lock the interrupted code holds)."""
    trial_id, stop = trial._trial._trial_id, threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            studies.record_heartbeat(study._storage, trial_id)

    def on_signal(signum: int) -> None:
        trial.stop_signal = signum
        log.warning("trial %d asked to stop (signal %d)", trial.number, signum)
        if not trial.polled:
            raise Stopped(signum)

    def mark_preempted(handover) -> None:
        # Released: no handler of a scheduler takes the job over to requeue it, so the next sweep
        # run may adopt the trial at once instead of waiting for its heartbeat to age.
        stop.set()
        thread.join()
        studies.mark_preempted(study._storage, trial_id, released=not handover.requeued)

    studies.record_heartbeat(study._storage, trial_id)
    thread = threading.Thread(target=beat, name="sweepkit-trial-heartbeat", daemon=True)
    thread.start()
    try:
        with on_preemption(on_signal, on_stopped=mark_preempted):
            yield
    finally:
        stop.set()
        thread.join()


class _ChildRun:
    """The trial's MLflow child run, active (fluent) while the task runs; a requeued or adopted job
    continues the run its first attempt started."""

    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id

    @classmethod
    def open(cls, study: optuna.Study, trial: SweepTrial, parent_run_id: str | None) -> _ChildRun:
        """The child run, when the sweep tracks to MLflow (the sweeper names the parent run)."""
        if parent_run_id is None:
            return cls(None)
        from sweepkit.mlflow_runs import open_child_run

        attrs = study.user_attrs
        tags = {"optuna.study": study.study_name, "optuna.trial_number": str(trial.number)}
        trial.mlflow_run_id = open_child_run(
            attrs[studies.MLFLOW_URI],
            attrs[studies.MLFLOW_EXPERIMENT_ID],
            parent_run_id,
            f"trial-{trial.number}",
            tags,
            trial.user_attrs.get(studies.MLFLOW_RUN_ID),
        )
        trial.set_user_attr(studies.MLFLOW_RUN_ID, trial.mlflow_run_id)
        return cls(trial.mlflow_run_id)

    def end(self, status: str, tags: Mapping[str, str] | None = None, outcome: str | None = None) -> None:
        if self.run_id is None:
            return
        from sweepkit.mlflow_runs import end_child_run

        end_child_run(self.run_id, status, tags or {}, outcome)
