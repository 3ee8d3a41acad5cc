"""studies.py: the sampler and pruner nodes of the sweeper config, built with one-line errors."""

import optuna
import pytest
from omegaconf import OmegaConf

from sweepkit.errors import ConfigError
from sweepkit.studies import build_optuna_part


def test_a_class_name_builds_the_optuna_class_with_its_defaults():
    assert isinstance(build_optuna_part("pruner", "NopPruner"), optuna.pruners.NopPruner)
    assert isinstance(build_optuna_part("sampler", "optuna.samplers.RandomSampler"), optuna.samplers.RandomSampler)


def test_a_target_config_builds_with_its_arguments():
    node = OmegaConf.create({"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 7})
    assert build_optuna_part("pruner", node)._n_startup_trials == 7


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        ("pruner", "NoSuchPruner", "hydra.sweeper.pruner=NoSuchPruner is not a class in optuna.pruners"),
        ("sampler", 3, "must be a _target_ config or the name of a class in optuna.samplers"),
        # what a CLI override of _target_ alone leaves behind: the preset's arguments merged in
        ("pruner", {"_target_": "optuna.pruners.NopPruner", "n_startup_trials": 5}, "cannot be built: NopPruner() takes no arguments"),
    ],
)
def test_bad_nodes_give_one_line_naming_the_key(kind, spec, message):
    with pytest.raises(ConfigError) as err:
        build_optuna_part(kind, spec)
    assert message in str(err.value) and "\n" not in str(err.value)
