"""Optuna studies shared by the sweeper, its trial jobs and the report: storage, liveness, summary.

Optuna's own heartbeat exists only for RDB storages, and the default storage here is a journal
file; so liveness is kept in one way for every storage: whoever runs or waits for a trial writes
the time into the trial's system attribute ``sweepkit:heartbeat``, and a RUNNING trial whose
heartbeat is older than the grace period belongs to a dead process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sweepkit.errors import ConfigError

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

DEFAULT_JOURNAL = "optuna.journal"
HEARTBEAT = "sweepkit:heartbeat"  # system attr: unix time of the last sign of life
PREEMPTED = "sweepkit:preempted"  # system attr: unix time its job stopped on a signal, to be resumed
RELEASED = "sweepkit:released"  # system attr: its stopped job will not resume it itself (no requeue)
# user attrs a trial job writes (the report and the parent run read them)
EPOCHS_RUN, MAX_EPOCHS = "epochs_run", "max_epochs"
PRUNED_EPOCH, PRUNE_REASON = "pruned_epoch", "prune_reason"
FAIL_REASON, MLFLOW_RUN_ID = "fail_reason", "mlflow_run_id"
WORKER = "worker"  # host:pid of the process that ran the trial's job (its latest attempt)
LR_EFFECTIVE = "lr_effective"  # the lr the trial trained with (optimizer.lr scaled by lr_scaling.rule)
# study user attrs the sweeper writes before the first trial
MLFLOW_URI, MLFLOW_EXPERIMENT_ID, MLFLOW_PARENT_RUN_ID = (
    "mlflow_tracking_uri",
    "mlflow_experiment_id",
    "mlflow_parent_run_id",
)
SEARCH_SPACE = "search_space"  # study user attr: {param: Optuna distribution as JSON}, set by the first run
SWEEP_PROCESSES = "sweep_processes"  # study user attr: how many sweep processes have joined the study
# FAIL reasons that say nothing about the search (not counted against max_failure_rate)
SURPLUS = "surplus: n_trials was reached by another worker"
STALE = "stale: no heartbeat from its process (killed or lost)"
NOT_STARTED = "not started: the sweep was stopped before this trial began"
UNCOUNTED_FAILURES = ("surplus", "stale", "not started")


def storage_url(storage: str | None, launch_dir: Path) -> str:
    """``hydra.sweeper.storage`` made canonical and absolute once, so every process opens the same.

    None means ``optuna.journal`` in the launch directory; a plain path is a journal file; a URL
    (``sqlite:///study.db``, ``postgresql://...``) is an Optuna RDB storage, relative SQLite paths
    taken from the launch directory.
    """
    if storage is None:
        return str((launch_dir / DEFAULT_JOURNAL).resolve())
    if storage.startswith("sqlite:///"):
        path = Path(storage.removeprefix("sqlite:///"))
        return f"sqlite:///{(path if path.is_absolute() else launch_dir / path).resolve()}"
    if "://" in storage:
        return storage
    path = Path(storage).expanduser()
    return str((path if path.is_absolute() else launch_dir / path).resolve())


def open_storage(url: str) -> BaseStorage:
    """The Optuna storage behind a canonical URL: a journal file (NFS-safe locks) or an RDB; one per
    process and URL, so that a long-lived worker's next trial reads only what the journal gained
    since (a fresh journal storage replays the whole file) and an RDB keeps its connections."""
    return _open_storage(url, os.getpid())  # a forked child opens its own


@functools.lru_cache(maxsize=16)
def _open_storage(url: str, pid: int) -> BaseStorage:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" not in url:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    try:
        return _rdb_storage(url)
    except (ImportError, ModuleNotFoundError) as err:
        raise ConfigError(
            "hydra.sweeper.storage", url, f"needs a database driver that is not installed ({err})"
        ) from err
    except Exception as err:  # sqlalchemy reports unreachable servers and bad URLs in many types
        if isinstance(err, optuna.exceptions.OptunaError):
            raise
        raise ConfigError("hydra.sweeper.storage", url, f"cannot be opened: {err}") from err


SCHEMA_RACE_RETRIES = 5
# what a loser of the race to make a fresh database's schema is told: its CREATE TABLE, or its row in
# alembic's version table (SQLite's words), came second
SCHEMA_RACES = ("already exists", "UNIQUE constraint failed: alembic_version")


def _rdb_storage(url: str) -> BaseStorage:
    """An Optuna RDB storage, safe for workers that open one fresh database at the same moment:
    they race to create Optuna's tables and types, and the losers' CREATE fails with "already
    exists"; opening again then finds the schema made."""
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(1, SCHEMA_RACE_RETRIES):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs)
        except (IntegrityError, OperationalError, ProgrammingError) as err:  # SQLite: OperationalError
            if not any(race in str(err) for race in SCHEMA_RACES):
                raise
            time.sleep(0.2 * attempt)
    return RDBStorage(url, engine_kwargs=engine_kwargs)


