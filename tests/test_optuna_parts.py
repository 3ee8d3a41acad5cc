"""optuna_parts.py: the sampler and pruner nodes of the sweeper config, built with one-line errors."""

import optuna
import pytest
from conftest import CONFIG_DIR
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sweepkit.errors import ConfigError
from sweepkit.optuna_parts import build_optuna_part


def test_a_class_name_builds_the_optuna_class_with_its_defaults():
    assert isinstance(build_optuna_part("pruner", "NopPruner"), optuna.pruners.NopPruner)
    assert isinstance(
        build_optuna_part("sampler", "optuna.samplers.RandomSampler"), optuna.samplers.RandomSampler
    )


def test_a_class_call_with_literal_keywords_replaces_the_node_whole():
    pruner = build_optuna_part("pruner", "PercentilePruner(percentile=25.0, n_startup_trials=2)")
    assert (
        isinstance(pruner, optuna.pruners.PercentilePruner)
        and pruner._percentile == 25.0
        and pruner._n_startup_trials == 2
    )


def test_a_target_config_builds_with_its_arguments():
    node = OmegaConf.create({"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 7})
    assert build_optuna_part("pruner", node)._n_startup_trials == 7


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        (
            "pruner",
            "NoSuchPruner",
            "hydra.sweeper.pruner=NoSuchPruner does not name a class in optuna.pruners",
        ),
        (
            "pruner",
            "PercentilePruner(25.0)",
            "must be ClassName or ClassName(arg=literal, ...) with a class in optuna.pruners",
        ),
        ("pruner", "PercentilePruner(percentile=x)", "must be ClassName or ClassName(arg=literal, ...)"),
        (
            "sampler",
            3,
            "must be a _target_ config, or ClassName(arg=value, ...) of a class in optuna.samplers",
        ),
        # what a CLI override of _target_ alone leaves behind: the preset's arguments merged in
        (
            "pruner",
            {"_target_": "optuna.pruners.NopPruner", "n_startup_trials": 5},
            "cannot be built: NopPruner() takes no arguments",
        ),
    ],
)
def test_bad_nodes_give_one_line_naming_the_key(kind, spec, message):
    with pytest.raises(ConfigError) as err:
        build_optuna_part(kind, spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_null_is_the_default_and_bare_arguments_go_to_the_default_class():
    assert isinstance(build_optuna_part("sampler", None), optuna.samplers.TPESampler)
    pruner = build_optuna_part("pruner", {"n_warmup_steps": 3})
    assert isinstance(pruner, optuna.pruners.MedianPruner) and pruner._n_warmup_steps == 3


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml")))
def test_every_search_preset_builds_exactly_the_sampler_and_pruner_it_names(preset):
    # A preset's node replaces the schema's default whole (no MedianPruner arguments left in a NopPruner).
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        sweeper = compose(
            "train", overrides=[f"hparams_search={preset}"], return_hydra_config=True
        ).hydra.sweeper
    for kind in ("sampler", "pruner"):
        built = build_optuna_part(kind, sweeper[kind])
        if sweeper[kind] is not None:
            assert type(built).__name__ == sweeper[kind]._target_.rsplit(".", 1)[-1]
