"""Figures written as PNG files: the learning curve every tracked run logs."""

from __future__ import annotations

import pytest

from sweepkit.plots import LearningCurveFigure, learning_curve


def history(epochs: int, scale: float, objective: str = "val/acc") -> list[dict[str, float]]:
    return [
        {"train/loss": scale / (e + 1), "val/loss": 1.5 * scale / (e + 1), objective: 0.1 + e / (epochs + 1)}
        for e in range(epochs)
    ]


@pytest.mark.parametrize(
    "curve",
    [
        history(12, 3.0),
        history(1, 0.01),
        history(4, 200.0, "val/mse"),
        [{"train/loss": float("nan"), "val/loss": 2.0}, {"train/loss": 1.0, "val/loss": float("nan")}],
        history(3, 1.0),
    ],
)
def test_the_learning_curve_drawn_again_is_the_one_drawn_fresh(curve, tmp_path):
    # The figure kept for the process's next run keeps nothing of the last: after runs of other
    # lengths, scales and objectives, its PNG is byte for byte the one a new figure draws.
    for earlier in (history(30, 50.0), history(2, 0.5, "val/mse")):
        learning_curve(earlier, "val/mse" if "val/mse" in earlier[0] else "val/acc", tmp_path / "earlier.png")
    objective = "val/mse" if "val/mse" in curve[0] else "val/acc"
    again = learning_curve(curve, objective, tmp_path / "again.png")
    LearningCurveFigure().draw(curve, objective, tmp_path / "fresh.png")
    assert again.read_bytes() == (tmp_path / "fresh.png").read_bytes()
