"""Trial configs composed once per set of group choices (``_trial_configs``) against Hydra's own
composition of each trial, on the real config tree."""

from __future__ import annotations

import pickle

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.types import RunMode
from omegaconf import OmegaConf
from sweeps import SEARCHPATH

from hydra_plugins.sweepkit_sweeper import _trial_configs
from hydra_plugins.sweepkit_sweeper._trial_configs import TrialConfigLoader
from sweepkit.train import CONFIG_DIR

TRIALS = [  # a sweep's job overrides: group choices, values inside the chosen groups, Hydra's own keys
    ["optimizer=adam", "optimizer.lr=0.003", "data.batch_size=64", "hydra.sweep.subdir=0"],
    [
        "optimizer=sgd",
        "optimizer.lr=0.2",
        "data.batch_size=16",
        "lr_scaling.rule=linear",
        "hydra.sweep.subdir=1",
    ],
    ["optimizer=adam", "optimizer.lr=0.0004", "data.batch_size=256", "hydra.sweep.subdir=2"],
    ["optimizer=adam", "model=cnn", "model.channels=[4,8]", "+model.extra=1", "hydra.sweep.subdir=3"],
    # a group found only on a search path the overrides add (a user's own configs)
    [SEARCHPATH, "model=flaky", "hydra.sweep.subdir=4"],
]


@pytest.fixture(scope="module")
def master():
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(CONFIG_DIR))
    config = loader.load_configuration(
        "train",
        ["hparams_search=lr_batch_optimizer", "hydra.job.chdir=false"],
        RunMode.MULTIRUN,
    )
    return loader, config


@pytest.mark.parametrize("overrides", TRIALS, ids=lambda o: " ".join(o[:2]))
def test_a_trial_config_is_the_one_hydra_composes(master, overrides):
    # The whole config, Hydra's node and its record of the overrides included, equals Hydra's own
    # composition of the trial, whichever choices the process composed before.
    loader, config = master
    ours = TrialConfigLoader(loader)
    for earlier in TRIALS:
        ours.load_sweep_config(config, earlier)
    expected = loader.load_sweep_config(config, overrides)
    found = ours.load_sweep_config(config, overrides)
    assert OmegaConf.to_container(found, resolve=False) == OmegaConf.to_container(expected, resolve=False)
    assert OmegaConf.is_struct(found) and found.optimizer.lr == expected.optimizer.lr


def test_each_set_of_choices_is_composed_once_and_trials_do_not_share_their_copy(master):
    # Two trials of one optimizer: one composition; a trial changing its config changes no other's.
    loader, config = master
    ours = TrialConfigLoader(loader)
    _trial_configs._COMPOSED.clear()
    first = ours.load_sweep_config(config, TRIALS[0])
    second = ours.load_sweep_config(config, TRIALS[2])
    assert len(_trial_configs._COMPOSED) == 1
    composed = second.trainer.max_epochs
    first.trainer.max_epochs = composed + 1
    assert second.trainer.max_epochs == composed
    assert ours.load_sweep_config(config, TRIALS[0]).trainer.max_epochs == composed


def test_a_bad_override_fails_as_in_hydra(master):
    # A value for a key the config lacks is Hydra's error, not a silently added key.
    loader, config = master
    with pytest.raises(Exception) as hydra_error:
        loader.load_sweep_config(config, ["optimizer=adam", "optimizer.nosuchkey=1"])
    with pytest.raises(type(hydra_error.value)):
        TrialConfigLoader(loader).load_sweep_config(config, ["optimizer=adam", "optimizer.nosuchkey=1"])


def test_the_loader_travels_to_a_worker_process(master):
    # Launchers pickle their hydra_context into their workers: the loader survives the trip.
    loader, config = master
    copied = pickle.loads(pickle.dumps(TrialConfigLoader(loader)))
    assert copied.load_sweep_config(config, TRIALS[1]).optimizer.lr == 0.2
