"""sweepkit: PyTorch training runs and Optuna sweeps composed by Hydra and recorded in MLflow."""

__version__ = "0.1.0"
