"""Trial configs: Hydra composes a config once per set of config-group choices, and each trial gets a
copy with its values set.

Hydra composes every job's config from scratch: it reads the config files, builds the defaults tree and
merges it, 0.1-0.2 s a trial, though a sweep's trials differ mostly in values (the lr, the batch size)
that Hydra sets after composing anyway. This loader composes, through Hydra, the config of a trial's
group choices (``optimizer=adam``, with ``hydra.searchpath``) once per process; each trial gets a copy with its value overrides
applied by Hydra's own function, in Hydra's order, and Hydra's record of the overrides
(``hydra.overrides``, ``hydra.job.override_dirname``) written as Hydra writes it. Which override chooses
a config group is decided as Hydra decides it, on the search path the overrides make.

It stands in for Hydra's config loader in the sweep's launcher (every launcher composes a job's config
through ``hydra_context.config_loader.load_sweep_config``); sent to a launcher's worker processes, it
keeps its compositions per process, so a long-lived worker composes each set of choices once too.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.types import Override
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

SEARCHPATH = "hydra.searchpath"
# per process: (config name, search path, working directory, group choices) -> the config Hydra composed
_COMPOSED: dict[tuple, DictConfig] = {}


class TrialConfigLoader:
    """Hydra's config loader, with ``load_sweep_config`` composing each set of group choices once."""

    def __init__(self, hydra_loader: ConfigLoaderImpl) -> None:
        self.hydra_loader = hydra_loader

    def __getattr__(self, name: str) -> Any:  # everything else is Hydra's
        if name.startswith("__") or name == "hydra_loader":  # looked up before unpickling fills __dict__
            raise AttributeError(name)
        return getattr(self.hydra_loader, name)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        config_name = master_config.hydra.job.config_name
        lines = [*master_config.hydra.overrides.hydra, *sweep_overrides]
        parsed, repo = self.hydra_loader._parse_overrides_and_create_caching_repo(config_name, lines)
        choices = tuple(o.input_line for o in parsed if _chooses_config(o, repo) or _adds_configs(o))
        sources = tuple((source.provider, source.path) for source in repo.get_sources())
        key = (config_name, sources, os.getcwd(), choices)
        if key not in _COMPOSED:
            _COMPOSED[key] = self.hydra_loader.load_configuration(
                config_name=config_name, overrides=list(choices), run_mode=RunMode.RUN
            )
        cfg = copy.deepcopy(_COMPOSED[key])
        ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if not _chooses_config(o, repo)], cfg)
        _record_overrides(cfg, parsed)
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)  # as Hydra's load_sweep_config does
        return cfg


def _chooses_config(override: Override, repo: Any) -> bool:
    """Hydra's rule (``hydra._internal.defaults_list.Overrides``): an override of a config group's name,
    not a dict, picks (or adds, or removes) a config; any other sets a value after the composition."""
    return repo.group_exists(override.key_or_group) and not isinstance(override.value(), dict)


def _adds_configs(override: Override) -> bool:
    """``hydra.searchpath``: where the composition finds configs (a user's groups, ``model=flaky``); it is
    a value too, which Hydra sets after the composition like any other."""
    return override.key_or_group == SEARCHPATH


def _record_overrides(cfg: DictConfig, parsed: list[Override]) -> None:
    """``hydra.overrides`` and ``hydra.job.override_dirname`` of all the overrides, as Hydra writes them."""
    task = [o for o in parsed if not o.is_hydra_override()]
    cfg.hydra.overrides.hydra = [o.input_line for o in parsed if o.is_hydra_override()]
    cfg.hydra.overrides.task = [o.input_line for o in task]
    dirname = cfg.hydra.job.config.override_dirname
    cfg.hydra.job.override_dirname = get_overrides_dirname(
        overrides=task,
        kv_sep=dirname.kv_sep,
        item_sep=dirname.item_sep,
        exclude_keys=dirname.exclude_keys,
    )


def loader_for_trials(hydra_loader: ConfigLoader) -> ConfigLoader:
    """The loader to give the sweep's launcher: this one over Hydra's own, or Hydra's as it is where it is
    another implementation (whose composition this one cannot stand in for)."""
    return TrialConfigLoader(hydra_loader) if isinstance(hydra_loader, ConfigLoaderImpl) else hydra_loader
