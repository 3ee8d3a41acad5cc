"""Parts named by ``_target_`` (optimizer, scheduler, loss): find the target, read the settings it
is called with, and name it for run names and logs.

Each part's config holds a few keys of sweepkit's own (``name``, ``lr``, ``auto_rule``, ...) and
passes every other key to its target, so the target's own documentation describes them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweepkit.errors import ConfigError

NAME_RESOLVER = "sweepkit.target_name"  # ${sweepkit.target_name:${._target_}} in train.yaml


def target_name(path: str | None) -> str:
    """The name a target goes by in run names and logs: ``torch.optim.AdamW`` is ``adamw``; none is ``none``."""
    return "none" if path is None else str(path).rsplit(".", 1)[-1].lower()


def register_resolvers() -> None:
    """Make ``${sweepkit.target_name:...}`` resolvable in configs (once per process)."""
    if not OmegaConf.has_resolver(NAME_RESOLVER):
        OmegaConf.register_new_resolver(NAME_RESOLVER, target_name)


def import_target(key: str, path: Any) -> Callable[..., Any]:
    """The class or function ``path`` names (``key`` is its config key, for the error)."""
    from hydra.utils import get_object  # hydra's import rules, as for model._target_

    if not isinstance(path, str) or not path:
        raise ConfigError(
            key, path, "must name a class or function, e.g. torch.optim.NAdam or mypkg.optim.Lion"
        )
    try:
        target = get_object(path)
    except Exception as err:  # ImportError, AttributeError or hydra's own: the path does not lead anywhere
        raise ConfigError(key, path, f"cannot be imported ({type(err).__name__}: {err})") from err
    if not callable(target):
        raise ConfigError(key, path, "is not a class or function")
    return target


def settings(node: DictConfig | Mapping[str, Any], own_keys: Iterable[str]) -> dict[str, Any]:
    """The keyword arguments a target gets: every key but ``_target_`` and the part's own keys.

    YAML lists become tuples, the form torch's arguments take (Adam's ``betas``)."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    skip = {"_target_", *own_keys}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in plain.items() if k not in skip}


def accepts(target: Callable[..., Any], parameter: str) -> bool:
    """Whether ``target`` (a class: its constructor) takes a keyword argument named ``parameter``."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: assume nothing
        return False
    kinds = {p.name: p.kind for p in signature.parameters.values()}
    return kinds.get(parameter) in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def call(target: Callable[..., Any], key: str, label: Any, *args: Any, **kwargs: Any) -> Any:
    """``target(*args, **kwargs)``, with an error torch raises about a setting told as one line
    (``optimizer=sgd rejects its settings {...}: Nesterov momentum requires a momentum``)."""
    try:
        return target(*args, **kwargs)
    except (ValueError, TypeError, RuntimeError) as err:  # torch names the bad setting
        raise ConfigError(key, label, f"rejects its settings {kwargs}: {err}") from err
