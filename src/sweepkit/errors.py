"""Errors a user sees as one line: bad input (naming the key, the value and what is allowed), a run
that could not finish, a stop asked for by a signal; and the checks of a value's type and range."""

from __future__ import annotations

import math
import signal
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config value that cannot be used; ``str(err)`` is the one line shown to the user."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value} {allowed}")


class RunFailed(RuntimeError):
    """A run that started and could not finish (the loss diverged, a range test left no curve, a sweep
    had too many failures); ``str(err)`` is the one line shown to the user, exit status 1."""


class Stopped(KeyboardInterrupt):
    """A stop asked for by a signal (SIGTERM from a scheduler or ``kill``, SIGINT from Ctrl-C): what
    was running ends KILLED, and the process exits as the signal would (128 + its number)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def one_of(key: str, value: Any, choices: Iterable[Any]) -> ConfigError:
    """The error for a value outside a fixed set: ``optimizer=adamx is not one of: sgd, adam``."""
    return ConfigError(key, value, "is not one of: " + ", ".join(str(c) for c in choices))


def integer(key: str, value: Any, at_least: int | None = None) -> int:
    """``value`` if it is a whole number (not a bool, not 2.5, not "abc") of at least ``at_least``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            key, value, "must be an integer" + (f" >= {at_least}" if at_least is not None else "")
        )
    if at_least is not None and value < at_least:
        raise ConfigError(key, value, f"must be >= {at_least}")
    return value


def number(key: str, value: Any, above: float | None = None, at_least: float | None = None) -> float:
    """``value`` as a float if it is a finite number (not inf, nan, a bool or a string) in range."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        bound = f" > {above}" if above is not None else f" >= {at_least}" if at_least is not None else ""
        raise ConfigError(key, value, f"must be a finite number{bound}")
    if above is not None and not value > above:
        raise ConfigError(key, value, f"must be > {above}")
    if at_least is not None and not value >= at_least:
        raise ConfigError(key, value, f"must be >= {at_least}")
    return float(value)


def flag(key: str, value: Any) -> bool:
    """``value`` if it is true or false (a YAML ``yes`` or ``1`` is not a flag here)."""
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")
    return value


def writable_folder(key: str, folder: Path) -> Path:
    """A folder a run can write into (made if missing), found out before any work rather than at the
    first checkpoint."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            key, str(folder), f"is not a writable folder ({err.strerror or type(err).__name__})"
        ) from None
    return folder
