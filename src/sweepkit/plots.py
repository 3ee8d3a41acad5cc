"""Figures written as PNG files (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def learning_curve(history: Sequence[Mapping[str, float]], objective: str, path: Path) -> Path:
    """Train and validation loss, and the objective, against the epoch."""
    epochs = range(1, len(history) + 1)
    fig, (loss_ax, objective_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("train/loss", "val/loss"):
        loss_ax.plot(epochs, [m.get(name, float("nan")) for m in history], marker="o", label=name)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    objective_ax.plot(epochs, [m.get(objective, float("nan")) for m in history], marker="o", color="tab:green")
    objective_ax.set(xlabel="epoch", ylabel=objective, title=objective)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
