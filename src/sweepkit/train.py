"""``sweepkit-train`` (also ``python -m sweepkit.train``): compose the config with Hydra, run, summarize."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sweepkit.console import reports_errors, run_console_script
from sweepkit.tasks import objective_metrics
from sweepkit.training import default_run_name, group_choices, run

log = logging.getLogger("sweepkit")
CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")  # absolute: found from any working directory


def summarize(cfg: DictConfig, metrics: dict) -> None:
    """The short final summary: best objective, test metrics, checkpoint, MLflow run id."""
    names = objective_metrics(cfg.objective.metric)
    best = "  ".join(f"{n} {metrics[f'best/{n}']:.4f}" for n in names if f"best/{n}" in metrics)
    test = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test/"))
    log.info("best %s (epoch %d of %d, %s)", best, metrics["best_epoch"], metrics["epochs_run"], metrics["stop_reason"])
    log.info("test %s", test or "(not run)")
    log.info("checkpoint %s", metrics["checkpoint"])
    log.info("mlflow run %s", metrics["mlflow_run_id"])


def objective_value(cfg: DictConfig, metrics: dict) -> float | list[float]:
    """The best epoch's objective: a float, or one per metric for a multi-objective config."""
    values = [metrics.get(f"best/{n}", float("nan")) for n in objective_metrics(cfg.objective.metric)]
    return values[0] if isinstance(cfg.objective.metric, str) else values


def run_trial(cfg: DictConfig, trial, choices) -> float | list[float]:
    """One trial of a sweepkit sweep: report each epoch, obey the pruner, tell the outcome."""
    trial.prepare(cfg)
    tracker = trial.make_tracker(cfg)
    try:
        with trial.alive() as preempted:
            metrics = run(
                cfg, make_tracker=(lambda: tracker) if tracker else None, reporter=trial.reporter(),
                choices=choices, run_name=f"trial-{trial.number}-{default_run_name(cfg, group_choices(cfg, choices))}",
                tags=trial.tags(), stop_requested=preempted,
            )
    except Exception as err:
        log.exception("trial %d failed", trial.number)  # the traceback lands in the job's log file
        trial.fail(err)
        raise
    value = objective_value(cfg, metrics)
    state = trial.tell(metrics, value)
    log.info("trial %d %s", trial.number, state.name)
    summarize(cfg, metrics)
    return value


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@reports_errors
def main(cfg: DictConfig) -> float | list[float]:
    """One training run; returns the best value of ``objective.metric`` (what a sweeper optimizes)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.sweeper.get("trial_number") is not None:  # launched by the sweepkit sweeper
        from sweepkit.trial import TrialContext  # imports Optuna: only trial jobs pay for it

        return run_trial(cfg, TrialContext.from_hydra(), hydra_cfg.runtime.choices)
    metrics = run(cfg, choices=hydra_cfg.runtime.choices)
    summarize(cfg, metrics)
    return objective_value(cfg, metrics)


def cli() -> None:
    """The console script ``sweepkit-train``: every known error is one line (sweepkit.console)."""
    run_console_script("sweepkit-train", main)


if __name__ == "__main__":
    cli()
