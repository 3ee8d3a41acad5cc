"""Custom search spaces: conditional params decided by what the trial's optimizer takes."""

import optuna
import pytest
from conftest import CONFIG_DIR
from hydra import compose, initialize_config_dir

from sweepkit.search_spaces import sgd_momentum


@pytest.fixture
def sweep_cfg():
    """``sweep_cfg(*overrides)``: the config as the sweeper holds it (with its hydra node), inside
    Hydra's running context."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        # a search preset whose sweeper keys the command line refines, and a searched optimizer
        search = [
            "hparams_search=lr_batch_optimizer",
            "hydra.sweeper.sampler.n_startup_trials=4",
            "tracking=none",
        ]
        yield lambda *overrides: compose("train", overrides=[*search, *overrides], return_hydra_config=True)


def _trial(**choices):
    trial = optuna.create_study().ask()
    for name, value in choices.items():
        trial.suggest_categorical(name, [value])
    return trial


@pytest.mark.parametrize(("optimizer", "searched"), [("sgd", True), ("adam", False), ("rmsprop", False)])
def test_momentum_is_searched_only_for_optimizers_that_take_momentum_and_nesterov(
    sweep_cfg, optimizer, searched
):
    # RMSprop has a momentum but no Nesterov switch: the pair is SGD's knob.
    trial = _trial(optimizer=optimizer)
    sgd_momentum(sweep_cfg(), trial)
    assert ("optimizer.momentum" in trial.params) == searched == ("optimizer.nesterov" in trial.params)


@pytest.mark.parametrize(("optimizer", "searched"), [("sgd", True), ("adam", False)])
def test_an_unsearched_optimizer_is_the_sweeps_own(sweep_cfg, optimizer, searched):
    # No optimizer drawn: the one the sweep was started with decides.
    trial = _trial()
    sgd_momentum(sweep_cfg(f"optimizer={optimizer}"), trial)
    assert ("optimizer.momentum" in trial.params) == searched
