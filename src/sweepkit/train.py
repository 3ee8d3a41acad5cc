"""``sweepkit-train`` (also ``python -m sweepkit.train``): compose the config with Hydra, run, summarize."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from sweepkit import studies
from sweepkit.console import reports_errors, run_console_script
from sweepkit.devices import release_device
from sweepkit.mlflow_runs import MlflowTracker
from sweepkit.tasks import NOISE_SCALE, objective_metrics
from sweepkit.tracking import RunTracker, build_tracker, record_trial, tracker_names, tracks_to_mlflow
from sweepkit.training import check_config, default_run_name, group_choices, launch_dir, run

if TYPE_CHECKING:
    from sweepkit.trial import SweepTrial

PRUNE_REASON_OF_STOP = {
    "pruned": "pruner",
    "diverged": "diverged",
    "oom": "oom",
}  # the loop's stop_reason -> optuna.prune_reason

log = logging.getLogger("sweepkit")
CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")  # absolute: found from any working directory


def compose(overrides: list[str], output_dir: str | Path | None = None) -> DictConfig:
    """The training config as ``sweepkit-train <overrides>`` composes it, writing into ``output_dir``
    (None: no files), for ``run(cfg)`` from Python, the tests and the benchmarks."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.output_dir = str(output_dir) if output_dir is not None else None
    return cfg


def summarize(cfg: DictConfig, metrics: dict) -> None:
    """The short final summary: best objective, test metrics, checkpoint, MLflow run id."""
    names = objective_metrics(cfg.objective.metric)
    best = "  ".join(f"{n} {metrics[f'best/{n}']:.4f}" for n in names if f"best/{n}" in metrics)
    test = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test/"))
    log.info(
        "best %s (epoch %d of %d, %s)",
        best,
        metrics["best_epoch"],
        metrics["epochs_run"],
        metrics["stop_reason"],
    )
    log.info("test %s", test or "(not run)")
    log.info("checkpoint %s", metrics["checkpoint"])
    if metrics["mlflow_run_id"] is not None:  # tracking=none or tensorboard alone: no MLflow run to name
        log.info("mlflow run %s", metrics["mlflow_run_id"])


def objective_value(cfg: DictConfig, metrics: dict) -> float | list[float]:
    """The best epoch's objective: a float, or one per metric for a multi-objective config."""
    values = [metrics.get(f"best/{n}", float("nan")) for n in objective_metrics(cfg.objective.metric)]
    return values[0] if isinstance(cfg.objective.metric, str) else values


class EpochReporter:
    """The loop's pruning reporter on a sweep trial: Optuna's report, then its pruner's verdict."""

    def __init__(self, trial: SweepTrial) -> None:
        self.trial = trial

    def should_prune(self, epoch: int, value: float) -> bool:
        self.trial.report(value, epoch)
        return self.trial.should_prune()


def trial_tracker(cfg: DictConfig, trial: SweepTrial) -> Callable[[], RunTracker]:
    """Builds the trial run's trackers once its config has passed every check: MLflow's logs into the
    trial's child run; all are told the trial's outcome once the study knows it (TensorBoard's HParams)."""

    def make() -> RunTracker:
        given = {}
        if trial.mlflow_run_id is not None:
            attrs = trial.study.user_attrs
            given["mlflow"] = MlflowTracker(
                attrs[studies.MLFLOW_URI],
                cfg.tracking.experiment,
                experiment_id=attrs[studies.MLFLOW_EXPERIMENT_ID],
                system_metrics=cfg.tracking.system_metrics,
                run_id=trial.mlflow_run_id,
            )
        tracker = build_tracker(cfg.tracking, launch_dir(), given)
        trial.when_told.append(
            lambda state, details: record_trial(tracker, trial.number, trial.params, state, details)
        )
        return tracker

    return make


