"""The Hydra Optuna sweeper's search-space grammar, turned into Optuna distributions, and the space
recorded with the study so that a resume with another one is refused instead of mixed in.

``interval(a, b)`` is uniform, ``int(interval(a, b))`` uniform on integers, ``tag(log, interval(a, b))``
log-uniform, ``range(a, b, step)`` a stepped grid (b included, as in the Hydra Optuna sweeper),
``choice(...)`` categorical (``shuffle(...)`` too: a categorical has no order); a plain value is fixed for every trial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

from sweepkit.errors import ConfigError


def _choices(override: Override) -> CategoricalDistribution:
    value = override.value()
    if getattr(value, "shuffle", False):
        # The order of a categorical means nothing to the sampler, but it must be the same in every
        # process: a resumed or shared study rejects a reordered distribution. Keep the written order.
        override = dataclasses.replace(override, _value=dataclasses.replace(value, shuffle=False))
    return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))


def _written(override: Override) -> str:
    return override.input_line.split("=", 1)[-1] if override.input_line else str(override.value())


def _range(override: Override, value: RangeSweep) -> BaseDistribution:
    if value.shuffle:
        return _choices(override)
    if not (value.step > 0 and value.start <= value.stop):
        raise ConfigError(
            override.get_key_element(), _written(override), "needs start <= stop and a step > 0"
        )
    if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
        return FloatDistribution(value.start, value.stop, step=value.step)
    return IntDistribution(int(value.start), int(value.stop), step=int(value.step))


def _interval(override: Override, value: IntervalSweep) -> BaseDistribution:
    log = "log" in value.tags
    if not value.start <= value.end:
        raise ConfigError(
            override.get_key_element(),
            _written(override),
            f"is reversed: write interval({value.end}, {value.start})",
        )
    if log and value.start <= 0:
        raise ConfigError(
            override.get_key_element(), _written(override), "is log-scaled, so its bounds must be > 0"
        )
    if isinstance(value.start, int) and isinstance(value.end, int):
        return IntDistribution(value.start, value.end, log=log)
    return FloatDistribution(value.start, value.end, log=log)


def distribution(override: Override) -> BaseDistribution | str:
    """The distribution a sweep override describes, or the fixed value (as override text)."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if isinstance(value, ChoiceSweep):
        if not value.list:
            raise ConfigError(
                override.get_key_element(), _written(override), "is an empty choice: list at least one value"
            )
        return _choices(override)
    if isinstance(value, RangeSweep):
        return _range(override, value)
    if isinstance(value, IntervalSweep):
        return _interval(override, value)
    raise ConfigError(
        override.get_key_element(),
        override.input_line,
        "uses a sweep form the sweepkit sweeper does not know",
    )


def parse_search_space(overrides: Iterable[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """Split ``key=value`` overrides into Optuna distributions and values fixed for every trial.

    Later overrides win, so the command line refines the preset's ``params``.
    """
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element()
        found: Any = distribution(override)
        distributions.pop(key, None)
        fixed.pop(key, None)
        if isinstance(found, BaseDistribution):
            distributions[key] = found
        else:
            fixed[key] = found
    return distributions, fixed


def params_as_overrides(params: dict[str, Any] | None) -> list[str]:
    """``hydra.sweeper.params`` (``{key: "interval(0, 1)"}``) as override strings."""
    return [f"{key}={value}" for key, value in (params or {}).items()]


def as_record(distributions: dict[str, BaseDistribution]) -> dict[str, str]:
    """The search space as the study keeps it (a study user attribute): Optuna's own JSON per param."""
    return {name: distribution_to_json(d) for name, d in sorted(distributions.items())}


def check_unchanged(
    study_name: str, recorded: dict[str, str], distributions: dict[str, BaseDistribution]
) -> None:
    """A resumed study keeps its search space: another one would mix incomparable trials in one study."""
    current = as_record(distributions)
    for name in sorted(set(recorded) | set(current)):
        if recorded.get(name) != current.get(name):
            old = repr(json_to_distribution(recorded[name])) if name in recorded else "(not searched)"
            new = repr(distributions[name]) if name in current else "(not searched)"
            raise ConfigError(
                f"hydra.sweeper.params.{name}",
                new,
                f"differs from study {study_name}'s search space, {old}: keep that space to resume it, or start a new "
                "study for this one (hydra.sweeper.study_name=<new name>)",
            )
