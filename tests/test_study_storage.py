"""Several processes share one Optuna study through each storage sweepkit supports (DESIGN.md section 6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

TRIALS_PER_WORKER = 8

# One sweep worker: reopen the study by name and run its share of trials.
WORKER = """
import os, sys, time
import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

kind, location, name, n_trials = sys.argv[1:]
storage = JournalStorage(JournalFileBackend(location)) if kind == "journal" else RDBStorage(location)
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=name, storage=storage)

def objective(trial):
    trial.set_user_attr("pid", os.getpid())
    time.sleep(0.02)  # long enough for the two workers' trials to interleave
    return trial.suggest_float("x", -1.0, 1.0) ** 2

study.optimize(objective, n_trials=int(n_trials))
"""


def open_storage(kind: str, location: str):
    """The storage the workers open, from the test process."""
    if kind == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(location))
    return optuna.storages.RDBStorage(location)


@pytest.fixture(params=["journal", "sqlite", "postgresql"])
def storage(request, tmp_path) -> tuple[str, str]:
    """(kind, location): a journal file, a SQLite file, or a database on a throwaway PostgreSQL server."""
    if request.param == "journal":
        return "journal", str(tmp_path / "optuna.journal")
    if request.param == "sqlite":
        return "rdb", f"sqlite:///{tmp_path / 'optuna.db'}"
    return "rdb", request.getfixturevalue("postgres_url")


@pytest.mark.slow
def test_two_processes_share_one_study(storage, tmp_path: Path):
    # Two worker processes on one study in one storage finish exactly the trials they were asked
    # for together: every trial number once, every trial complete, both workers contributing.
    kind, location = storage
    optuna.create_study(study_name="shared", storage=open_storage(kind, location))  # before any worker
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, kind, location, "shared", str(TRIALS_PER_WORKER)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output

    trials = optuna.load_study(study_name="shared", storage=open_storage(kind, location)).trials
    assert sorted(t.number for t in trials) == list(range(2 * TRIALS_PER_WORKER))
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert {t.user_attrs["pid"] for t in trials} == {w.pid for w in workers}


@pytest.mark.slow
def test_workers_opening_one_fresh_postgresql_database_together_all_succeed(postgres_url):
    # Array tasks start at the same moment and race to create Optuna's schema; the losers'
    # "already exists" is absorbed by studies.open_storage, so every worker gets the storage.
    script = "import sys\nfrom sweepkit.studies import open_storage\nopen_storage(sys.argv[1])\n"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, postgres_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], "\n".join(outputs)