def train_trial(cfg: DictConfig, trial: SweepTrial, choices: Mapping[str, str]) -> float | list[float]:
    """sweepkit's training as one trial of a sweep: each epoch reported to the pruner, a requeued or
    adopted trial resumed from its own folder's last.pt, a run stopped early told as PRUNED."""
    import optuna

    with open_dict(cfg):
        if cfg.trainer.resume is None:
            cfg.trainer.resume = "auto"
        if cfg.trainer.progress == "auto":  # epochs as lines in the trial's log file; the sweep shows the bar
            cfg.trainer.progress = "log"
    metrics = run(
        cfg,
        make_tracker=trial_tracker(cfg, trial),
        reporter=EpochReporter(trial),
        choices=choices,
        run_name=f"trial-{trial.number}-{default_run_name(cfg, group_choices(cfg, choices))}",
        stop_requested=trial.stop_requested,
    )
    trial.set_user_attr(studies.EPOCHS_RUN, int(metrics["epochs_run"]))
    trial.set_user_attr(studies.MAX_EPOCHS, int(cfg.trainer.max_epochs))
    trial.set_user_attr(studies.LR_EFFECTIVE, metrics["lr_effective"])  # the lr-vs-batch fit reads it
    if NOISE_SCALE in metrics:  # per epoch: NaN unresolved, None not measured (time budget)
        trial.set_user_attr(NOISE_SCALE, metrics[NOISE_SCALE])
    summarize(cfg, metrics)
    if metrics["stop_reason"] in PRUNE_REASON_OF_STOP:
        trial.prune_reason = PRUNE_REASON_OF_STOP[metrics["stop_reason"]]
        raise optuna.TrialPruned(f"{trial.prune_reason} at epoch {metrics['epochs_run']}")
    return objective_value(cfg, metrics)


def releasing_device(task):
    """A job in a process that lives on (a joblib worker, the sweep process at n_jobs=1) hands back
    its GPU memory and its claim on the GPU when it ends, however it ends."""

    @functools.wraps(task)
    def job(cfg: DictConfig):
        try:
            return task(cfg)
        finally:
            release_device()

    return job


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@reports_errors
@releasing_device
def main(cfg: DictConfig) -> float | list[float]:
    """One training run; returns the best value of ``objective.metric`` (what a sweeper optimizes)."""
    hydra_cfg = HydraConfig.get()
    trial = None
    if "trial_number" in hydra_cfg.sweeper:  # a sweepkit sweep (only then is Optuna imported)
        from sweepkit.trial import current_trial

        trial = current_trial()
    if trial is not None:
        return train_trial(cfg, trial, hydra_cfg.runtime.choices)
    metrics = run(cfg, choices=hydra_cfg.runtime.choices)
    summarize(cfg, metrics)
    return objective_value(cfg, metrics)


def worker_modules(cfg: DictConfig) -> list[str]:
    """What a trial of ``cfg`` imports, for a sweep's workers to import once, before they are forked
    (hydra_plugins.sweepkit_sweeper._warm_workers), instead of each on its first trial."""
    modules = [__name__, "torch._dynamo"]  # torch's optimizers import torch._dynamo when the first is built
    builders = [cfg.tracking.trackers[name] for name in tracker_names(cfg.tracking)]
    modules += [path.rsplit(".", 1)[0] for path in builders if isinstance(path, str)]  # the trackers' modules
    if tracks_to_mlflow(cfg.tracking):  # imported by the child run's first call, then by its store
        modules += ["mlflow", "mlflow.store.tracking.sqlalchemy_store", "sweepkit.plots"]
    if "tensorboard" in tracker_names(cfg.tracking):
        modules.append("torch.utils.tensorboard")
    return modules


main.__wrapped__.sweepkit_preflight = check_config  # what a sweep checks on its first trial's config
main.__wrapped__.sweepkit_preload = worker_modules  # what its workers import once (warm workers)


def cli() -> None:
    """The console script ``sweepkit-train``: every known error is one line (sweepkit.console)."""
    run_console_script("sweepkit-train", main)


if __name__ == "__main__":
    cli()
