"""MLflow's side of sweepkit, every run in one place: the store (``tracking.uri`` made absolute, its
lock, the experiment), a single run's tracker (``tracking=mlflow``), a sweep trial's child run, and
the sweep's parent run.

Runs are written through ``MlflowClient`` (no fluent, process-global active run), so a sweep holding
its parent run and an in-process trial logging its child never collide; only a trial's child is made
the active run, for the task's own ``mlflow.log_metric``. MLflow is imported only when a run is
opened (the import alone costs about a second), Optuna only by the parent run.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import posixpath
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass, url2pathname

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs there start one at a time
    fcntl = None

from sweepkit import studies
from sweepkit.errors import ConfigError
from sweepkit.tracking import Status, tracks_to_mlflow

if TYPE_CHECKING:
    import optuna

    from sweepkit.studies import StudySummary

log = logging.getLogger("sweepkit")
MAX_KEY = 250  # MLflow's limit on a param, metric or tag name
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
MAX_TAG_VALUE = 8000  # MLflow's limit on a tag value
BATCH = 100  # MLflow takes at most 100 params or tags per log_batch call
# Checkpoints run to tens of MB: in a local artifact store they are reflinked (a copy-on-write clone,
# instant on btrfs and XFS) where the file system can, and copied otherwise. Never hard-linked: a later
# write to the run folder's file (a user's cp over it) would change the finished run's artifact too.
CLONABLE_SUFFIXES = (".pt",)
FICLONE = 0x40049409  # Linux ioctl: make the target share the source's extents, copy-on-write
SYSTEM_METRICS_INTERVAL_S = 10  # MLflow's own default; MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides it
CONNECT_TIMEOUT_S = 5
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")  # MLflow accepts alphanumerics, _ - . space : and /


def mlflow_key(key: str) -> str:
    """``key`` as MLflow accepts a name: allowed characters only, a plain relative path, 250 at most."""
    name = _BAD_KEY_CHARS.sub("_", str(key))[:MAX_KEY]
    if posixpath.normpath(name) != name or name.startswith("/"):  # "a//b", "a/", "/a", "./a"
        name = name.replace("/", "_")
    if name in ("", ".") or name.startswith(".."):
        name = "_" + name[1:]
    return name


def param_items(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow can store them: valid names, values cut to 6,000 characters, and of two names
    that become one, the first."""
    items: dict[str, str] = {}
    for key, value in params.items():
        items.setdefault(mlflow_key(key), str(value)[:MAX_PARAM_VALUE])
    return items


