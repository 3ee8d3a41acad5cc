"""The lr-vs-batch law a sweep teaches: the best learning rate at each batch size, the exponent
alpha of lr*(B) ~ B**alpha with its interval, a verdict (the linear rule of Goyal et al. 2017, the
square-root rule of Malladi et al. 2022, or neither), the batch size past which the best lr stops
growing (McCandlish et al. 2018: past the critical batch size larger batches stop paying), and what
to put in the config.

    sweepkit-report multirun/scaling_law-optimizer=sgd --scaling

It reads only the trials' params ``data.batch_size`` and ``optimizer.lr`` (the lr a trial trained
with: its ``lr_effective`` attribute, else ``optimizer.lr`` when ``lr_scaling.rule`` is none) and
their values, so it works on any study that searched both; a study that also searched
``optimizer`` gets one law per optimizer.

How, and why so:
- Per batch size the objective is smoothed against log10(lr) by a local quadratic (Gaussian
  weights, bandwidth one grid step) and the best lr is the smooth curve's best point: a raw
  arg-max jumps from grid point to grid point with noise. Values worse than the batch size's
  median are raised to it first, so the fit looks at the top and not at how badly runs diverge;
  a diverged trial counts as the worst value there.
- A bootstrap over trials (resampled within each batch size) gives each best lr its interval and,
  refitting everything per replicate, alpha's interval.
- Across batch sizes a weighted least-squares line log lr* = alpha log B + c, weighted by the
  bootstrap variances; when the optima scatter about the line more than their intervals allow,
  alpha's interval widens by the square root of the reduced chi-square.
- A best lr at the edge of the searched range is not bracketed: it is shown but left out of the fit.
- A break is a two-segment (hinge) fit whose slope past the hinge is at most half the slope before,
  with the bootstrap sure (5th percentile) that it flattens.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sweepkit import studies
from sweepkit.tasks import NOISE_SCALE

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("sweepkit")
BATCH, LR, OPTIMIZER, RULE = "data.batch_size", "optimizer.lr", "optimizer", "lr_scaling.rule"
RULES = {"linear": 1.0, "sqrt": 0.5}  # the lr_scaling rules a fitted alpha is checked against
LEVEL = 0.90  # every interval here is a 90% bootstrap interval
BOOTSTRAP = 400  # replicates (the intervals' percentiles move by less than a grid step beyond this)
MIN_LR_POINTS = 3  # distinct lrs a batch size needs for a smooth best (a quadratic has 3 parameters)
MIN_BREAK_POINTS = 4  # batch sizes a two-segment fit needs (two per segment, the hinge shared)
FLATTENING = 0.5  # a break: the slope past the hinge is at most this share of the slope before it
EVAL_POINTS = 201  # where the smooth curve is evaluated between the smallest and largest lr
NEAR_BEST_DECADES = 0.5  # trials within this of a best lr speak for its noise scale


class ScalingError(ValueError):
    """The study cannot give a law (too few batch sizes or lr points); the message says what is missing."""


@dataclass(frozen=True)
class Point:
    """One trial as the fit sees it: batch size, the lr it trained with, its value (None: diverged)."""

    batch_size: int
    lr: float
    value: float | None
    noise_scale: float | None = None  # median over its epochs (inf: beyond what the probe resolved)
    group: str = ""


@dataclass
class Optimum:
    """The best lr at one batch size, with its bootstrap interval."""

    batch_size: int
    trials: int
    lr: float
    low: float
    high: float
    value: float  # the best value a trial at this batch size reached (the smooth curve can overshoot it)
    at_edge: bool  # the best lies at the edge of the searched lrs: not bracketed, left out of the fit
    noise_scale: float | None = None


@dataclass
class Law:
    """log10 lr* = alpha log10 B + intercept over ``batch_sizes``, alpha's interval, the verdict."""

    alpha: float
    low: float
    high: float
    intercept: float
    batch_sizes: list[int]

    @property
    def verdict(self) -> str:
        """``linear`` or ``sqrt`` when the interval holds that rule's exponent (only), ``undecided``
        when it holds both, ``neither`` when it holds none."""
        held = [name for name, exponent in RULES.items() if self.low <= exponent <= self.high]
        return held[0] if len(held) == 1 else "undecided" if held else "neither"

    def lr_at(self, batch_size: float) -> float:
        return 10 ** (self.alpha * math.log10(batch_size) + self.intercept)


