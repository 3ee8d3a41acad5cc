"""The preset resolvers: a log grid centred on the optimizer's lr, and n_trials sized to the grid."""

import pytest
from omegaconf import OmegaConf

from sweepkit.errors import ConfigError
from sweepkit.sweep_grids import grid_size, log_grid, register


def test_log_grid_is_centred_in_log_scale_and_short_as_text():
    # 5 points over 2 decades around 0.01: 0.001 .. 0.1, the centre itself in the middle, 3 digits.
    assert list(log_grid(0.01, 0.5, 2.0, 5)) == [0.001, 0.00316, 0.01, 0.0316, 0.1]


def test_null_centre_falls_back_to_the_optimizers_lr():
    assert list(log_grid(None, 0.002, 2.0, 3)) == [0.0002, 0.002, 0.02]


def test_bad_grid_sizes_are_one_line_naming_the_key():
    with pytest.raises(ConfigError, match="^scaling_law.lr_points=1 must be an integer >= 2$"):
        log_grid(0.01, 0.01, 2.0, 1)
    with pytest.raises(ConfigError, match="^scaling_law.lr_decades=0 must be > 0$"):
        log_grid(0.01, 0.01, 0, 3)


def test_resolvers_size_n_trials_from_the_grid_and_survive_in_place_resolution():
    # The preset's interpolations resolve, also by OmegaConf.resolve (what --cfg all --resolve does).
    register()
    cfg = OmegaConf.create(
        {
            "s": {"batch_sizes": [16, 32, 64], "lr_points": 4},
            "n_trials": "${sweepkit.grid_size:${s.batch_sizes},${s.lr_points}}",
            "lrs": "${sweepkit.log_grid:null,0.05,3.0,${s.lr_points}}",
        }
    )
    OmegaConf.resolve(cfg)
    assert cfg.n_trials == 12 == grid_size([16, 32, 64], 4) and len(cfg.lrs) == 4
