"""Grids for sweep presets, as OmegaConf resolvers: what the sweeper's grammar cannot say.

    sweepkit-train -m hparams_search=scaling_law scaling_law.lr_points=5 scaling_law.lr_decades=2

``conf/hparams_search/scaling_law.yaml`` centres a log grid of learning rates on the optimizer's own
``optimizer.lr`` (SGD's and Adam's best lrs lie decades apart) and sizes ``n_trials`` to the grid.
The sweeper plugin registers these resolvers when Hydra scans it, before any config is composed.
Standard library only: the scan runs at every start of every Hydra app.
"""

from __future__ import annotations

from collections.abc import Sequence

from sweepkit.errors import ConfigError

SIGNIFICANT_DIGITS = 3  # grid values as short override text (0.00316, not 0.0031622776601683794)


def log_grid(centre: float | None, fallback: float, decades: float, points: int):
    """``points`` values evenly spaced in log scale over ``decades``, centred (log scale) on
    ``centre``, or on ``fallback`` when ``centre`` is null: ``${sweepkit.log_grid:...}``.

    A ListConfig, not a list: ``--cfg all --resolve`` (OmegaConf.resolve) cannot put a plain list
    where the interpolation was."""
    from omegaconf import ListConfig

    centre = fallback if centre is None else centre
    if not centre > 0:
        raise ConfigError("scaling_law.lr_centre", centre, "must be > 0 (null: optimizer.lr)")
    if not decades > 0:
        raise ConfigError("scaling_law.lr_decades", decades, "must be > 0")
    if int(points) != points or points < 2:
        raise ConfigError("scaling_law.lr_points", points, "must be an integer >= 2")
    exponents = [-decades / 2 + decades * i / (points - 1) for i in range(int(points))]
    return ListConfig([float(f"{centre * 10**e:.{SIGNIFICANT_DIGITS}g}") for e in exponents])


def grid_size(values: Sequence, points: int) -> int:
    """Trials in a grid of ``values`` x ``points``: ``${sweepkit.grid_size:...}`` sizes ``n_trials``."""
    if len(values) < 1:
        raise ConfigError("scaling_law.batch_sizes", list(values), "must hold at least one batch size")
    return len(values) * int(points)


RESOLVERS = {"sweepkit.log_grid": log_grid, "sweepkit.grid_size": grid_size}


def register() -> None:
    """Make the resolvers known to OmegaConf (again is harmless)."""
    from omegaconf import OmegaConf

    for name, function in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, function, replace=True)