@dataclass
class Break:
    """Where the best lr stops growing: the hinge and the slopes on both sides."""

    batch_size: float
    alpha_below: float
    alpha_above: float


@dataclass
class Fit:
    """What one group of trials (one optimizer, or the whole study) teaches."""

    group: str
    maximize: bool
    optima: list[Optimum]
    law: Law | None
    breakpoint: Break | None = None
    best_batch_size: int | None = None  # the batch size of the best trial
    notes: list[str] = field(default_factory=list)

    @property
    def noise_scale(self) -> float | None:
        """The median of the per-batch-size noise scales (inf: beyond what the probe resolved)."""
        values = [o.noise_scale for o in self.optima if o.noise_scale is not None]
        return float(np.median(values)) if values else None

    def suggestion(self) -> dict[str, object] | None:
        """``lr_scaling.rule``, ``lr_scaling.base_batch_size`` and ``optimizer.lr`` to train with."""
        if self.law is None or self.best_batch_size is None:
            return None
        verdict = self.law.verdict
        if verdict == "undecided":  # the nearer rule; describe() says the data cannot tell
            rule = min(RULES, key=lambda r: abs(RULES[r] - self.law.alpha))
        else:
            rule = verdict if verdict in RULES else "none"
        base = self.best_batch_size
        if rule == "none":
            at_base = [o for o in self.optima if o.batch_size == base]
            lr = at_base[0].lr if at_base else self.law.lr_at(base)
        else:
            lr = self.law.lr_at(base)
        return {
            "lr_scaling.rule": rule,
            "lr_scaling.base_batch_size": base,
            "optimizer.lr": float(f"{lr:.3g}"),
        }

    def metrics(self) -> dict[str, float]:
        """For the sweep's parent run (``scaling/alpha`` ..., per optimizer ``scaling/sgd/alpha`` ...)."""
        prefix = f"scaling/{self.group}/" if self.group else "scaling/"
        out: dict[str, float] = {}
        if self.law is not None:
            out.update(
                {
                    f"{prefix}alpha": self.law.alpha,
                    f"{prefix}alpha_low": self.law.low,
                    f"{prefix}alpha_high": self.law.high,
                }
            )
        if self.breakpoint is not None:
            out[f"{prefix}break_batch_size"] = self.breakpoint.batch_size
        noise = self.noise_scale
        if noise is not None and math.isfinite(noise):
            out[f"{prefix}grad_noise_scale"] = noise
        return out

    def tags(self) -> dict[str, str]:
        prefix = f"scaling.{self.group}." if self.group else "scaling."
        return {f"{prefix}verdict": self.law.verdict} if self.law is not None else {}


# -- reading a study -------------------------------------------------------------------------------
def searched(study: optuna.Study) -> bool:
    """Whether the study's trials vary both the batch size and the lr (and it has one objective)."""
    if len(study.directions) != 1:
        return False
    trials = study.get_trials(deepcopy=False)
    return len({t.params.get(BATCH) for t in trials if BATCH in t.params}) >= 2 and any(
        LR in t.params for t in trials
    )


def _trial_lr(trial) -> float | None:
    """The lr the trial trained with: its lr_effective, else optimizer.lr when no rule scaled it."""
    if studies.LR_EFFECTIVE in trial.user_attrs:
        return float(trial.user_attrs[studies.LR_EFFECTIVE])
    if trial.params.get(RULE, "none") != "none":
        return None  # scaled by a rule, from a job that did not record lr_effective
    return float(trial.params[LR])


def _median_noise_scale(per_epoch) -> float | None:
    """A trial's noise scale over its training: the median of its measured epochs, an unresolved one
    (NaN) counting as +inf; epochs without a measurement (None: the probe's time budget) do not count."""
    values = [math.inf if math.isnan(v) else float(v) for v in per_epoch or [] if v is not None]
    return float(np.median(values)) if values else None


