"""``hydra/sweeper=sweepkit``: Optuna sweeps whose trials are Hydra jobs that can be pruned while they train.

The plugin class is thin: the logic is in ``_impl`` (imported on use, so that Hydra's plugin scan at
every start stays fast).
"""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.sweepkit_sweeper.config import SweepkitSweeperConf  # noqa: F401  (registers the config)


class SweepkitSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from hydra_plugins.sweepkit_sweeper._impl import SweepkitSweeperImpl

        self.sweeper = SweepkitSweeperImpl(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
