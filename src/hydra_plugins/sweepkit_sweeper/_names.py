"""Text the sweeper writes into trial jobs' overrides: values quoted for Hydra's grammar, and study
names checked to be safe as folder names and to reach every job unchanged."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

from sweepkit.errors import ConfigError

SAFE_OVERRIDE_VALUE = re.compile(r"[\w.:/@+-]+")
STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=,+-]*")
MAX_STUDY_NAME = 128  # leaves room in a 255-byte file name for suffixes, and in MLflow's run names
STUDY_NAME_RULE = (
    f"must be 1-{MAX_STUDY_NAME} characters of A-Z a-z 0-9 _ . = , + - (not starting with . = , + -): "
    "it names the sweep folder multirun/<study_name> and passes to every trial job"
)


def override_value(value: Any) -> str:
    """A value as Hydra override text (strings quoted when the grammar needs it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str) and not SAFE_OVERRIDE_VALUE.fullmatch(value):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def check_study_name(name: object) -> str:
    """A study name safe as a folder name (no separators, no ``..``), short enough for one, and one that
    Hydra's override grammar passes to the trial jobs unchanged; checked before anything is created."""
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name) or len(name) > MAX_STUDY_NAME:
        raise ConfigError("hydra.sweeper.study_name", name, STUDY_NAME_RULE)
    parsed = OverridesParser.create().parse_overrides([f"hydra.sweeper.study_name={override_value(name)}"])[0]
    if parsed.value() != name:
        raise ConfigError("hydra.sweeper.study_name", name, STUDY_NAME_RULE)
    return name


def derive_study_name(preset: str | None, fixed_overrides: Sequence[str]) -> str:
    """``<preset>`` plus the fixed overrides (or their hash when long): one study per fixed config."""
    base = preset or "sweep"
    if not fixed_overrides:
        return base
    text = ",".join(sorted(fixed_overrides))
    name = f"{base}-{text}"
    if len(text) <= 60 and STUDY_NAME.fullmatch(name):
        return name
    return f"{base}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"
