"""Run tracking behind a small Protocol: MLflow, or nothing (``tracking=none``).

The MLflow tracker talks to one run through ``MlflowClient`` (no fluent, process-global active run),
so a sweep holding its parent run and an in-process trial logging its child never collide.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from sweepkit.errors import one_of

log = logging.getLogger("sweepkit")
Status = Literal["FINISHED", "FAILED", "KILLED"]
BACKENDS = ("mlflow", "none")
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
MAX_TAG_VALUE = 8000  # MLflow's limit on a tag value
BATCH = 100  # MLflow takes at most 100 params or tags per log_batch call


class RunTracker(Protocol):
    """What a training run tells its tracker, from start to end."""

    run_id: str | None

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None: ...

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def end(self, status: Status, error: str | None = None) -> None: ...


class NoTracker:
    """Tracks nothing (``tracking=none``, tests)."""

    run_id: str | None = None

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        pass

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def end(self, status: Status, error: str | None = None) -> None:
        pass


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings as dotted keys: ``{"a": {"b": 1}}`` gives ``("a.b", 1)``."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{name}.")
        else:
            yield name, value


def default_store(launch_dir: Path) -> tuple[str, str]:
    """MLflow's own default store in the launch directory, absolute: (tracking URI, artifact location)."""
    launch_dir = launch_dir.resolve()
    return f"sqlite:///{launch_dir / 'mlflow.db'}", (launch_dir / "mlartifacts").as_uri()


def resolve_store(uri: str | None, launch_dir: Path) -> tuple[str, str | None]:
    """``tracking.uri`` made absolute once; the artifact location to give new experiments.

    A local store keeps artifacts in ``mlartifacts/`` beside its database, so runs started from any
    working directory land together; a tracking server decides its artifact store itself.
    """
    if uri is None:
        return default_store(launch_dir)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db = db if db.is_absolute() else (launch_dir / db)
        return f"sqlite:///{db.resolve()}", (db.resolve().parent / "mlartifacts").as_uri()
    if "://" not in uri:  # a plain folder: MLflow's file store
        return str((launch_dir / uri).resolve()), None
    return uri, None


def ensure_experiment(client, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created when missing (several processes may race to create it)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


class MlflowTracker:
    """Logs one run to MLflow: params, per-epoch metrics in one batched call, artifacts, status."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        artifact_location: str | None = None,
        parent_run_id: str | None = None,
        experiment_id: str | None = None,
        system_metrics: bool = False,
    ) -> None:
        from mlflow import MlflowClient

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.client = MlflowClient(tracking_uri)
        self.tracking_uri, self.parent_run_id, self.system_metrics = tracking_uri, parent_run_id, system_metrics
        self.experiment_id = experiment_id or ensure_experiment(self.client, experiment, artifact_location)
        self.run_id: str | None = None
        self._monitor = None

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        all_tags = dict(tags)
        if self.parent_run_id:
            all_tags["mlflow.parentRunId"] = self.parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        self.run_id = run.info.run_id
        items = [Param(k[:250], str(v)[:MAX_PARAM_VALUE]) for k, v in params.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + BATCH], synchronous=True)
        if self.system_metrics:
            self._start_system_metrics()

    def _start_system_metrics(self) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(self.run_id, sampling_interval=1, samples_before_logging=1, tracking_uri=self.tracking_uri)
        self._monitor.start()

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

        items = [RunTag(k, str(v)[:MAX_TAG_VALUE]) for k, v in tags.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + BATCH])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.exists():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, status: Status, error: str | None = None) -> None:
        if self.run_id is None:
            return
        if self._monitor is not None:
            self._monitor.finish()
        if error:
            self.set_tags({"error": error})
        self.client.set_terminated(self.run_id, status)


def build_tracker(cfg: Mapping[str, Any], launch_dir: Path) -> RunTracker:
    """The tracker that ``tracking.backend`` names."""
    backend = cfg["backend"]
    if backend not in BACKENDS:
        raise one_of("tracking.backend", backend, BACKENDS)
    if backend == "none":
        return NoTracker()
    uri, artifact_location = resolve_store(cfg["uri"], launch_dir)
    if cfg["artifact_location"]:
        artifact_location = cfg["artifact_location"]
    return MlflowTracker(uri, cfg["experiment"], artifact_location, system_metrics=cfg["system_metrics"])
