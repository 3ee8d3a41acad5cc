"""``hydra.sweeper.lr_range_test``: the ``optimizer.lr`` search centred on an LR range test.

Before the first trial the sweeper runs ``sweepkit-lr-find``'s range test once per optimizer the
study can choose, on the sweep's own fixed config at ``lr_scaling.base_batch_size`` (where
``optimizer.lr`` applies, whatever the scaling rule), and stores the suggestions in the study. Each
trial then draws ``optimizer.lr`` log-uniformly from ``decades`` decades centred on the suggestion
for its optimizer: Adam's and SGD's good lrs lie orders of magnitude apart, one range cannot fit both.
Resumed runs and other workers read the stored suggestions, so the study's ranges never move.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from sweepkit.errors import ConfigError, one_of

log = logging.getLogger(__name__)
LR, OPTIMIZER = "optimizer.lr", "optimizer"
STUDY_ATTR = "lr_range_test"  # study user attr: {optimizer choice: suggested optimizer.lr}
SUGGESTIONS = ("valley", "steepest")


class RangeTestError(RuntimeError):
    """A range test that could not suggest an lr: the sweep cannot centre its search."""


@dataclass(frozen=True)
class LrCentres:
    """The suggested ``optimizer.lr`` per optimizer choice, and the width searched around it."""

    decades: float
    by_optimizer: dict[str, float]

    def distribution(self, optimizer: str) -> FloatDistribution:
        half_width = 10 ** (self.decades / 2)
        centre = self.by_optimizer[optimizer]
        return FloatDistribution(centre / half_width, centre * half_width, log=True)


def check_settings(settings: Mapping[str, Any], distributions: Mapping[str, BaseDistribution]) -> None:
    key = "hydra.sweeper.lr_range_test"
    if LR not in distributions:
        raise ConfigError(
            f"{key}.enabled", True, f"needs {LR} in the search space (hydra.sweeper.params) to centre it"
        )
    if not settings["decades"] > 0:
        raise ConfigError(f"{key}.decades", settings["decades"], "must be > 0")
    if settings["suggestion"] not in SUGGESTIONS:
        raise one_of(f"{key}.suggestion", settings["suggestion"], SUGGESTIONS)


def optimizer_choices(
    distributions: Mapping[str, BaseDistribution], fixed: Mapping[str, str], default: str
) -> list[str]:
    """The optimizers trials can get: the searched choices, or the one fixed (or default) optimizer."""
    searched = distributions.get(OPTIMIZER)
    if isinstance(searched, CategoricalDistribution):
        return [str(choice) for choice in searched.choices]
    return [fixed.get(OPTIMIZER, default)]


def trial_optimizer(params: Mapping[str, Any], fixed: Mapping[str, str], default: str) -> str:
    return str(params.get(OPTIMIZER, fixed.get(OPTIMIZER, default)))


def range_test_config(
    compose: Callable[[list[str]], DictConfig],
    overrides: list[str],
    settings: Mapping[str, Any],
    out_dir: Path,
) -> DictConfig:
    """The sweep's fixed config with one optimizer, at the reference batch size, as ``lr_find`` reads it."""
    cfg = compose(overrides)
    with open_dict(cfg):
        del cfg["hydra"]  # the sweeper's own process has no job to resolve ${hydra:...} against
        cfg.data.batch_size = cfg.lr_scaling.base_batch_size
        cfg.output_dir = str(out_dir)
        cfg.lr_find = range_test_settings(settings)
    return cfg


def range_test_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``lr_find.yaml``'s ``lr_find`` block (the home of the range test's defaults), with the keys
    the sweeper's ``lr_range_test`` sets (not null) in place of its values."""
    from sweepkit.train import CONFIG_DIR

    defaults = OmegaConf.to_container(OmegaConf.load(Path(CONFIG_DIR) / "lr_find.yaml").lr_find)
    return {key: default if settings.get(key) is None else settings[key] for key, default in defaults.items()}


def run_range_tests(
    compose: Callable[[list[str]], DictConfig],
    optimizers: list[str],
    fixed_overrides: list[str],
    settings: Mapping[str, Any],
    out_dir: Path,
) -> dict[str, float]:
    """One range test per optimizer; its plot in ``out_dir/<optimizer>/lr_find.png``. The sweep
    process then hands back the GPU memory and the GPU claim the tests took: the trials need them."""
    from sweepkit.devices import release_device
    from sweepkit.lr_find import RangeTestFailed, find_lr
    from sweepkit.tracking import NoTracker

    centres = {}
    try:
        for name in optimizers:
            cfg = range_test_config(
                compose, [*fixed_overrides, f"{OPTIMIZER}={name}"], settings, out_dir / name
            )
            try:
                result = find_lr(cfg, make_tracker=NoTracker)
            except RangeTestFailed as err:
                raise RangeTestError(f"the LR range test for optimizer={name} failed: {err}") from err
            centres[name] = result.suggestions[settings["suggestion"]].reference_lr
            log.info(
                "LR range test, optimizer %s at batch size %d: %s lr %.3g (plot %s)",
                name,
                cfg.data.batch_size,
                settings["suggestion"],
                centres[name],
                result.plot,
            )
    finally:
        release_device()
    return centres


def lr_centres(
    study: optuna.Study,
    decades: float,
    optimizers: list[str],
    run_tests: Callable[[list[str]], dict[str, float]],
) -> LrCentres:
    """The centres stored in the study; range tests only for optimizers it has none for yet."""
    stored = dict(study.user_attrs.get(STUDY_ATTR, {}))
    missing = [name for name in optimizers if name not in stored]
    if missing:
        stored.update(run_tests(missing))
        study.set_user_attr(STUDY_ATTR, stored)
    else:
        log.info("LR range test: the study's stored suggestions are reused: %s", stored)
    return LrCentres(float(decades), {name: stored[name] for name in optimizers})
