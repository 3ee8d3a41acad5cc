"""The sweeper's ``sampler`` and ``pruner`` settings turned into Optuna objects, the same way in the
sweeper and in every trial job (which rebuilds the pruner: Optuna does not store it)."""

from __future__ import annotations

from typing import Any

from sweepkit.errors import ConfigError

OPTUNA_PART_MODULES = {"sampler": "optuna.samplers", "pruner": "optuna.pruners"}
# What a null sampler / pruner means. Defaults live here, not in the config schema, because Hydra
# merges a preset's node into the schema's: a preset's NopPruner would inherit MedianPruner's arguments.
DEFAULT_PARTS = {
    # constant_liar: a running trial counts as a poor result, so parallel workers spread out
    "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": 42, "constant_liar": True},
    "pruner": {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 5, "n_warmup_steps": 1},
}


def _spec_from_call(key: str, text: str, module_name: str) -> dict[str, Any]:
    """``PercentilePruner`` or ``PercentilePruner(percentile=25.0)``: a class in ``module_name`` and
    literal keyword arguments, as a ``_target_`` config."""
    import ast
    import importlib

    try:
        expression = ast.parse(text.strip(), mode="eval").body
        call = expression if isinstance(expression, ast.Call) else ast.Call(expression, [], [])
        if call.args or not all(k.arg for k in call.keywords):
            raise ValueError("positional arguments")
        name = ast.unparse(call.func).rsplit(".", 1)[-1]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (SyntaxError, ValueError) as err:
        raise ConfigError(
            key, text, f"must be ClassName or ClassName(arg=literal, ...) with a class in {module_name}"
        ) from err
    cls = getattr(importlib.import_module(module_name), name, None)
    if not isinstance(cls, type):
        raise ConfigError(key, text, f"does not name a class in {module_name}")
    return {"_target_": f"{cls.__module__}.{cls.__name__}", **kwargs}


def part_spec(kind: str, spec: Any) -> dict[str, Any]:
    """``hydra.sweeper.sampler`` / ``.pruner`` as a ``_target_`` dict: a ``_target_`` config; a class of
    ``optuna.samplers`` / ``optuna.pruners`` by name, with keyword arguments or without
    (``hydra.sweeper.pruner=NopPruner``, ``'hydra.sweeper.pruner="PercentilePruner(percentile=25.0)"'``);
    or null for sweepkit's default (a seeded TPE sampler with constant liar, a median pruner).

    The string form exists because on the command line Hydra merges a node into the preset's,
    keeping the preset's arguments; a string replaces the node whole.
    """
    from omegaconf import DictConfig, OmegaConf

    key, module_name = f"hydra.sweeper.{kind}", OPTUNA_PART_MODULES[kind]
    if spec is None:
        spec = DEFAULT_PARTS[kind]
    if isinstance(spec, str):
        spec = _spec_from_call(key, spec, module_name)
    if isinstance(spec, DictConfig):
        spec = OmegaConf.to_container(spec, resolve=True)
    if isinstance(spec, dict) and "_target_" not in spec:  # arguments for the default class
        spec = {**DEFAULT_PARTS[kind], **spec}
    if not isinstance(spec, dict):
        raise ConfigError(
            key, spec, f"must be a _target_ config, or ClassName(arg=value, ...) of a class in {module_name}"
        )
    return dict(spec)


def build_optuna_part(kind: str, spec: Any, seed: int | None = None) -> Any:
    """The Optuna sampler or pruner a setting describes (see :func:`part_spec`). ``seed`` replaces the
    configured seed of a seeded sampler (each sweep process of a study draws its own points)."""
    from hydra.utils import instantiate

    key, spec = f"hydra.sweeper.{kind}", part_spec(kind, spec)
    if seed is not None and spec.get("seed") is not None:
        spec = {**spec, "seed": seed}
    try:
        return instantiate(spec)
    except Exception as err:  # Hydra wraps the TypeError of a wrong argument; show its last line
        cause = err.__cause__ or err
        raise ConfigError(
            key,
            spec,
            f"cannot be built: {cause} (to replace the whole node: {key}='\"ClassName(arg=value)\"')",
        ) from err