def points_from_study(study: optuna.Study) -> tuple[list[Point], list[str]]:
    """The fit's points (COMPLETE trials, and diverged ones as the worst), and notes on what was left out."""
    from optuna.trial import TrialState

    points, no_lr, pruned = [], 0, 0
    for t in study.get_trials(deepcopy=False):
        if BATCH not in t.params or LR not in t.params:
            continue
        diverged = t.state == TrialState.PRUNED and t.user_attrs.get(studies.PRUNE_REASON) == "diverged"
        if t.state == TrialState.PRUNED and not diverged:
            pruned += 1
            continue
        if t.state != TrialState.COMPLETE and not diverged:
            continue
        lr = _trial_lr(t)
        if lr is None:
            no_lr += 1
            continue
        group = str(t.params.get(OPTIMIZER, ""))
        value = None if diverged else float(t.value)
        points.append(
            Point(int(t.params[BATCH]), lr, value, _median_noise_scale(t.user_attrs.get(NOISE_SCALE)), group)
        )
    notes = []
    if pruned:
        notes.append(
            f"{pruned} trials stopped early (by the pruner, or out of memory) are left out: they have no final value"
        )
    if no_lr:
        notes.append(f"{no_lr} trials scaled by lr_scaling.rule recorded no lr_effective: left out")
    return points, notes


def fit_study(study: optuna.Study, seed: int = 0) -> list[Fit]:
    """One fit per optimizer the study searched (one in all when it searched none)."""
    points, notes = points_from_study(study)
    maximize = study.direction.name == "MAXIMIZE"
    groups: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        groups[p.group].append(p)
    if len(groups) == 1:  # a single optimizer needs no name in the metric names
        groups = {"": next(iter(groups.values()))}
    fits = []
    for name, members in sorted(groups.items()):
        result = fit(members, maximize, seed=seed)
        result.group = name
        result.notes = notes + result.notes
        fits.append(result)
    if not fits:
        raise ScalingError("no finished trial has both data.batch_size and optimizer.lr")
    return fits


# -- the fit ---------------------------------------------------------------------------------------
@dataclass
class _Column:
    """One batch size's trials, oriented so that larger is better."""

    batch_size: int
    x: np.ndarray  # log10 lr
    y: np.ndarray
    spacing: float  # the median step between its lrs (log10), also the smoothing bandwidth


def _columns(points: Sequence[Point], maximize: bool) -> tuple[list[_Column], list[str]]:
    by_batch: dict[int, list[Point]] = defaultdict(list)
    for p in points:
        by_batch[p.batch_size].append(p)
    columns, notes = [], []
    for batch, members in sorted(by_batch.items()):
        finite = [
            (p.value if maximize else -p.value)
            for p in members
            if p.value is not None and math.isfinite(p.value)
        ]
        distinct = np.unique(np.log10([p.lr for p in members]))
        if not finite or len(distinct) < MIN_LR_POINTS:
            notes.append(
                f"batch {batch}: {len(distinct)} distinct lrs with a value, {MIN_LR_POINTS} needed: left out"
            )
            continue
        worst = min(finite)
        x = np.log10([p.lr for p in members])
        y = np.array(
            [
                worst
                if p.value is None or not math.isfinite(p.value)
                else (p.value if maximize else -p.value)
                for p in members
            ]
        )
        columns.append(_Column(batch, x, y, max(float(np.median(np.diff(distinct))), 0.05)))
    return columns, notes


