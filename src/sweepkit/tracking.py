"""Run tracking behind a small Protocol: MLflow (``mlflow_runs``), TensorBoard (``event_files``),
several at once, or nothing (``tracking=none``).

``tracking.trackers`` maps each selected tracker's name to the function that builds it from the
``tracking`` config; ``tracking=[mlflow,tensorboard]`` merges one entry per option, and one tracker
that calls them all records the run. A new tracker is one module with such a function and one file
in ``conf/tracking/``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from sweepkit.errors import ConfigError

log = logging.getLogger("sweepkit")
Status = Literal["FINISHED", "FAILED", "KILLED"]


class RunTracker(Protocol):
    """What a training run tells its tracker, from start to end."""

    run_id: str | None

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None: ...

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def end(self, status: Status, error: str | None = None) -> None: ...

    def watch(self, model: Any, sample_inputs: Callable[[], Any]) -> None:
        """Once, before training: the model and a function giving a batch of its inputs, for
        trackers that draw the model graph or sample inputs (it is called only by those)."""


@runtime_checkable
class TrialRecorder(Protocol):
    """A tracker that compares the trials of a sweep (TensorBoard's HParams dashboard): told each
    trial's sampled params and outcome once the study knows it, after the run has ended."""

    def record_trial(
        self, number: int, params: Mapping[str, Any], state: str, details: Mapping[str, Any]
    ) -> None: ...


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

    def watch(self, model: Any, sample_inputs: Callable[[], Any]) -> None:
        pass


class Trackers:
    """Several trackers as one: each call goes to every tracker, in order."""

    def __init__(self, trackers: list[RunTracker]) -> None:
        self.trackers = trackers

    @property
    def run_id(self) -> str | None:
        """The first tracker's run id that has one (MLflow's)."""
        return next((t.run_id for t in self.trackers if t.run_id), None)

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        started: list[RunTracker] = []
        try:
            for tracker in self.trackers:
                tracker.start(run_name, params, tags)
                started.append(tracker)
        except BaseException as err:  # the ones already started must not stay RUNNING
            for tracker in started:
                with contextlib.suppress(Exception):  # the error to see is ``err``
                    tracker.end(
                        "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED",
                        f"another tracker failed to start: {err}",
                    )
            raise

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for tracker in self.trackers:
            tracker.log_epoch(epoch, metrics)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        for tracker in self.trackers:
            tracker.log_metrics(metrics)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for tracker in self.trackers:
            tracker.set_tags(tags)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        for tracker in self.trackers:
            tracker.log_artifact(path, artifact_path)

    def watch(self, model: Any, sample_inputs: Callable[[], Any]) -> None:
        for tracker in self.trackers:
            tracker.watch(model, sample_inputs)

    def end(self, status: Status, error: str | None = None) -> None:
        """End every tracker, even when one fails to; then raise the first failure."""
        failure: Exception | None = None
        for tracker in self.trackers:
            try:
                tracker.end(status, error)
            except Exception as err:
                failure = failure or err
        if failure is not None:
            raise failure


def record_trial(
    tracker: RunTracker, number: int, params: Mapping[str, Any], state: str, details: Mapping[str, Any]
) -> None:
    """Tell the trackers that compare trials how trial ``number`` ended (``state``: COMPLETE, PRUNED
    or FAIL; ``details``: pruned epoch and reason). A failure here is only logged: the study has
    the outcome already."""
    for each in tracker.trackers if isinstance(tracker, Trackers) else [tracker]:
        if isinstance(each, TrialRecorder):
            try:
                each.record_trial(number, params, state, details)
            except Exception as err:
                log.warning("could not record trial %d for %s: %s", number, type(each).__name__, err)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings as dotted keys: ``{"a": {"b": 1}}`` gives ``("a.b", 1)``."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{name}.")
        else:
            yield name, value


def tracks_to_mlflow(cfg: Mapping[str, Any]) -> bool:
    """Whether a ``tracking`` config records to MLflow."""
    return "mlflow" in tracker_names(cfg)


def tracker_names(cfg: Mapping[str, Any]) -> list[str]:
    """The names of the trackers ``tracking.trackers`` selects (an entry set to null or false is off)."""
    return [
        name for name, path in (cfg.get("trackers") or {}).items() if path is not None and path is not False
    ]


def tracker_builders(cfg: Mapping[str, Any]) -> dict[str, Callable[[Mapping[str, Any], Path], RunTracker]]:
    """The trackers ``tracking.trackers`` selects, by name: the function that builds each (checked
    to import)."""
    from hydra.utils import get_method

    builders = {}
    for name in tracker_names(cfg):
        path = cfg["trackers"][name]
        try:
            builders[name] = get_method(path)
        except Exception as err:  # Hydra wraps every import failure in its own multi-line error
            if isinstance(err.__cause__, ConfigError):  # the tracker's module says what is missing
                raise err.__cause__ from None
            allowed = "is not an importable function (package.module.function) that builds a tracker"
            raise ConfigError(f"tracking.trackers.{name}", path, allowed) from None
    return builders


def build_tracker(
    cfg: Mapping[str, Any], launch_dir: Path, given: Mapping[str, RunTracker] | None = None
) -> RunTracker:
    """The tracker that records a run for every tracker ``tracking.trackers`` selects (one tracker
    alone is returned as it is; none: ``NoTracker``). ``given`` stands in for a tracker by name
    (a sweep trial's MLflow child run). Every tracker is built, and so checked, before any starts."""
    given = given or {}
    builders = tracker_builders(cfg)
    # Building MLflow's opens its store (a fresh one is created): the others, which only check, go first.
    names = sorted(builders, key=lambda name: name == "mlflow")
    trackers = [given[name] if name in given else builders[name](cfg, launch_dir) for name in names]
    if not trackers:
        return NoTracker()
    return trackers[0] if len(trackers) == 1 else Trackers(trackers)
