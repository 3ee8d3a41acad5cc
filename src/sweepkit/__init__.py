"""sweepkit: PyTorch training runs and Optuna sweeps composed by Hydra and recorded in MLflow."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from sweepkit import current_trial`` without importing Optuna for everyone who imports sweepkit."""
    if name == "current_trial":
        from sweepkit.trial import current_trial

        return current_trial
    raise AttributeError(f"module 'sweepkit' has no attribute {name!r}")
