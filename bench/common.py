"""Helpers shared by the benchmarks: alternate the contenders, repeat, report medians and spread."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass


def alternate(
    contenders: Mapping[str, Callable[[], float]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each contender once per round, round after round, so drift hits them all alike.

    Each contender returns its own measurement (e.g. samples/s); warm-up rounds are discarded.
    """
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for round_index in range(warmup + repeats):
        for name, measure in contenders.items():
            value = measure()
            if round_index >= warmup:
                results[name].append(value)
    return results


def summary(values: list[float]) -> str:
    """``median (min..max, n=5)``."""
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}..{max(values):,.1f}, n={len(values)})"


def ratio(numerator: list[float], denominator: list[float]) -> str:
    """Median of the per-round ratios, with their spread (rounds pair up: they ran back to back)."""
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return f"{statistics.median(ratios):.3f}x ({min(ratios):.3f}..{max(ratios):.3f})"


@dataclass
class Sweep:
    """One sweep's outcome, as the sweep benchmarks record it."""

    wall_s: float
    trials: int
    epochs: int
    best: float
