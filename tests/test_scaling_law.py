"""The lr-vs-batch fit on synthetic studies made here (real Optuna storages), whose best lr follows a
known law: it must find the law, its verdict and its break, reading only batch size, lr and value."""

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweepkit import scaling_law, studies
from sweepkit.scaling_law import BATCH, LR

BATCH_SIZES = (16, 32, 64, 128, 256, 512)
DISTRIBUTIONS = {BATCH: IntDistribution(1, 4096), LR: FloatDistribution(1e-8, 10.0, log=True)}


def lr_grid(centre=0.05, decades=3.0, points=9):
    """The preset's grid: ``points`` lrs over ``decades``, centred in log scale."""
    return [centre * 10 ** (-decades / 2 + decades * i / (points - 1)) for i in range(points)]


def loss_at(lr, best_lr, rng, noise):
    """A validation loss against log lr: a bowl around the best lr, steeper towards divergence."""
    d = math.log10(lr) - math.log10(best_lr)
    return 0.1 + 0.3 * d**2 + 0.2 * max(d, 0.0) ** 3 + rng.normal(0.0, noise)


def synthetic_study(best_lr, noise=0.01, seed=0, storage=None, grid=None, extra=None):
    """One trial per (batch size, lr) of the grid, as a scaling_law sweep leaves them."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(direction="minimize", storage=storage)
    for batch in BATCH_SIZES:
        for lr in grid or lr_grid():
            params, distributions, attrs = (
                {BATCH: batch, LR: lr},
                dict(DISTRIBUTIONS),
                {studies.LR_EFFECTIVE: lr},
            )
            if extra is not None:
                params, distributions, attrs, lr_trained = extra(params, distributions, attrs)
            else:
                lr_trained = lr
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=distributions,
                    value=loss_at(lr_trained, best_lr(batch), rng, noise),
                    user_attrs=attrs,
                )
            )
    return study


@pytest.mark.parametrize(("alpha", "verdict"), [(0.5, "sqrt"), (1.0, "linear")])
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_recovers_alpha_within_0_1_and_names_the_rule(alpha, verdict, seed, tmp_path):
    # Best lr growing as B**alpha with noise in the values: alpha within 0.1, the right verdict,
    # and no break where there is none. (A journal file: the storage a sweep writes.)
    storage = studies.open_storage(str(tmp_path / "optuna.journal"))
    study = synthetic_study(lambda b: 0.01 * (b / 16) ** alpha, seed=seed, storage=storage)
    (fit,) = scaling_law.fit_study(study)
    assert fit.law.alpha == pytest.approx(alpha, abs=0.1)
    assert fit.law.low <= alpha <= fit.law.high
    assert fit.law.verdict == verdict
    assert fit.breakpoint is None


def test_flat_past_a_critical_batch_size_reports_the_break():
    # Linear up to batch 128, flat beyond: the break lies near 128, the law below it is linear.
    study = synthetic_study(lambda b: 0.01 * min(b, 128) / 16, seed=0)
    (fit,) = scaling_law.fit_study(study)
    assert fit.breakpoint is not None and 90 <= fit.breakpoint.batch_size <= 180
    assert fit.breakpoint.alpha_above < 0.3
    assert fit.law.alpha == pytest.approx(1.0, abs=0.15) and fit.law.verdict == "linear"
    assert any("break: past batch" in line for line in scaling_law.describe(fit))


def test_fit_reads_lr_effective_when_a_rule_scaled_the_lr():
    # Trials that searched the reference lr under lr_scaling.rule=sqrt trained with lr_effective;
    # the law is about the lr trained with, so it is recovered from that attribute.
    def scaled(params, distributions, attrs):
        effective = params[LR] * math.sqrt(params[BATCH] / 64)
        params = {**params, scaling_law.RULE: "sqrt"}
        distributions = {**distributions, scaling_law.RULE: CategoricalDistribution(["sqrt"])}
        return params, distributions, {studies.LR_EFFECTIVE: effective}, effective

    study = synthetic_study(lambda b: 0.01 * (b / 16), seed=0, extra=scaled, grid=lr_grid(0.03))
    (fit,) = scaling_law.fit_study(study)
    assert fit.law.alpha == pytest.approx(1.0, abs=0.1)


def test_each_optimizer_gets_its_own_law_and_metric_names():
    # A study that also searched the optimizer: one law per optimizer, named in the parent-run metrics.
    rng = np.random.default_rng(0)
    study = optuna.create_study(direction="minimize")
    laws = {"sgd": (0.05, 1.0), "adam": (0.002, 0.5)}
    for name, (at_16, alpha) in laws.items():
        for batch in BATCH_SIZES:
            for lr in lr_grid(at_16 * 5):
                study.add_trial(
                    optuna.trial.create_trial(
                        params={BATCH: batch, LR: lr, "optimizer": name},
                        distributions={
                            **DISTRIBUTIONS,
                            "optimizer": CategoricalDistribution(["sgd", "adam"]),
                        },
                        value=loss_at(lr, at_16 * (batch / 16) ** alpha, rng, 0.01),
                        user_attrs={studies.LR_EFFECTIVE: lr},
                    )
                )
    fits = {f.group: f for f in scaling_law.fit_study(study)}
    assert fits["sgd"].law.verdict == "linear" and fits["adam"].law.verdict == "sqrt"
    assert "scaling/sgd/alpha" in fits["sgd"].metrics() and fits["adam"].tags() == {
        "scaling.adam.verdict": "sqrt"
    }


def test_best_lr_at_the_edge_of_the_grid_is_left_out_and_said():
    # A grid that does not bracket the best lr of the largest batches: those optima are shown as
    # edge points, left out of the fit, and the note says to widen the range.
    study = synthetic_study(lambda b: 0.01 * (b / 16), seed=0, grid=lr_grid(0.01, decades=2.0, points=9))
    (fit,) = scaling_law.fit_study(study)
    edge = [o.batch_size for o in fit.optima if o.at_edge]
    assert 512 in edge and 512 not in fit.law.batch_sizes
    assert any("widen scaling_law.lr_decades" in note for note in fit.notes)


def test_suggestion_states_the_rule_base_batch_and_lr_at_it():
    # What to put in the config: the verdict's rule, the best trial's batch size, the law's lr there.
    study = synthetic_study(lambda b: 0.01 * (b / 16) ** 0.5, seed=0)
    (fit,) = scaling_law.fit_study(study)
    suggestion = fit.suggestion()
    assert suggestion["lr_scaling.rule"] == "sqrt"
    assert suggestion["lr_scaling.base_batch_size"] == study.best_trial.params[BATCH]
    assert suggestion["optimizer.lr"] == pytest.approx(
        fit.law.lr_at(suggestion["lr_scaling.base_batch_size"]), rel=0.01
    )


def test_too_few_lr_points_is_a_note_not_a_crash():
    # Two lrs per batch size cannot locate a best: every batch size is left out, and said so.
    study = synthetic_study(lambda b: 0.01, seed=0, grid=[0.01, 0.1])
    (fit,) = scaling_law.fit_study(study)
    assert fit.law is None and any("3 needed" in note for note in fit.notes)


def test_a_sweep_that_cannot_be_fitted_ends_with_one_line_not_its_notes(tmp_path, caplog):
    # A pruned preset's study (two lrs per batch size): the sweep's end says so once and draws nothing;
    # the notes are the report's (sweepkit-report --scaling).
    study = synthetic_study(lambda b: 0.01, seed=0, grid=[0.01, 0.1])
    with caplog.at_level("INFO", logger=scaling_law.log.name):
        outcome = scaling_law.at_sweep_end(study, tmp_path, "val/loss")
    lines = [r.getMessage() for r in caplog.records if r.name == scaling_law.log.name]
    assert outcome is not None and outcome.plot is None and not list(tmp_path.iterdir())
    assert lines == [
        "lr vs batch size: too few lrs per batch size to fit all trials (hparams_search=scaling_law grids "
        "them; sweepkit-report --scaling says what was left out)"
    ]
    assert any(line.startswith("note: ") for line in outcome.lines)  # what the report prints
