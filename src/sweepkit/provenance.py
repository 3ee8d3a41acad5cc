"""Where a result came from: the code's git commit and the versions of what ran it."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import sweepkit

PACKAGES = ("torch", "torchvision", "hydra-core", "optuna", "mlflow")


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def git_commit() -> str:
    """The commit of the sweepkit checkout (or of the launch directory); ``unknown`` outside git."""
    for directory in (Path(sweepkit.__file__).resolve().parent, Path.cwd()):
        commit = _git(directory, "rev-parse", "HEAD")
        if commit:
            dirty = _git(directory, "status", "--porcelain", "--untracked-files=no")
            return commit + ("-dirty" if dirty else "")
    return "unknown"


@functools.cache
def versions() -> dict[str, str]:
    """Versions of Python, sweepkit and the libraries that shape a result."""
    found = {"python": platform.python_version(), "sweepkit": sweepkit.__version__}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
