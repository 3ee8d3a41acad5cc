"""The sweepkit Optuna sweeper (``hydra/sweeper=sweepkit``). hydra_plugins/ itself stays a namespace package."""
