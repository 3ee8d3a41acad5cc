"""The one error type for bad user input: a single line naming the key, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A config value that cannot be used; ``str(err)`` is the one line shown to the user."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value} {allowed}")


def one_of(key: str, value: Any, choices: Iterable[Any]) -> ConfigError:
    """The error for a value outside a fixed set: ``optimizer=adamx is not one of: sgd, adam``."""
    return ConfigError(key, value, "is not one of: " + ", ".join(str(c) for c in choices))
