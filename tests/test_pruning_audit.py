"""Was pruning safe? The audit of synthetic pruned studies whose early reads are good or misleading."""

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweepkit import pruning_audit, studies
from sweepkit.report import main as report_main

EPOCHS = 6


def _curve(final, rate, epochs=EPOCHS):
    """Accuracy rising towards ``final``; a small ``rate`` is a slow starter."""
    return {e: final * (1 - np.exp(-rate * e)) for e in range(1, epochs + 1)}


def pruned_study(slow_starters_win: bool, storage=None, seed=0):
    """12 finished trials and 6 pruned at epoch 2. When slow starters win, early values mislead:
    the trials that end best start slowest."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(direction="maximize", storage=storage)
    for i in range(18):
        final = rng.uniform(0.80, 0.97)
        rate = 3.0 - 14 * (final - 0.8) if slow_starters_win else 0.3 + 20 * (final - 0.8)
        curve = _curve(final, rate)
        finished = i < 12
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": float(i)},
                distributions={"x": FloatDistribution(0, 100)},
                value=max(curve.values()) if finished else None,
                state=TrialState.COMPLETE if finished else TrialState.PRUNED,
                intermediate_values=curve if finished else {e: curve[e] for e in (1, 2)},
                user_attrs={} if finished else {studies.PRUNED_EPOCH: 2, studies.PRUNE_REASON: "pruner"},
            )
        )
    return study


def test_early_values_that_rank_like_final_ones_are_called_safe():
    # Curves whose order never changes: rank correlation ~1 at the decision epoch, no pruned trial
    # plausibly better than the best, verdict "safe".
    audit = pruning_audit.audit(pruned_study(slow_starters_win=False))
    (decision,) = audit.decisions
    assert decision.epoch == 2 and decision.finished == 12 and len(decision.pruned) == 6
    assert decision.rank_correlation > 0.9 and not decision.plausible
    assert "verdict: safe" in pruning_audit.describe(audit)[-1]


def test_misleading_early_values_are_called_doubtful_and_name_the_trials_at_risk():
    # Slow starters end best: early values rank trials backwards, the verdict says doubtful, and the
    # pruned slow starters are named as trials that might have beaten the best.
    study = pruned_study(slow_starters_win=True)
    audit = pruning_audit.audit(study)
    (decision,) = audit.decisions
    assert decision.rank_correlation < 0
    assert decision.plausible
    verdict = pruning_audit.describe(audit)[-1]
    assert (
        "doubtful" in verdict and "n_warmup_steps > 2" in verdict and "might have beaten the best" in verdict
    )


def test_diverged_trials_are_not_the_pruners_decisions():
    # A trial stopped for a non-finite loss was not judged by the pruner: no decision epoch for it.
    study = optuna.create_study(direction="maximize")
    for i, (state, reason) in enumerate(
        [(TrialState.COMPLETE, None)] * 4 + [(TrialState.PRUNED, "diverged")]
    ):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": float(i)},
                distributions={"x": FloatDistribution(0, 100)},
                value=0.9 if state == TrialState.COMPLETE else None,
                state=state,
                intermediate_values={1: 0.5},
                user_attrs={studies.PRUNE_REASON: reason, studies.PRUNED_EPOCH: 1} if reason else {},
            )
        )
    assert pruning_audit.audit(study) is None


def test_report_of_a_pruned_sweep_says_whether_pruning_was_safe(tmp_path, capsys, monkeypatch):
    # sweepkit-report on a study with pruned trials prints the audit after the table.
    monkeypatch.chdir(tmp_path)
    storage = studies.open_storage(str(tmp_path / "optuna.journal"))
    study = pruned_study(slow_starters_win=False, storage=storage)
    report_main([study.study_name])
    out = capsys.readouterr().out
    assert "Was pruning safe? 6 trials stopped by the pruner; 12 trials finished" in out
    assert "verdict: safe" in out
