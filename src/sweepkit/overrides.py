"""Checks of command-line overrides made before Hydra composes, for errors Hydra reports in many lines."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException

from sweepkit.errors import ConfigError, one_of


def group_options(config_dir: Path, group: str) -> list[str]:
    """The options of a config group: the YAML files in its folder, without the suffix."""
    return sorted(p.stem for p in (config_dir / group).glob("*.yaml"))


def _parse_each(overrides: Sequence[str]) -> Iterable:
    """Parse the overrides one by one, skipping what is not one (Hydra reports syntax errors itself)."""
    parser = OverridesParser.create()
    for text in overrides:
        try:
            yield from parser.parse_overrides([text])
        except OverrideParseException:
            continue


def check_group_choices(overrides: Sequence[str], config_dir: Path, skip_groups: Iterable[str] = ("hydra",)) -> None:
    """Every ``group=option`` override names an option that exists (sweeps: every option of it).

    Groups under ``hydra/`` are left to Hydra: its plugins add options outside ``config_dir``. So is
    everything when the user adds a config search path.
    """
    if any(o.startswith(("hydra.searchpath", "+hydra.searchpath")) for o in overrides):
        return
    for override in _parse_each(overrides):
        group = override.key_or_group
        if override.is_delete() or group.split("/")[0] in skip_groups or not (config_dir / group).is_dir():
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
        options = group_options(config_dir, group)
        for value in values:
            if value != "null" and value not in options:
                raise one_of(group, value, options)


def exit_on_bad_group_choice(prog: str, argv: Sequence[str], config_dir: Path) -> None:
    """For a console script, before Hydra starts: a bad group choice is one line and exit 2
    (Hydra's own message lists the search path and takes several lines)."""
    try:
        check_group_choices([a for a in argv if not a.startswith("-")], config_dir)
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
