"""Shared fixtures: the real config tree composed with small overrides, in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from sweepkit.train import compose

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))

# tests/postgres.py: the throwaway PostgreSQL server fixtures (postgres_server, postgres_url).
pytest_plugins = ["postgres"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA; without it they are skipped, not failed."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if (
            item.get_closest_marker("gpu") is not None
        ):  # not `"gpu" in item.keywords`: that matches a folder named gpu
            item.add_marker(skip)


REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "src" / "sweepkit" / "conf"
FAST = ["trainer=debug", "tracking=none"]


def shipped_options(group: str) -> list[str]:
    """The options sweepkit ships in a config group (``optimizer``: adagrad, adam, ...)."""
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def compose_config(overrides: list[str], output_dir: Path | None) -> DictConfig:
    """The real config tree composed as sweepkit-train would, with ``output_dir`` set for tests."""
    return compose(overrides, output_dir)


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg("optimizer=sgd", ...)``: a fast debug config writing into ``tmp_path/run``."""

    def make(*overrides: str, fast: bool = True, output_dir: Path | None = None) -> DictConfig:
        base = FAST if fast else []
        return compose_config([*base, *overrides], output_dir or tmp_path / "run")

    return make
