"""Custom search spaces for ``hydra.sweeper.custom_search_space``: functions ``(cfg, trial)`` that
suggest params the grammar cannot express, such as params that exist only for some choices.

    sweepkit-train -m hparams_search=lr_batch_optimizer \\
        hydra.sweeper.custom_search_space=sweepkit.search_spaces.sgd_momentum
"""

from __future__ import annotations

import optuna
from omegaconf import DictConfig

from sweepkit.targets import accepts, import_target


def trial_optimizer(cfg: DictConfig, trial: optuna.Trial) -> DictConfig:
    """The optimizer config this trial will train with: the drawn ``optimizer`` option composed with
    the sweep's fixed overrides, as its job will compose it; or the sweep's own when the optimizer is
    not searched."""
    choice = trial.params.get("optimizer")
    if choice is None:
        return cfg.optimizer
    from hydra.core.global_hydra import (
        GlobalHydra,
    )  # the sweeper's own loader: the same search path as the jobs
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # The command line's fixed overrides (hparams_search=... brings the keys its hydra overrides set);
    # its sweep overrides are the search space, not values to compose.
    task = OverridesParser.create().parse_overrides(list(cfg.hydra.overrides.task))
    fixed = [o.input_line for o in task if not o.is_sweep_override() and o.key_or_group != "optimizer"]
    return (
        GlobalHydra.instance()
        .config_loader()
        .load_sweep_config(cfg, [*fixed, f"optimizer={choice}"])
        .optimizer
    )


def sgd_momentum(cfg: DictConfig, trial: optuna.Trial) -> None:
    """Momentum and Nesterov are searched only for optimizers that take both (SGD; adaptive
    optimizers have no such knob)."""
    optimizer = trial_optimizer(cfg, trial)
    target = import_target("optimizer._target_", optimizer._target_)
    if accepts(target, "momentum") and accepts(target, "nesterov"):
        trial.suggest_float("optimizer.momentum", 0.5, 0.99)
        trial.suggest_categorical("optimizer.nesterov", [True, False])
