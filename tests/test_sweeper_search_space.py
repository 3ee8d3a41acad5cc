"""The Hydra Optuna sweeper grammar, every form, as Optuna distributions."""

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.sweepkit_sweeper._names import derive_study_name, override_value
from hydra_plugins.sweepkit_sweeper._search_space import params_as_overrides, parse_search_space
from sweepkit.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interval(0.1, 0.9)", FloatDistribution(0.1, 0.9)),
        ("interval(1, 10)", FloatDistribution(1.0, 10.0)),  # Hydra reads interval bounds as floats
        ("int(interval(1, 10))", IntDistribution(1, 10)),
        ("tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("tag(log, int(interval(16, 512)))", IntDistribution(16, 512, log=True)),
        ("range(32, 256, 32)", IntDistribution(32, 256, step=32)),
        ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.5, step=0.1)),
        ("choice(16, 32, 64)", CategoricalDistribution([16, 32, 64])),
        ("choice(sgd, adam)", CategoricalDistribution(["sgd", "adam"])),
        ("choice(true, false)", CategoricalDistribution([True, False])),
        ("shuffle(range(1, 4))", CategoricalDistribution([1, 2, 3])),
    ],
)
def test_every_sweep_form_maps_to_its_distribution(text, expected):
    distributions, fixed = parse_search_space([f"key={text}"])
    assert distributions == {"key": expected} and fixed == {}


def test_plain_values_are_fixed_for_every_trial():
    distributions, fixed = parse_search_space(["trainer.max_epochs=5", "model=cnn"])
    assert distributions == {} and fixed == {"trainer.max_epochs": "5", "model": "cnn"}


def test_command_line_refines_the_preset():
    # Later overrides win: the command line can fix a param the preset searches, or widen it.
    preset = params_as_overrides({"optimizer": "choice(sgd, adam)", "optimizer.lr": "interval(0.1, 0.2)"})
    distributions, fixed = parse_search_space(
        [*preset, "optimizer=sgd", "optimizer.lr=tag(log, interval(1e-3, 1))"]
    )
    assert fixed == {"optimizer": "sgd"}
    assert distributions == {"optimizer.lr": FloatDistribution(1e-3, 1.0, log=True)}


def test_log_interval_needs_positive_bounds():
    with pytest.raises(ConfigError, match="optimizer.lr=.* is log-scaled, so its bounds must be > 0"):
        parse_search_space(["optimizer.lr=tag(log, interval(0, 1))"])


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.001, "0.001"), (64, "64"), ("sgd", "sgd"), (True, "true"), ("a b", "'a b'"), ("/x/y.db", "/x/y.db")],
)
def test_trial_values_become_valid_override_text(value, text):
    assert override_value(value) == text


def test_study_name_separates_fixed_configs_and_ignores_the_preset_choice():
    assert derive_study_name("lr_batch_optimizer", []) == "lr_batch_optimizer"
    assert derive_study_name("lr_batch_optimizer", ["model=cnn"]) == "lr_batch_optimizer-model=cnn"
    assert derive_study_name("p", ["model=cnn"]) != derive_study_name("p", ["model=mlp"])
    long = derive_study_name("p", [f"data.root=/some/long/path/{'x' * 80}"])
    assert long.startswith("p-") and len(long) == 12


def test_shuffled_choices_keep_one_order_so_a_resumed_study_accepts_them():
    first = [parse_search_space(["key=shuffle(a, b, c, d, e)"])[0]["key"] for _ in range(5)]
    assert all(d == CategoricalDistribution(["a", "b", "c", "d", "e"]) for d in first)
