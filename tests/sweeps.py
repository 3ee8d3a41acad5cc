"""Running real sweeps from tests: ``sweepkit-train -m`` in a subprocess, then reading the real
Optuna storage, MLflow store and output folders it left behind."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

TESTS = Path(__file__).resolve().parent
TRAIN = Path(sys.executable).with_name("sweepkit-train")
SEARCHPATH = f"hydra.searchpath=[file://{TESTS / 'sweep_conf'}]"
# Trials one at a time, in the sweep process: on the 2 cores two test processes share, parallel
# workers add only their start-up (a 6-trial sweep: 17 s of CPU against 9). Tests of the parallel
# default (or of a launcher's workers) add PARALLEL_DEFAULT or their own n_jobs; a later override wins.
SERIAL = "hydra.sweeper.n_jobs=1"
PARALLEL_DEFAULT = "hydra.sweeper.n_jobs=null"  # one trial per available core, in joblib workers
# short trials on digits; the pruner may act once 2 trials have finished, from epoch 1
FAST_SEARCH = [
    "hparams_search=lr_batch_optimizer",
    "trainer.max_epochs=4",
    "model.hidden=[32]",
    "hydra.sweeper.sampler.n_startup_trials=4",
    "hydra.sweeper.pruner.n_startup_trials=2",
    "hydra.sweeper.pruner.n_warmup_steps=1",
    SERIAL,
]


def sweep_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(TESTS),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "HYDRA_FULL_ERROR": "1",
        }
    )
    return env


_EMPTY_STORE: list[Path] = []


def empty_store() -> Path:
    """An empty MLflow database with its schema, made once per test session: creating a store runs
    MLflow's schema migrations (about 5 s on 2 cores), which a sweep test needs done, not timed."""
    if not _EMPTY_STORE:
        from mlflow import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="sweepkit-empty-store-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
        _EMPTY_STORE.append(folder / "mlflow.db")
    return _EMPTY_STORE[0]


def _prepare_store(cwd: Path, overrides: tuple[str, ...], fresh_store: bool) -> None:
    """The launch directory's default store (``mlflow.db``), copied from :func:`empty_store`, unless the
    test creates it (``fresh_store``), tracks elsewhere or not at all, or resumes into an existing one."""
    elsewhere = any(
        o.startswith(("tracking=", "tracking.uri=", "-c", "--config")) and "mlflow" not in o
        for o in overrides
    )
    if fresh_store or elsewhere or (cwd / "mlflow.db").exists():
        return
    shutil.copy(empty_store(), cwd / "mlflow.db")


def run_sweep(
    cwd: Path, *overrides: str, timeout: float = 300, check: bool = True, fresh_store: bool = False
) -> subprocess.CompletedProcess:
    """``sweepkit-train -m <overrides>`` in ``cwd``; its output is kept for the assertion message."""
    _prepare_store(cwd, overrides, fresh_store)
    done = subprocess.run(
        [str(TRAIN), "-m", *overrides],
        cwd=cwd,
        env=sweep_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"sweep failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


def start_sweep(cwd: Path, *overrides: str, fresh_store: bool = False) -> subprocess.Popen:
    """The sweep as a background process (its own process group, so it can be killed whole)."""
    _prepare_store(cwd, overrides, fresh_store)
    return subprocess.Popen(
        [str(TRAIN), "-m", *overrides],
        cwd=cwd,
        env=sweep_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> str:
    os.killpg(process.pid, sig)
    output, _ = process.communicate(timeout=120)
    return output


def only_study(cwd: Path, storage: str | None = None) -> optuna.Study:
    """The one study in ``cwd``'s default journal (or the given storage); a running sweep's
    momentary lock study (studies.study_mutex) is not one."""
    found = studies_in(cwd, storage)
    assert len(found) == 1, [study.study_name for study in found]
    return found[0]


def studies_in(cwd: Path, storage: str | None = None) -> list[optuna.Study]:
    """The studies in ``cwd``'s default journal (or the given storage), lock studies left out; safe
    to call while a sweep writes. (Optuna's get_all_study_summaries is not: it lists the studies and
    reads each one's trials in two replays, and a lock study deleted in between raises KeyError.)"""
    from sweepkit.studies import is_lock_study, open_storage

    storage_obj = open_storage(storage or str(cwd / "optuna.journal"))
    names = [s.study_name for s in storage_obj.get_all_studies() if not is_lock_study(s.study_name)]
    return [optuna.load_study(study_name=name, storage=storage_obj) for name in names]


def wait_for(condition, timeout: float = 120, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(every)


def states(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


@dataclass
class MlflowView:
    """The parent and child runs of the sweeps in ``cwd``'s mlflow.db."""

    parents: list
    children: list

    @classmethod
    def read(cls, cwd: Path) -> MlflowView:
        from mlflow import MlflowClient

        return cls.read_client(MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}"))

    @classmethod
    def read_client(cls, client) -> MlflowView:
        runs = [
            r
            for e in client.search_experiments()
            for r in client.search_runs([e.experiment_id], max_results=1000)
        ]
        parents = [r for r in runs if r.data.tags.get("sweepkit.role") == "sweep"]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        return cls(parents, children)

    def child(self, number: int):
        found = [r for r in self.children if r.data.tags.get("optuna.trial_number") == str(number)]
        assert len(found) == 1, f"trial {number}: {len(found)} child runs"
        return found[0]