def smooth_best(x: np.ndarray, y: np.ndarray, bandwidth: float) -> tuple[float, float, bool]:
    """(best log10 lr, the smooth value there, whether it lies at the edge of ``x``): the best point
    of a local quadratic fit of ``y`` (larger is better) against ``x``."""
    y = np.maximum(y, np.median(y))  # only the top half shapes the peak
    grid = np.linspace(x.min(), x.max(), EVAL_POINTS)
    d = (x[None, :] - grid[:, None]) / bandwidth  # (grid, points)
    w = np.exp(-0.5 * d**2)
    features = np.stack([np.ones_like(d), d, d**2], axis=-1)
    a = np.einsum("gni,gn,gnj->gij", features, w, features)
    b = np.einsum("gni,gn,n->gi", features, w, y)
    a += 1e-9 * w.sum(axis=1)[:, None, None] * np.eye(3)  # resampled duplicates can leave it singular
    smooth = np.linalg.solve(a, b[..., None])[:, 0, 0]
    i = int(np.argmax(smooth))
    return float(grid[i]), float(smooth[i]), i in (0, EVAL_POINTS - 1)


def _wls_line(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the weighted least-squares line v = slope u + intercept."""
    slope, intercept = np.polyfit(u, v, 1, w=np.sqrt(w))
    return float(slope), float(intercept)


def _hinge(u: np.ndarray, v: np.ndarray, w: np.ndarray, knot: float) -> tuple[np.ndarray, float]:
    """(c, slope below, slope above) of a continuous two-segment fit with its hinge at ``knot``, and its weighted SSE."""
    design = np.stack([np.ones_like(u), np.minimum(u - knot, 0.0), np.maximum(u - knot, 0.0)], axis=1)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], v * sw, rcond=None)
    return coef, float(np.sum(w * (design @ coef - v) ** 2))


def _interval(samples: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def fit(points: Sequence[Point], maximize: bool, seed: int = 0, n_boot: int = BOOTSTRAP) -> Fit:
    """The law one group of trials teaches (see the module docstring for the method)."""
    columns, notes = _columns(points, maximize)
    if not columns:
        return Fit("", maximize, [], None, notes=[*notes, "no batch size is left to fit"])
    rng = np.random.default_rng(seed)
    best = [smooth_best(c.x, c.y, c.spacing) for c in columns]
    replicates = np.full((n_boot, len(columns)), np.nan)
    for j, c in enumerate(columns):
        for b in range(n_boot):
            pick = rng.integers(0, len(c.x), len(c.x))
            if len(np.unique(c.x[pick])) >= MIN_LR_POINTS:
                replicates[b, j] = smooth_best(c.x[pick], c.y[pick], c.spacing)[0]
    optima = []
    for j, (c, (x_best, _, edge)) in enumerate(zip(columns, best)):
        low, high = _interval(replicates[~np.isnan(replicates[:, j]), j])
        # no narrower than the grid resolves: a few lrs resample into the same few curves
        low, high = min(low, x_best - c.spacing / 4), max(high, x_best + c.spacing / 4)
        optima.append(
            Optimum(
                c.batch_size,
                len(c.x),
                10**x_best,
                10**low,
                10**high,
                float(c.y.max() if maximize else -c.y.max()),
                edge,
            )
        )
    _attach_noise_scales(optima, points)
    for o in optima:
        if o.at_edge:
            notes.append(
                f"batch {o.batch_size}: best lr {o.lr:.3g} is at the edge of the searched lrs "
                "(not bracketed; widen scaling_law.lr_decades): left out of the fit"
            )

    result = Fit("", maximize, optima, None, best_batch_size=_best_batch(points, maximize), notes=notes)
    inside = [j for j, o in enumerate(optima) if not o.at_edge]
    if len(inside) < 2:
        result.notes.append("fewer than 2 batch sizes with a bracketed best lr: no law")
        return result
    u = np.log10([columns[j].batch_size for j in inside])
    v = np.array([best[j][0] for j in inside])
    spread = np.nanvar(replicates[:, inside], axis=0)
    w = 1.0 / np.maximum(spread, np.array([(columns[j].spacing / 4) ** 2 for j in inside]))
    sample = replicates[:, inside]
    sample = sample[~np.isnan(sample).any(axis=1)]

    batch_sizes = [columns[j].batch_size for j in inside]
    knot = _find_break(u, v, w, sample)
    if knot is None:
        result.law = _law(u, v, w, sample, batch_sizes)
    else:
        result.law, result.breakpoint = _law_with_break(u, v, w, sample, batch_sizes, knot)
    return result


def _widened(estimate: float, low: float, high: float, chi2: float) -> tuple[float, float]:
    """An interval widened by sqrt(reduced chi-square) when the optima scatter about the fit more
    than their own intervals allow (the fit explains less than the bootstrap alone claims)."""
    widen = math.sqrt(max(chi2, 1.0))
    return min(estimate - (estimate - low) * widen, estimate), max(
        estimate + (high - estimate) * widen, estimate
    )


def _law(u: np.ndarray, v: np.ndarray, w: np.ndarray, sample: np.ndarray, batch_sizes: list[int]) -> Law:
    alpha, intercept = _wls_line(u, v, w)
    low, high = _interval(np.array([_wls_line(u, s, w)[0] for s in sample]))
    chi2 = float(np.sum(w * (alpha * u + intercept - v) ** 2)) / (len(u) - 2) if len(u) > 2 else 1.0
    return Law(alpha, *_widened(alpha, low, high, chi2), intercept, batch_sizes)


def _law_with_break(u, v, w, sample, batch_sizes: list[int], knot: float) -> tuple[Law, Break]:
    """The law below the hinge (its slope from the two-segment fit, which every point informs) and the break."""
    coef, sse = _hinge(u, v, w, knot)
    c, below, above = (float(a) for a in coef)
    low, high = _interval(np.array([_hinge(u, s, w, knot)[0][1] for s in sample]))
    chi2 = sse / (len(u) - 4) if len(u) > 4 else 1.0  # c, two slopes and the hinge
    fitted = [b for b in batch_sizes if math.log10(b) <= knot + 1e-9]
    return Law(below, *_widened(below, low, high, chi2), c - below * knot, fitted), Break(
        10**knot, below, above
    )


def _find_break(u: np.ndarray, v: np.ndarray, w: np.ndarray, sample: np.ndarray) -> float | None:
    """The hinge (log10 B) past which the slope flattens, or None when the data do not show one."""
    if len(u) < MIN_BREAK_POINTS:
        return None
    knots = np.linspace(u[1], u[-2], 50)
    knot = min(knots, key=lambda k: _hinge(u, v, w, k)[1])
    coef, _ = _hinge(u, v, w, knot)
    below, above = coef[1], coef[2]
    if not (below > 0 and above <= FLATTENING * below):
        return None
    drops = np.array([(lambda c: c[1] - c[2])(_hinge(u, s, w, knot)[0]) for s in sample])
    return float(knot) if np.percentile(drops, 100 * (1 - LEVEL) / 2) > 0 else None


def _best_batch(points: Sequence[Point], maximize: bool) -> int | None:
    scored = [p for p in points if p.value is not None and math.isfinite(p.value)]
    if not scored:
        return None
    return (max if maximize else min)(scored, key=lambda p: p.value).batch_size


def _attach_noise_scales(optima: list[Optimum], points: Sequence[Point]) -> None:
    """Each best lr's noise scale: the median over the trials at that batch size near that lr."""
    for o in optima:
        near = [
            p.noise_scale
            for p in points
            if p.batch_size == o.batch_size
            and p.noise_scale is not None
            and abs(math.log10(p.lr / o.lr)) <= NEAR_BEST_DECADES
        ]
        o.noise_scale = float(np.median(near)) if near else None


# -- telling it ------------------------------------------------------------------------------------
def _noise_text(value: float | None) -> str:
    if value is None:
        return "-"
    return "unresolved" if math.isinf(value) else f"{value:.3g}"


def describe(fit_: Fit, objective: str = "value") -> list[str]:
    """The fit as plain lines: a table of best lrs, the law, the break, the noise scale, the config."""
    head = f"lr vs batch size{f' ({fit_.group})' if fit_.group else ''}: {objective} {'max' if fit_.maximize else 'min'}"
    lines = [head]
    if fit_.optima:
        lines.append(
            f"  {'batch':>6} {'trials':>6} {'best lr':>9}  {int(LEVEL * 100)}% interval    {'best ' + objective:>15}  {'B_simple':>10}"
        )
        for o in fit_.optima:
            edge = "  (edge: not bracketed)" if o.at_edge else ""
            lines.append(
                f"  {o.batch_size:>6} {o.trials:>6} {o.lr:>9.3g}  [{o.low:.3g}..{o.high:.3g}]".ljust(47)
                + f"{o.value:>10.4f}  {_noise_text(o.noise_scale):>10}{edge}"
            )
    law = fit_.law
    if law is not None:
        span = f"batch {law.batch_sizes[0]}..{law.batch_sizes[-1]}"
        lines.append(
            f"alpha {law.alpha:.2f} [{law.low:.2f}..{law.high:.2f}]  {law.verdict}   "
            f"(log lr* = alpha log B + c, weighted, {span}; linear rule 1, square-root rule 0.5)"
        )
    if fit_.breakpoint is not None:
        brk = fit_.breakpoint
        lines.append(
            f"break: past batch ~{brk.batch_size:.0f} the best lr stops growing (alpha {brk.alpha_below:.2f} "
            f"below, {brk.alpha_above:.2f} above): larger batches stop paying"
        )
    elif law is not None:
        lines.append("break: none seen (the best lr keeps its slope over the batch sizes fitted)")
    noise = fit_.noise_scale
    if noise is not None:
        lines.append(
            f"gradient noise scale B_simple ~ {_noise_text(noise)} (median over training, trials near each best lr; "
            "McCandlish et al.: larger batches stop paying near it)"
        )
    suggestion = fit_.suggestion()
    if suggestion is not None:
        lines.append(
            "config: "
            + " ".join(f"{k}={v}" for k, v in suggestion.items())
            + (f"  (the rule holds up to batch ~{fit_.breakpoint.batch_size:.0f})" if fit_.breakpoint else "")
        )
        if law is not None and law.verdict == "undecided":
            lines.append(
                "  alpha's interval holds both rules: more lr points or batch sizes would tell them apart"
            )
        if law is not None and law.verdict == "neither":
            lines.append("  neither rule fits: retune optimizer.lr when data.batch_size changes")
    lines += [f"note: {n}" for n in fit_.notes]
    return lines


@dataclass
class Outcome:
    """The fits of a study, the objective they are told in, and the plot."""

    fits: list[Fit]
    objective: str
    plot: Path | None

    @property
    def lines(self) -> list[str]:
        """Every fit as plain lines (``describe``), notes included: what the report prints."""
        return [line for fit_ in self.fits for line in describe(fit_, self.objective)]


def analyse(study: optuna.Study, plot_path: Path, objective: str = "value") -> Outcome:
    """Fit, describe and plot a study that searched batch size and lr (raises ScalingError)."""
    from sweepkit.plots import lr_vs_batch

    fits = fit_study(study)
    plot = (
        lr_vs_batch(fits, plot_path, f"best lr vs batch size: {study.study_name}")
        if any(f.optima for f in fits)
        else None
    )
    return Outcome(fits, objective, plot)


def at_sweep_end(study: optuna.Study, folder: Path, objective: str) -> Outcome | None:
    """The sweeper's hook: the law logged and plotted in ``folder`` when the study searched batch size
    and lr; never failing the sweep (like the study plots). Only the groups with a best lr for some
    batch size are told in full; the others (a pruned search of few lrs per batch size, as most
    presets' are) in one line, whose reasons ``sweepkit-report --scaling`` gives."""
    if not searched(study):
        return None
    try:
        outcome = analyse(study, folder / "lr_vs_batch.png", objective)
    except Exception as err:  # too few trials yet, a degenerate fit: the sweep's result stands
        log.info("lr-vs-batch fit skipped: %s", err)
        return None
    for line in (line for fit_ in outcome.fits if fit_.optima for line in describe(fit_, objective)):
        log.info("%s", line)
    unfitted = [fit_.group or "all trials" for fit_ in outcome.fits if not fit_.optima]
    if unfitted:
        log.info(
            "lr vs batch size: too few lrs per batch size to fit %s (hparams_search=scaling_law grids them; "
            "sweepkit-report --scaling says what was left out)",
            ", ".join(unfitted),
        )
    return outcome
