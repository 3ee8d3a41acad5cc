"""Custom search spaces for ``hydra.sweeper.custom_search_space``: functions ``(cfg, trial)`` that
suggest params the grammar cannot express, such as params that exist only for some choices.

    sweepkit-train -m hparams_search=lr_batch_optimizer \\
        hydra.sweeper.custom_search_space=sweepkit.search_spaces.sgd_momentum
"""

from __future__ import annotations

import optuna
from omegaconf import DictConfig


def sgd_momentum(cfg: DictConfig, trial: optuna.Trial) -> None:
    """Momentum and Nesterov are searched only for SGD (adaptive optimizers have no such knob)."""
    if trial.params.get("optimizer", cfg.optimizer.name) == "sgd":
        trial.suggest_float("optimizer.momentum", 0.5, 0.99)
        trial.suggest_categorical("optimizer.nesterov", [True, False])