def load(path_or_url: str | Path, name: str | None = None, launch_dir: Path | None = None) -> optuna.Study:
    """Open a study from Python, as ``optuna.load_study`` cannot from a plain path: ``path_or_url`` is
    a journal file (``optuna.journal``), a sweep folder (its ``study.yaml`` names study and storage),
    or an Optuna RDB URL (``sqlite:///study.db``, ``postgresql://...``). ``name`` picks the study; None
    takes the only one. Nothing is created: a missing journal or SQLite file is an error.

        study = sweepkit.studies.load("multirun/lr_batch_optimizer")
        study.trials_dataframe()
    """
    import optuna
    import yaml

    target = str(path_or_url)
    folder = Path(target).expanduser()
    if "://" not in target and folder.is_dir():
        if not (folder / "study.yaml").is_file():
            raise ConfigError(
                "study",
                target,
                "is a folder without study.yaml: give a sweep folder, a journal file or a storage URL",
            )
        recorded = yaml.safe_load((folder / "study.yaml").read_text())
        target, name = recorded["storage"], name or recorded["study_name"]
    url = storage_url(target, launch_dir or Path.cwd())
    local = (
        Path(url.removeprefix("sqlite:///"))
        if url.startswith("sqlite:///")
        else None
        if "://" in url
        else Path(url)
    )
    if local is not None and not local.is_file():
        raise ConfigError(
            "study",
            target,
            "does not exist: give a journal file (optuna.journal), a sweep folder or a storage URL",
        )
    if "://" not in url:
        from sweepkit import journal

        journal.check(Path(url))
    storage = open_storage(url)
    names = [n for n in study_names(storage) if not is_lock_study(n)]
    if name is None and len(names) != 1:
        raise ConfigError(
            "name", None, f"must name one of the studies in {url}: {', '.join(names) or '(none)'}"
        )
    if name is not None and name not in names:
        raise ConfigError("name", name, f"is not a study in {url}; it holds: {', '.join(names) or '(none)'}")
    return optuna.load_study(study_name=name or names[0], storage=storage)


def study_names(storage: BaseStorage) -> list[str]:
    """The names of the studies in a storage, in the order they were made."""
    return [s.study_name for s in storage.get_all_studies()]


def name_metrics(study: optuna.Study, names: list[str]) -> None:
    """Give the study its objective's metric names (``val/acc``), so Optuna's plots, optuna-dashboard
    and the results file say them; a study made before names were recorded gets them now, and a
    study that records others is refused (its values would be read under the wrong name)."""
    from optuna.exceptions import ExperimentalWarning

    recorded = study.metric_names
    if recorded is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(list(names))
    elif list(recorded) != list(names):
        raise ConfigError(
            "objective.metric",
            names,
            f"differs from study {study.study_name}'s {recorded}; use a new study_name",
        )


def metric_names(study: optuna.Study) -> list[str]:
    """The study's metric names, or Optuna's own generic ones for a study that has none."""
    if study.metric_names is not None:
        return list(study.metric_names)
    return (
        ["Objective Value"]
        if len(study.directions) == 1
        else [f"Objective {i}" for i in range(len(study.directions))]
    )


