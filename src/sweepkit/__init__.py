"""sweepkit: PyTorch training runs and Optuna sweeps composed by Hydra and recorded in MLflow."""

from sweepkit.targets import register_resolvers as _register_resolvers

__version__ = "0.1.0"

_register_resolvers()  # before any of sweepkit's configs is resolved, in every process that imports sweepkit


def __getattr__(name: str):
    """``from sweepkit import current_trial`` without importing Optuna for everyone who imports sweepkit."""
    if name == "current_trial":
        from sweepkit.trial import current_trial

        return current_trial
    raise AttributeError(f"module 'sweepkit' has no attribute {name!r}")
