"""``sweepkit-train`` (also ``python -m sweepkit.train``): compose the config with Hydra, run, summarize."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sweepkit.errors import ConfigError
from sweepkit.overrides import exit_on_bad_group_choice
from sweepkit.tasks import objective_metrics
from sweepkit.training import TrainingDiverged, default_run_name, group_choices, run

log = logging.getLogger("sweepkit")
CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")  # absolute: found from any working directory


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


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
def main(cfg: DictConfig) -> float | list[float]:
    """One training run; returns the best value of ``objective.metric`` (what a sweeper optimizes)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.sweeper.get("trial_number") is not None:  # launched by the sweepkit sweeper
        from sweepkit.trial import TrialContext  # imports Optuna: only trial jobs pay for it

        return run_trial(cfg, TrialContext.from_hydra(), hydra_cfg.runtime.choices)
    single_run = hydra_cfg.mode == RunMode.RUN
    if single_run:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # end the tracked run KILLED, not RUNNING
    try:
        metrics = run(cfg, choices=hydra_cfg.runtime.choices)
    except (ConfigError, TrainingDiverged) as err:
        if not single_run:
            raise  # in a multirun the job fails and the sweep goes on
        print(f"sweepkit-train: error: {err}", file=sys.stderr)
        sys.exit(2 if isinstance(err, ConfigError) else 1)
    summarize(cfg, metrics)
    return objective_value(cfg, metrics)


MULTIRUN_FLAGS = ("-m", "--multirun")
INSPECT_FLAGS = ("-c", "--cfg", "-i", "--info")


def inspect_sweep_args(argv: list[str]) -> list[str]:
    """``-m ... --cfg hydra`` shows the sweep's config: Hydra 1.3 refuses the two flags together,
    so ``-m`` becomes the override ``hydra.mode=MULTIRUN``, which composes the same config."""
    if not (set(argv) & set(MULTIRUN_FLAGS) and set(argv) & set(INSPECT_FLAGS)):
        return argv
    return ["hydra.mode=MULTIRUN"] + [a for a in argv if a not in MULTIRUN_FLAGS]  # before any flag: argparse


def cli() -> None:
    """The console script: a bad config-group choice is one line and exit 2 before Hydra starts."""
    sys.argv[1:] = inspect_sweep_args(sys.argv[1:])
    exit_on_bad_group_choice("sweepkit-train", sys.argv[1:], Path(CONFIG_DIR))
    main()


if __name__ == "__main__":
    cli()
