"""hydra.sweeper.lr_range_test: the optimizer.lr search centred on LR range tests, stored in the study."""

import math
import re

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution
from sweeps import FAST_SEARCH, MlflowView, only_study, run_sweep

from hydra_plugins.sweepkit_sweeper._lr_range import (
    STUDY_ATTR,
    LrCentres,
    check_settings,
    lr_centres,
    optimizer_choices,
    range_test_settings,
)
from sweepkit.errors import ConfigError
from sweepkit.train import CONFIG_DIR

SETTINGS = {"decades": 1.0, "suggestion": "valley"}


def test_the_range_spans_the_given_decades_centred_on_the_suggestion_in_log_space():
    distribution = LrCentres(1.0, {"adam": 1e-3}).distribution("adam")
    assert (
        distribution.log
        and distribution.low == pytest.approx(1e-3 / math.sqrt(10))
        and distribution.high == pytest.approx(1e-3 * math.sqrt(10))
    )


def test_the_range_test_takes_lr_find_yaml_where_the_sweeper_sets_no_value():
    lr_find_yaml = OmegaConf.to_container(OmegaConf.load(f"{CONFIG_DIR}/lr_find.yaml").lr_find)
    assert range_test_settings({**SETTINGS, "min_lr": None}) == lr_find_yaml
    assert range_test_settings({**SETTINGS, "max_lr": 1.0}) == {**lr_find_yaml, "max_lr": 1.0}


def test_optimizers_are_the_searched_choices_or_the_one_fixed():
    searched = {
        "optimizer": CategoricalDistribution(["sgd", "adam"]),
        "optimizer.lr": FloatDistribution(1e-4, 1, log=True),
    }
    assert optimizer_choices(searched, {}, "adam") == ["sgd", "adam"]
    assert optimizer_choices({}, {"optimizer": "sgd"}, "adam") == ["sgd"]
    assert optimizer_choices({}, {}, "adam") == ["adam"]


def test_suggestions_are_stored_in_the_study_and_only_missing_optimizers_are_tested():
    study = optuna.create_study()
    calls = []

    def run_tests(names):
        calls.append(list(names))
        return {name: 0.01 for name in names}

    lr_centres(study, 1.0, ["sgd"], run_tests)
    centres = lr_centres(study, 1.0, ["sgd", "adam"], run_tests)
    assert calls == [["sgd"], ["adam"]]
    assert study.user_attrs[STUDY_ATTR] == {"sgd": 0.01, "adam": 0.01} == centres.by_optimizer


@pytest.mark.parametrize(
    ("settings", "distributions", "message"),
    [
        (SETTINGS, {}, "hydra.sweeper.lr_range_test.enabled=True needs optimizer.lr in the search space"),
        (
            {**SETTINGS, "decades": 0},
            {"optimizer.lr": None},
            "hydra.sweeper.lr_range_test.decades=0 must be > 0",
        ),
        (
            {**SETTINGS, "suggestion": "max"},
            {"optimizer.lr": None},
            "hydra.sweeper.lr_range_test.suggestion=max is not one of: valley, steepest",
        ),
    ],
)
def test_bad_settings_are_one_line_errors(settings, distributions, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_settings(settings, distributions)


@pytest.mark.slow
def test_centred_sweep_runs_a_range_test_per_optimizer_and_draws_lrs_around_it(tmp_path):
    # The preset: one range test per optimizer choice before the first trial, plots in the sweep
    # folder and on the parent run, every trial's lr inside its optimizer's decade; a resumed sweep
    # reuses the stored suggestions instead of testing again.
    base = [*FAST_SEARCH, "hparams_search=lr_range_centred", "trainer.max_epochs=2"]
    run_sweep(tmp_path, *base, "hydra.sweeper.n_trials=2")
    study = only_study(tmp_path)
    centres = study.user_attrs[STUDY_ATTR]
    assert set(centres) == {"sgd", "adam", "adamw", "rmsprop"}
    assert centres["sgd"] > centres["adam"]  # plain SGD wants a larger lr than Adam on the same data
    sweep_dir = tmp_path / "multirun" / study.study_name
    assert all((sweep_dir / "lr_range_test" / name / "lr_find.png").exists() for name in centres)

    second = run_sweep(tmp_path, *base, "hydra.sweeper.n_trials=3")
    assert "stored suggestions are reused" in second.stdout + second.stderr
    study = only_study(tmp_path)
    assert study.user_attrs[STUDY_ATTR] == centres
    for trial in study.trials:
        centre, lr = centres[trial.params["optimizer"]], trial.params["optimizer.lr"]
        assert centre / math.sqrt(10) * 0.999 <= lr <= centre * math.sqrt(10) * 1.001
        assert trial.distributions["optimizer.lr"] == LrCentres(1.0, centres).distribution(
            trial.params["optimizer"]
        )
    from mlflow import MlflowClient

    parent = MlflowView.read(tmp_path).parents[0]
    artifacts = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").list_artifacts(
        parent.info.run_id, "lr_range_test/sgd"
    )
    assert [a.path for a in artifacts] == ["lr_range_test/sgd/lr_find.png"]
    assert float(parent.data.params["lr_range_test.sgd"]) == pytest.approx(centres["sgd"])
