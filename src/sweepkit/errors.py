"""The one error type for bad user input: a single line naming the key, the value and what is allowed."""

from __future__ import annotations

import signal
from collections.abc import Iterable
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
