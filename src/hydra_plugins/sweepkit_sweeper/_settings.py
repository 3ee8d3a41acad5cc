"""The sweeper's settings (``hydra.sweeper.*``), checked once, before anything is written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from sweepkit.errors import ConfigError, integer, number
from sweepkit.optuna_parts import build_optuna_part, part_spec


def _plain(node: Any) -> Any:
    return (
        OmegaConf.to_container(node, resolve=True)
        if isinstance(node, DictConfig | type(OmegaConf.create([])))
        else node
    )


@dataclass(frozen=True)
class SweepSettings:
    """Everything ``hydra.sweeper.*`` says, as checked values (the schema is config.SweepkitSweeperConf)."""

    direction: list[str] | str | None
    study_name: str | None
    storage: str | None
    n_trials: int
    n_jobs: int | None  # None: one per available core
    timeout: float | None
    sampler: dict[
        str, Any
    ]  # a _target_ spec; built per sweep process, with its own seed (studies.process_seed)
    pruner: Any  # as written: every trial job rebuilds the pruner from it
    params: dict[str, Any] | None
    custom_search_space: Callable[..., None] | None
    enqueue_trials: list[dict[str, Any]]
    max_failure_rate: float
    lr_range_test: dict[str, Any]
    heartbeat_interval: float
    grace_period: float
    trials_per_gpu: int | None  # parallel trials per GPU of this machine (None: no cap)

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> SweepSettings:
        """Check every setting; raise ConfigError (one line) on the first bad one."""
        key = "hydra.sweeper."
        n_trials = integer(key + "n_trials", settings["n_trials"], at_least=1)
        n_jobs = (
            integer(key + "n_jobs", settings["n_jobs"], at_least=1)
            if settings["n_jobs"] is not None
            else None
        )
        timeout = (
            number(key + "timeout", settings["timeout"], above=0) if settings["timeout"] is not None else None
        )
        max_failure_rate = number(key + "max_failure_rate", settings["max_failure_rate"], at_least=0)
        if max_failure_rate > 1:
            raise ConfigError(key + "max_failure_rate", max_failure_rate, "must be in [0, 1]")
        heartbeat = number(key + "heartbeat_interval", settings["heartbeat_interval"], above=0)
        grace = number(key + "grace_period", settings["grace_period"], above=0)
        if not heartbeat < grace:
            raise ConfigError(key + "grace_period", grace, f"must exceed heartbeat_interval={heartbeat}")
        if settings["direction"] is not None and settings["directions"] is not None:
            raise ConfigError(
                key + "directions", settings["directions"], "and hydra.sweeper.direction cannot both be set"
            )
        per_gpu = settings["trials_per_gpu"]
        per_gpu = integer(key + "trials_per_gpu", per_gpu, at_least=1) if per_gpu is not None else None
        build_optuna_part("sampler", settings["sampler"])  # built here only to check it
        build_optuna_part("pruner", settings["pruner"])
        search = settings["custom_search_space"]
        enqueue = _plain(settings["enqueue_trials"]) or []
        return cls(
            direction=_plain(
                settings["directions"] if settings["directions"] is not None else settings["direction"]
            ),
            study_name=settings["study_name"],
            storage=settings["storage"],
            n_trials=n_trials,
            n_jobs=n_jobs,
            timeout=timeout,
            sampler=part_spec("sampler", settings["sampler"]),
            pruner=_plain(settings["pruner"]),
            params=_plain(settings["params"]),
            custom_search_space=_method(key + "custom_search_space", search) if search else None,
            enqueue_trials=[dict(point) for point in enqueue],
            max_failure_rate=max_failure_rate,
            lr_range_test=dict(_plain(settings["lr_range_test"])),
            heartbeat_interval=heartbeat,
            grace_period=grace,
            trials_per_gpu=per_gpu,
        )


def _method(key: str, path: str) -> Callable[..., None]:
    try:
        return get_method(path)
    except Exception as err:  # Hydra wraps the ImportError or AttributeError
        raise ConfigError(
            key, path, f"is not an importable function 'module.function' ({err.__cause__ or err})"
        ) from None
