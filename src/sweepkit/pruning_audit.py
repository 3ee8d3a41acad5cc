"""Was pruning safe? What a pruned sweep's finished trials say about the pruner's early reads.

    sweepkit-report multirun/lr_batch_optimizer      (printed for every study with pruned trials)

For each epoch the pruner stopped trials at: the rank correlation (Spearman) between the trials'
values at that epoch and their final values, over the trials that ran to the end; and, for each
trial pruned there, the chance that it would have beaten the best had it trained on, from a linear
fit of final value on the value at that epoch over the finished trials (with the fit's prediction
error, Student's t). A pruned trial with a chance of at least 10% "plausibly" beats the best.

The finished trials are the ones the pruner let through: their early values span a narrower range
than all trials' did, which lowers the rank correlation, and the fit extrapolates to the pruned
trials' lower values. Both are read as evidence, not proof.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sweepkit import studies

if TYPE_CHECKING:
    import optuna

PLAUSIBLE = 0.10  # a pruned trial with at least this chance of beating the best "might have"
MIN_FINISHED = 4  # finished trials a fit of final on early value needs (2 parameters, 2 to spare)
TRUSTED, DOUBTFUL = 0.8, 0.5  # rank correlations: early reads trusted at or above, doubtful below


@dataclass
class Decision:
    """One epoch the pruner stopped trials at, and what the finished trials say about it."""

    epoch: int
    finished: int  # finished trials with a value at this epoch
    rank_correlation: float  # NaN: too few finished trials, or no spread
    pruned: list[int]  # trial numbers pruned here
    chances: dict[int, float]  # trial number -> chance it would have beaten the best (when a fit exists)

    @property
    def plausible(self) -> list[int]:
        return [n for n, p in self.chances.items() if p >= PLAUSIBLE]


@dataclass
class Audit:
    decisions: list[Decision]
    finished: int
    best: float
    maximize: bool

    @property
    def pruned(self) -> int:
        return sum(len(d.pruned) for d in self.decisions)


def _pruned_epoch(trial) -> int | None:
    if trial.user_attrs.get(studies.PRUNE_REASON, "pruner") != "pruner":
        return None  # diverged or out of memory: not the pruner's decision
    epoch = trial.user_attrs.get(studies.PRUNED_EPOCH)
    if epoch is None and trial.intermediate_values:
        epoch = max(trial.intermediate_values)
    return int(epoch) if epoch is not None else None


def audit(study: optuna.Study) -> Audit | None:
    """The audit of a single-objective study with trials stopped by the pruner (None otherwise)."""
    from optuna.trial import TrialState

    if len(study.directions) != 1:
        return None
    trials = study.get_trials(deepcopy=False)
    pruned_at: dict[int, list[int]] = {}
    for t in trials:
        epoch = _pruned_epoch(t) if t.state == TrialState.PRUNED else None
        if epoch is not None:
            pruned_at.setdefault(epoch, []).append(t.number)
    finished = [
        t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    if not pruned_at or not finished:
        return None
    maximize = study.direction.name == "MAXIMIZE"
    best = (max if maximize else min)(t.value for t in finished)
    by_number = {t.number: t for t in trials}
    decisions = []
    for epoch, numbers in sorted(pruned_at.items()):
        pairs = [(t.intermediate_values[epoch], t.value) for t in finished if epoch in t.intermediate_values]
        early = {n: by_number[n].intermediate_values.get(epoch) for n in numbers}
        decisions.append(
            Decision(
                epoch, len(pairs), _spearman(pairs), sorted(numbers), _chances(pairs, early, best, maximize)
            )
        )
    return Audit(decisions, len(finished), best, maximize)


def _spearman(pairs: list[tuple[float, float]]) -> float:
    if len(pairs) < 3:
        return math.nan
    import warnings

    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN, said as "no spread"
        return float(spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic)


def _chances(pairs, early: dict[int, float | None], best: float, maximize: bool) -> dict[int, float]:
    """Each pruned trial's chance of a final value beyond ``best``, from the linear fit of final on early value."""
    if len(pairs) < MIN_FINISHED:
        return {}
    import numpy as np
    from scipy.stats import t as student

    x, y = np.array(pairs, dtype=float).T
    sxx = float(np.sum((x - x.mean()) ** 2))
    if sxx == 0:
        return {}
    slope = float(np.sum((x - x.mean()) * (y - y.mean()))) / sxx
    intercept = float(y.mean()) - slope * float(x.mean())
    dof = len(x) - 2
    s = math.sqrt(max(float(np.sum((y - intercept - slope * x) ** 2)) / dof, 1e-24))
    out = {}
    for number, value in early.items():
        if value is None or not math.isfinite(value):
            continue
        predicted = intercept + slope * value
        spread = s * math.sqrt(1 + 1 / len(x) + (value - x.mean()) ** 2 / sxx)
        margin = (predicted - best) / spread if maximize else (best - predicted) / spread
        out[number] = float(student.cdf(margin, dof))
    return out


def describe(result: Audit) -> list[str]:
    """The audit as lines: a table per decision epoch and a verdict in words."""
    lines = [
        f"Was pruning safe? {result.pruned} trials stopped by the pruner; {result.finished} trials finished "
        f"(best {result.best:.4f})",
        f"  {'epoch':>5} {'finished':>8} {'rank corr.':>10} {'pruned':>6}  could have beaten the best (chance >= {PLAUSIBLE:.0%})",
    ]
    for d in result.decisions:
        rho = "-" if math.isnan(d.rank_correlation) else f"{d.rank_correlation:.2f}"
        if not d.chances:
            could = "- (too few finished trials to say)"
        else:
            top = max(d.chances.values())
            could = (
                ", ".join(f"trial {n} ({d.chances[n]:.0%})" for n in d.plausible)
                or f"none (highest chance {top:.0%})"
            )
        lines.append(f"  {d.epoch:>5} {d.finished:>8} {rho:>10} {len(d.pruned):>6}  {could}")
    lines.append("  " + _verdict(result))
    return lines


def _verdict(result: Audit) -> str:
    rhos = [(d.epoch, d.rank_correlation) for d in result.decisions if not math.isnan(d.rank_correlation)]
    plausible = [n for d in result.decisions for n in d.plausible]
    if result.finished < MIN_FINISHED or not rhos:
        return f"verdict: too few finished trials ({result.finished}) to judge the pruner's early reads"
    doubtful = [(e, r) for e, r in rhos if r < DOUBTFUL]
    if doubtful:
        epoch, rho = doubtful[0]
        words = (
            f"verdict: doubtful: at epoch {epoch} the values ranked trials poorly against their final values "
            f"(rank correlation {rho:.2f}); the pruner may have stopped good trials: prune later (n_warmup_steps > {epoch})"
        )
    elif all(r >= TRUSTED for _, r in rhos):
        words = f"verdict: safe: early values ranked trials like their final values (rank correlation >= {TRUSTED} at every decision epoch)"
    else:
        words = (
            f"verdict: mostly safe: early values ranked trials roughly like their final values "
            f"(rank correlation {min(r for _, r in rhos):.2f} at worst)"
        )
    if plausible:
        words += (
            f"; {len(plausible)} pruned trial(s) ({', '.join(map(str, sorted(plausible)))}) might have beaten the best: "
            "re-run their params unpruned (hydra.sweeper.enqueue_trials) to know"
        )
    else:
        words += "; no pruned trial would plausibly have beaten the best"
    return words