def tag_values(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tag values as MLflow stores them: strings cut to its limit."""
    return {key: str(value)[:MAX_TAG_VALUE] for key, value in tags.items()}


def default_store(launch_dir: Path) -> tuple[str, str]:
    """MLflow's own default store in the launch directory, absolute: (tracking URI, artifact location)."""
    launch_dir = launch_dir.resolve()
    return f"sqlite:///{launch_dir / 'mlflow.db'}", (launch_dir / "mlartifacts").as_uri()


def check_reachable(uri: str) -> None:
    """Refuse, at once, an http(s) tracking URI nothing listens on (MLflow would retry for minutes)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    if parts.scheme in getproxies() and not proxy_bypass(parts.hostname or ""):
        return  # reached through a proxy: only MLflow's own requests can tell
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise ConfigError(
            "tracking.uri",
            uri,
            f"cannot be reached ({reason}): start the tracking server or correct the address",
        ) from None


def resolve_store(uri: str | None, launch_dir: Path) -> tuple[str, str | None]:
    """``tracking.uri`` made absolute once (and a server checked to answer); the artifact location to
    give new experiments.

    A local store keeps artifacts in ``mlartifacts/`` beside its database, so runs started from any
    working directory land together; a tracking server decides its artifact store itself.
    """
    if uri is None:
        return default_store(launch_dir)
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(
            "tracking.uri",
            repr(uri),
            "must be null (mlflow.db in the launch directory) or an MLflow tracking URI",
        )
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db = (db if db.is_absolute() else launch_dir / db).resolve()
        return f"sqlite:///{db}", (db.parent / "mlartifacts").as_uri()
    if "://" not in uri and uri not in ("databricks", "databricks-uc"):  # a plain folder: MLflow's file store
        return str((launch_dir / uri).resolve()), None
    check_reachable(uri)
    return uri, None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold a lock beside a local SQLite store (``mlflow.db-lock``) while it is opened: exclusive
    when the database is still to be made, shared (so openers wait only for its maker) after.

    MLflow creates a fresh database's tables on first use; processes doing so at once (parallel
    jobs of a multirun, a job array) break it with "table already exists" or worse.
    """
    if fcntl is None or not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}-lock", "a") as handle:
        made = db.exists() and db.stat().st_size > 0
        fcntl.flock(handle, fcntl.LOCK_SH if made else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_sqlite_store(db: Path) -> None:
    """Make a fresh SQLite store as MLflow makes one (its first tables, then each of its ~70 schema
    migrations), without flushing the disk at every step: those flushes were 5 of the 6 s a fresh
    store took on a busy disk. Built beside its place, flushed once and moved there whole, so no
    process ever opens half a store; the caller holds ``store_lock``'s exclusive lock. A store there
    already, a system without that lock, or an MLflow without this step: MLflow makes it itself."""
    if fcntl is None or (db.exists() and db.stat().st_size > 0):
        return
    import sqlalchemy
    from mlflow.store.db import utils

    initialize = getattr(utils, "_initialize_tables", None)  # what SqlAlchemyStore runs on an empty database
    if initialize is None:
        return
    building = db.with_name(f"{db.name}-new")
    building.unlink(missing_ok=True)  # left by a maker that was killed
    engine = sqlalchemy.create_engine(f"sqlite:///{building}")
    sqlalchemy.event.listen(engine, "connect", _without_flushes)
    try:
        initialize(engine)
        engine.dispose()
        _flush(building)
        os.replace(building, db)
        _flush(db.parent)
    except Exception as err:  # MLflow makes the store itself, and says what is wrong if it cannot
        log.debug("making %s beside its place failed (MLflow makes it): %s", db, err)
        engine.dispose()
        building.unlink(missing_ok=True)


def _without_flushes(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")  # a crash leaves only the file being built, never the store
    cursor.execute("PRAGMA journal_mode=MEMORY")
    cursor.close()


def _flush(path: Path) -> None:
    """Write ``path`` (a file, or a folder's entries) to the disk."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def ensure_experiment(client, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created when missing (several processes may race to create it)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":  # its name stays taken until `mlflow gc`
        raise ConfigError(
            "tracking.experiment",
            name,
            f"was deleted in MLflow: restore it (mlflow experiments restore --experiment-id {experiment.experiment_id}) or choose another name",
        )
    return experiment.experiment_id


def open_experiment(
    uri: str, experiment: str, artifact_location: str | None, experiment_id: str | None = None
):
    """An ``MlflowClient`` on ``uri`` and the id of ``experiment`` (created when missing), with the
    store opened under its lock: parallel jobs and sweep workers may open one fresh mlflow.db at once."""
    from mlflow import MlflowClient

    if uri.startswith("sqlite:"):
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (half a second: import before taking the lock)
    with store_lock(uri):  # opening the store makes a fresh one's tables
        if uri.startswith("sqlite:///"):
            make_sqlite_store(Path(uri.removeprefix("sqlite:///")))
        client = MlflowClient(uri)
        return client, experiment_id or ensure_experiment(client, experiment, artifact_location)


def source_tags() -> dict[str, str]:
    """Who started the run and with what, as MLflow's UI shows them ("Created by", "Source")."""
    tags = {
        "mlflow.source.name": Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python",
        "mlflow.source.type": "LOCAL",
    }
    try:
        tags["mlflow.user"] = getpass.getuser()
    except (KeyError, OSError):  # no user name in this container
        pass
    return tags


class MlflowTracker:
    """Logs one run to MLflow: params, per-epoch metrics in one batched call, artifacts, status."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        artifact_location: str | None = None,
        experiment_id: str | None = None,
        system_metrics: bool = False,
        run_id: str | None = None,
    ) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.tracking_uri, self.system_metrics = tracking_uri, system_metrics
        self.client, self.experiment_id = open_experiment(
            tracking_uri, experiment, artifact_location, experiment_id
        )
        self.run_id: str | None = run_id  # given: a run made already (a sweep trial's child run) to log into
        self._ends_run = run_id is None  # a given run is ended by its maker, which knows how the trial ended
        self.artifact_uri: str | None = None
        self._monitor = None
        self._ended = False

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        from mlflow.entities import Param, RunTag
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

        all_tags = tag_values({**source_tags(), **tags})
        if self.run_id is None:
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
            all_tags = {}  # the run holds them already
        else:
            run = self._given_run()
            all_tags[MLFLOW_RUN_NAME] = run_name  # renamed in the batch that logs its params
        logged = run.data.params  # a resumed trial's run holds its params already (they cannot change)
        self.run_id, self.artifact_uri = run.info.run_id, run.info.artifact_uri
        try:
            self._log_in_batches(
                [Param(k, v) for k, v in param_items(params).items() if k not in logged],
                [RunTag(k, v) for k, v in all_tags.items()],
            )
            if self.system_metrics:
                self._start_system_metrics()
        except BaseException as err:  # never leave a run RUNNING that nothing will end
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            with contextlib.suppress(Exception):  # the error to see is ``err``
                self.end(status, f"recording the run's params failed: {type(err).__name__}: {err}")
            raise

    def _given_run(self):
        """The run made already to log into, as its maker last read it when it made it the active run
        (a trial's child run: no second read); any other is read and set RUNNING."""
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            return active
        self.client.update_run(self.run_id, status="RUNNING")
        return self.client.get_run(self.run_id)

    def _log_in_batches(self, params: list, tags: list) -> None:
        """Params and tags together, as few calls as MLflow's limit per call allows."""
        for i in range(0, max(len(params), len(tags)), BATCH):
            self.client.log_batch(
                self.run_id, params=params[i : i + BATCH], tags=tags[i : i + BATCH], synchronous=True
            )

    def _start_system_metrics(self) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(
            self.run_id,
            sampling_interval=SYSTEM_METRICS_INTERVAL_S,
            samples_before_logging=1,
            tracking_uri=self.tracking_uri,
        )
        self._monitor.start()

    def _stop_system_metrics(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        try:
            monitor.finish()
            # MLflow's monitor drops the sample of the interval the run ended in: a run shorter
            # than one interval would have no system metrics at all.
            last = monitor.aggregate_metrics()
            if last:
                monitor.publish_metrics(last)
                monitor.mlflow_logger.flush()
        except Exception as err:  # system metrics are a convenience: never fail the run for them
            log.warning("system metrics: could not log the last sample: %s", err)

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._log_batch(metrics, step=epoch)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._log_batch(metrics, step=0)

    def _log_batch(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, step) for name, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self._log_in_batches([], [RunTag(k, v) for k, v in tag_values(tags).items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.suffix in CLONABLE_SUFFIXES and self._reflink_into_local_store(path, artifact_path):
            return
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.exists():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def _reflink_into_local_store(self, path: Path, artifact_path: str | None) -> bool:
        """Clone a checkpoint into a local artifact store (copy-on-write, no bytes copied). False
        (then MLflow copies it) for a remote store, a file system without reflinks, or a missing file."""
        if fcntl is None or not (self.artifact_uri or "").startswith("file:") or not path.is_file():
            return False
        target = Path(url2pathname(urlsplit(self.artifact_uri).path)) / (artifact_path or "") / path.name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as source, open(target, "wb") as clone:
                fcntl.ioctl(clone.fileno(), FICLONE, source.fileno())
        except OSError:
            target.unlink(missing_ok=True)
            return False
        return True

    def watch(self, model: Any, sample_inputs: Callable[[], Any]) -> None:
        pass  # the checkpoints hold the model; MLflow has no graph view

    def end(self, status: Status, error: str | None = None) -> None:
        """Terminate the run it made with ``status`` (once; later calls do nothing), ``error`` as its tag."""
        if self.run_id is None or self._ended:
            return
        self._ended = True
        self._stop_system_metrics()
        if error:
            self.set_tags({"error": error})
        if self._ends_run:
            self.client.set_terminated(self.run_id, status)


def open_child_run(
    uri: str, experiment_id: str, parent_run_id: str, name: str, tags: Mapping[str, str], run_id: str | None
) -> str:
    """A sweep trial's child run under the sweep's parent, made the active (fluent) MLflow run so that
    the task's own ``mlflow.log_metric`` lands in it. ``run_id``: the run of an earlier attempt of the
    same trial (requeued or adopted), continued, its stale error tag removed."""
    import mlflow

    client, _ = open_experiment(uri, "", None, experiment_id)
    if run_id is None:
        all_tags = {**source_tags(), **tags, "mlflow.parentRunId": parent_run_id}
        run_id = client.create_run(experiment_id, run_name=name, tags=tag_values(all_tags)).info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
        for stale in ("error", "optuna.state"):
            with contextlib.suppress(Exception):  # absent
                client.delete_tag(run_id, stale)
    mlflow.set_tracking_uri(uri)
    mlflow.start_run(run_id=run_id)
    return run_id


def end_child_run(run_id: str, status: Status, tags: Mapping[str, str], outcome: str | None = None) -> None:
    """End a trial's child run (the active one) with ``status`` and the trial's outcome as tags;
    ``outcome`` (``pruned@3``, ``failed``) goes into the run's name (``outcome_name``)."""
    import mlflow

    client = mlflow.MlflowClient()
    mark_outcome(client, run_id, tags, outcome)
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(status)
    else:
        client.set_terminated(run_id, status)


def close_child(client_uri: str, run_id: str, reason: str) -> None:
    """End a trial's child run that its process left RUNNING (it died): FAILED, with the reason."""
    from mlflow import MlflowClient

    client = MlflowClient(client_uri)
    try:
        run = client.get_run(run_id)
        if run.info.status == "RUNNING":
            mark_outcome(
                client, run_id, {"optuna.state": "FAIL", "error": reason}, "failed", run.info.run_name
            )
            client.set_terminated(run_id, "FAILED")
    except Exception as err:  # the store may be unreachable; the Optuna state is what counts
        log.warning("could not close MLflow run %s: %s", run_id, err)


def mark_outcome(
    client, run_id: str, tags: Mapping[str, str], outcome: str | None, name: str | None = None
) -> None:
    """A trial's outcome on its child run, in one call: the tags (cut to MLflow's limit), and
    ``outcome`` at the front of the run's name (``outcome_name``; ``name``: the run's name, read when
    not given)."""
    from mlflow.entities import RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    items = tag_values(tags)
    if outcome:
        if name is None:
            name = client.get_run(run_id).info.run_name
        items[MLFLOW_RUN_NAME] = outcome_name(name or "", outcome)  # the store renames the run too
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in items.items()])


def outcome_name(name: str, outcome: str) -> str:
    """A run's name with how its trial ended at the front, once (``pruned@3 trial-7-mlp-digits-...``),
    where the runs table's narrow name column still shows it, a child run's indented most: a pruned
    trial's status is FINISHED like a completed one's (MLflow has no status for it), and tags are
    columns one must add. Sorting by name then gathers the pruned."""
    return name if name.startswith(f"{outcome} ") else f"{outcome} {name}".strip()


def mlflow_tracker(cfg: Mapping[str, Any], launch_dir: Path) -> MlflowTracker:
    """The MLflow tracker that ``tracking.uri``, ``tracking.experiment`` and the keys beside them describe."""
    if not isinstance(cfg["experiment"], str) or not cfg["experiment"].strip():
        raise ConfigError(
            "tracking.experiment", repr(cfg["experiment"]), "must be a non-empty experiment name"
        )
    uri, artifact_location = resolve_store(cfg["uri"], launch_dir)
    if cfg["artifact_location"]:
        artifact_location = cfg["artifact_location"]
    return MlflowTracker(uri, cfg["experiment"], artifact_location, system_metrics=cfg["system_metrics"])


# -- the sweep's parent run ---------------------------------------------------------------------
class ParentRun:
    """One parent run per study, reused when the sweep resumes or another worker joins it."""

    def __init__(self, client, run_id: str, metric_names: list[str]) -> None:
        self.client, self.run_id, self.metric_names = client, run_id, metric_names

    @classmethod
    def open(
        cls, tracking: Mapping[str, Any], launch_dir: Path, study: optuna.Study, params: Mapping[str, Any]
    ) -> ParentRun | None:
        """Create (or reopen) the tracking database, experiment and parent run before any trial."""
        if not tracks_to_mlflow(tracking):
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
        for i in range(0, len(items), BATCH):
            client.log_batch(run.info.run_id, params=items[i : i + BATCH])
        study.set_user_attr(studies.MLFLOW_PARENT_RUN_ID, run.info.run_id)
        return run.info.run_id

    def log_summary(self, summary: StudySummary, n_trials: int, artifacts: list[Path]) -> None:
        """Best value and trial, counts per state, epochs run against the budget, plots."""
        from optuna.trial import TrialState

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
        tags = {"best_trial": str(summary.best_number)} if summary.best_number is not None else {}
        self._log(metrics, tags, step)
        for path in artifacts:
            self.client.log_artifact(self.run_id, str(path), "plots" if path.suffix == ".png" else None)

    def log_scaling(self, fits) -> None:
        """The lr-vs-batch law (sweepkit.scaling_law): alpha, its interval and the break as metrics,
        the verdict as a tag."""
        metrics = {name: value for fit in fits for name, value in fit.metrics().items()}
        self._log(metrics, {key: value for fit in fits for key, value in fit.tags().items()}, step=0)

    def _log(self, metrics: Mapping[str, float], tags: Mapping[str, str], step: int) -> None:
        from mlflow.entities import Metric, RunTag

        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), 0, step) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tag_values(tags).items()],
        )

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


def objective(study: optuna.Study) -> str:
    """What the study optimizes, as the parent run's ``objective`` param: ``val/acc maximize``."""
    return ", ".join(
        f"{name} {d.name.lower()}" for name, d in zip(studies.metric_names(study), study.directions)
    )