LOCK_TAKEOVER_S = 120.0  # a lock held this long belongs to a process that died holding it
LOCK_MARK = ":lock:"  # in the name of a study_mutex's sidecar study


class _QuietLockStudies(logging.Filter):
    """Drops Optuna's "A new study created ... with name: <study>:lock:<purpose>": a lock is no study."""

    def filter(self, record: logging.LogRecord) -> bool:
        return LOCK_MARK not in record.getMessage()


def _quiet_lock_studies() -> None:
    """Install the filter on the loggers of every storage that logs a study's creation (once)."""
    for name in (
        "optuna.storages.journal._storage",
        "optuna.storages._rdb.storage",
        "optuna.storages._in_memory",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietLockStudies) for f in logger.filters):
            logger.addFilter(_QuietLockStudies())


def is_lock_study(name: str) -> bool:
    """Whether a study in the storage is a study_mutex's lock (listings of studies should skip it)."""
    return LOCK_MARK in name


@contextlib.contextmanager
def study_mutex(study: optuna.Study, purpose: str, takeover_after: float = LOCK_TAKEOVER_S) -> Iterator[None]:
    """A lock that every process sharing the study's storage respects, whatever the storage: a
    sidecar study ``<study>:lock:<purpose>``, whose creation is atomic in every Optuna storage
    (journal, SQLite, PostgreSQL). It exists only while held."""
    from optuna.exceptions import DuplicatedStudyError
    from optuna.study import StudyDirection

    name = f"{study.study_name}{LOCK_MARK}{purpose}"
    _quiet_lock_studies()
    waited_since = time.monotonic()
    while True:
        try:
            study._storage.create_new_study([StudyDirection.MINIMIZE], name)
            break
        except DuplicatedStudyError:
            if time.monotonic() - waited_since > takeover_after:
                _delete_study_if_present(name, study._storage)
                waited_since = time.monotonic()
            time.sleep(0.1)
    try:
        yield
    finally:
        _delete_study_if_present(name, study._storage)


def _delete_study_if_present(name: str, storage: BaseStorage) -> None:
    try:
        storage.delete_study(storage.get_study_id_from_name(name))
    except KeyError:
        pass


def record_heartbeat(storage: BaseStorage, trial_id: int) -> None:
    """Mark a trial alive now (a trial that finished meanwhile is left alone)."""
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())
    except (UpdateFinishedTrialError, RuntimeError):
        pass


def last_sign_of_life(trial: FrozenTrial) -> float:
    """The trial's last heartbeat, or its start time when it never beat."""
    if HEARTBEAT in trial.system_attrs:
        return float(trial.system_attrs[HEARTBEAT])
    return trial.datetime_start.timestamp() if trial.datetime_start else time.time()


def _silent_running(study: optuna.Study, seconds: float) -> list[FrozenTrial]:
    from optuna.trial import TrialState

    now = time.time()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t for t in running if now - last_sign_of_life(t) > seconds]


def stale_trials(study: optuna.Study, grace_period: float) -> list[FrozenTrial]:
    """RUNNING trials whose process died: no sign of life for ``grace_period`` seconds, not preempted."""
    return [t for t in _silent_running(study, grace_period) if not t.system_attrs.get(PREEMPTED)]


def preempted_trials(study: optuna.Study, heartbeat_interval: float) -> list[FrozenTrial]:
    """RUNNING trials stopped by a signal that nobody has taken up again: released by their job (it
    will not requeue them itself), or silent since (a requeued job would beat again).

    They are resumed under the same number from their own folder's last.pt, not failed.
    """
    from optuna.trial import TrialState

    now = time.time()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [
        t
        for t in running
        if t.system_attrs.get(PREEMPTED)
        and (t.system_attrs.get(RELEASED) or now - last_sign_of_life(t) > 2 * heartbeat_interval)
    ]


def mark_preempted(storage: BaseStorage, trial_id: int, released: bool) -> None:
    """The trial's job stopped on a signal: resume it, not fail it; ``released``: adopt it at once."""
    storage.set_trial_system_attr(trial_id, PREEMPTED, time.time())
    storage.set_trial_system_attr(trial_id, RELEASED, released)


def take_up(storage: BaseStorage, trial: FrozenTrial) -> None:
    """A job starts (or resumes) the trial: it is no longer waiting to be adopted."""
    if trial.system_attrs.get(PREEMPTED):
        storage.set_trial_system_attr(trial._trial_id, PREEMPTED, None)
        storage.set_trial_system_attr(trial._trial_id, RELEASED, False)


def join_study(study: optuna.Study) -> int:
    """Register one more sweep process with the study; returns its index (0 for the first ever)."""
    with study_mutex(study, "join"):
        index = int(study.user_attrs.get(SWEEP_PROCESSES, 0))
        study.set_user_attr(SWEEP_PROCESSES, index + 1)
    return index


def process_seed(seed: int, index: int) -> int:
    """The sampler seed of the ``index``-th sweep process of a study: the configured seed for the first,
    so a fresh study is reproducible; another, derived one for each resume and each extra worker, so
    that none replays the points the study already has."""
    if index == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "little")


def trial_id(study: optuna.Study, number: int) -> int:
    """A trial's storage id from its number: they differ, and only the storage maps one to the other.

    Optuna offers no public call for this (nor for writing attributes of a trial held by another
    process), so the private storage access lives here, in one place.
    """
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def set_trial_user_attr(study: optuna.Study, number: int, key: str, value) -> None:
    """Write a user attribute of trial ``number`` from any process."""
    study._storage.set_trial_user_attr(trial_id(study, number), key, value)


def fail_trial(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Tell a RUNNING trial FAIL with a reason; False when another process finished it first."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        set_trial_user_attr(study, trial.number, FAIL_REASON, reason[:2000])
        study.tell(trial.number, state=TrialState.FAIL)
    except (UpdateFinishedTrialError, RuntimeError, ValueError):
        return False
    return True


RETRY_OF = "retry_of"  # user attr of a trial that re-runs the params of a lost one


def retry_once(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Enqueue the params of a lost trial again, unless it was itself a retry.

    (Optuna's RetryFailedTrialCallback would copy the lost trial's attributes, its stale heartbeat
    among them, so that the retry would look dead before it starts.)
    """
    if RETRY_OF in trial.user_attrs:
        return False
    study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
    return True


def is_counted_failure(trial: FrozenTrial) -> bool:
    """A FAIL that says something about the search (not a lost process, not surplus, not unstarted)."""
    reason = str(trial.user_attrs.get(FAIL_REASON, ""))
    return not reason.startswith(UNCOUNTED_FAILURES)


@dataclass
class StudySummary:
    """What a sweep has done so far: trials per state, the best, and the epochs pruning saved."""

    counts: dict[str, int]
    epochs_run: int
    epochs_budget: int
    best_number: int | None
    best_values: list[float] | None

    @property
    def finished(self) -> int:
        return self.counts.get("COMPLETE", 0) + self.counts.get("PRUNED", 0)

    @property
    def epochs_saved_share(self) -> float:
        return 1.0 - self.epochs_run / self.epochs_budget if self.epochs_budget else 0.0


def epochs_of(trial: FrozenTrial) -> tuple[int, int]:
    """(epochs run, epochs budgeted) of one trial; the budget is its trainer.max_epochs."""
    run = int(trial.user_attrs.get(EPOCHS_RUN, len(trial.intermediate_values)))
    return run, int(trial.user_attrs.get(MAX_EPOCHS, run))


def summarize(study: optuna.Study) -> StudySummary:
    """Counts per state, epochs run against the budget (COMPLETE and PRUNED trials), the best trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name for t in trials)
    results = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    run = sum(epochs_of(t)[0] for t in results)
    budget = sum(epochs_of(t)[1] for t in results)
    best_number, best_values = None, None
    if len(study.directions) == 1 and any(t.state == TrialState.COMPLETE for t in trials):
        best = study.best_trial
        best_number, best_values = best.number, best.values
    return StudySummary(dict(counts), run, budget, best_number, best_values)
