"""A sweep on a bad day, on the real command: torn journals, odd study names, resumes and extra
workers that must not replay trials, stop signals at any moment, a changed search space, bad input.
Each test states the rule it checks."""

import os
import re
import signal
import subprocess
import time

import optuna
import psutil
import pytest
from optuna.trial import TrialState
from sweeps import (
    FAST_SEARCH,
    PARALLEL_DEFAULT,
    TRAIN,
    MlflowView,
    finished,
    only_study,
    run_sweep,
    start_sweep,
    states,
    studies_in,
    sweep_env,
    wait_for,
)

from sweepkit import studies

pytestmark = pytest.mark.slow

QUICK = [*FAST_SEARCH, "trainer.max_epochs=2", "hydra.sweeper.pruner=NopPruner", "trainer.progress=none"]


def _points(study):
    """The parameter sets of the study's trials, retries of lost trials left out (they repeat on purpose)."""
    return [
        tuple(sorted(t.params.items()))
        for t in study.get_trials(deepcopy=False)
        if studies.RETRY_OF not in t.user_attrs and t.params
    ]


# -- the journal --------------------------------------------------------------------------------------


def test_a_torn_journal_tail_is_repaired_and_the_study_resumes_to_n_trials(tmp_path):
    # The last record cut mid-write: the next sweep cuts it off (kept aside) and goes on to n_trials,
    # the report reads the study, and the MLflow parent ends FINISHED again.
    run_sweep(tmp_path, *QUICK, "hydra.sweeper.n_trials=2")
    journal = tmp_path / "optuna.journal"
    with open(journal, "ab") as handle:
        handle.write(b'{"op_code": 6, "worker_id": "w", "trial_id": 1, "user_a')
    done = run_sweep(tmp_path, *QUICK, "hydra.sweeper.n_trials=4")
    assert "ended in a torn record" in done.stdout + done.stderr
    [kept] = tmp_path.glob("optuna.journal.torn-*")
    assert kept.read_bytes().endswith(b'"user_a')
    study = only_study(tmp_path)
    assert len(finished(study)) == 4
    report = subprocess.run(
        [str(TRAIN.with_name("sweepkit-report")), study.study_name],
        cwd=tmp_path,
        env=sweep_env(),
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0 and re.search(r"^best \S+ [\d.]+ \(trial \d+\)$", report.stdout, re.M)
    assert [p.info.status for p in MlflowView.read(tmp_path).parents] == ["FINISHED"]


def test_a_corrupt_journal_line_is_one_line_and_nothing_is_appended(tmp_path):
    # Garbage before the end cannot be cut off: one line naming the file and line, exit 2, no write.
    run_sweep(tmp_path, *QUICK, "hydra.sweeper.n_trials=1", "tracking=none")
    journal = tmp_path / "optuna.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:2], b"garbage\n", *lines[2:]]))
    before = journal.read_bytes()
    done = run_sweep(tmp_path, *QUICK, "hydra.sweeper.n_trials=2", "tracking=none", check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"sweepkit-train: error: hydra.sweeper.storage={journal} is corrupt at line 3 of {len(lines) + 1} "
        "(not an Optuna journal record): restore it from a backup, or move it aside to start a new study"
    )
    assert journal.read_bytes() == before


# -- study names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../../../../tmp/sweepkit-escape", "x" * 300, "'données'"],
    ids=["traversal", "overlong", "unicode"],
)
def test_a_study_name_that_cannot_be_a_folder_is_refused_before_anything_is_made(name, tmp_path):
    # One line, exit 2, and nothing created: no journal, no MLflow store, no sweep folder, no file outside.
    done = run_sweep(tmp_path, *QUICK, f"hydra.sweeper.study_name={name}", check=False, fresh_store=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("sweepkit-train: error: hydra.sweeper.study_name=")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not os.path.exists("/tmp/sweepkit-escape")


# -- no replays -------------------------------------------------------------------------------------------


# A resumed sweep samples new points: tests/test_sweeper.py::test_rerun_resumes_the_study_without_overwriting


@pytest.mark.parametrize("storage", ["sqlite"])  # the probe's case; the seeding does not depend on it
def test_two_workers_on_one_study_never_try_the_same_point(storage, tmp_path):
    # Two sweep processes started together on one study: each samples with its own seed, no duplicates.
    extra = [
        "hydra.sweeper.study_name=shared",
        "tracking=none",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.heartbeat_interval=1",
    ]
    if storage == "sqlite":
        extra.append(f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}")
    workers = [start_sweep(tmp_path, *QUICK, *extra) for _ in range(2)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    url = f"sqlite:///{tmp_path / 'study.db'}" if storage == "sqlite" else str(tmp_path / "optuna.journal")
    study = optuna.load_study(study_name="shared", storage=studies.open_storage(url))
    points = _points(study)
    assert len(finished(study)) == 8 and len(set(points)) == len(points), points
    assert study.user_attrs[studies.SWEEP_PROCESSES] == 2


# -- stops -------------------------------------------------------------------------------------------------

STOPPABLE = [
    *FAST_SEARCH,
    "trainer.max_epochs=5",
    "data.batch_size=16",
    "hydra.sweeper.pruner=NopPruner",
    "hydra.sweeper.n_trials=3",
    "hydra.sweeper.heartbeat_interval=1",
    "hydra.sweeper.grace_period=3600",  # a re-run that waited for it would time out
]  # FAST_SEARCH's one trial at a time: each moment below is one moment (in parallel: the joblib test)


def _progress(tmp_path):
    """(whether the study exists, its trial 0 or None), read while the sweep runs."""
    # the journal may hold nothing yet, or only the sweep's momentary lock study
    found = studies_in(tmp_path) if (tmp_path / "optuna.journal").exists() else []
    if not found:
        return False, None
    trials = found[0].get_trials(deepcopy=False)
    return True, trials[0] if trials else None


MOMENTS = {  # when to send the signal, judged from the study the running sweep writes
    "start-up": lambda exists, t: exists and (t is None or not t.intermediate_values),
    "mid-trial": lambda exists, t: t is not None and 1 <= len(t.intermediate_values) <= 3,
    "last epoch": lambda exists, t: t is not None and len(t.intermediate_values) == 4,
    "between trials": lambda exists, t: t is not None and t.state == TrialState.COMPLETE,
}


# SIGTERM at every moment; SIGINT (Ctrl-C, which reaches the trial job directly as well as through the
# sweep) where a trial job is running. At start-up and between trials both take the sweep's one path.
STOPS = [(moment, signal.SIGTERM) for moment in MOMENTS] + [
    ("mid-trial", signal.SIGINT),
    ("last epoch", signal.SIGINT),
]


@pytest.mark.parametrize(("moment", "signum"), STOPS, ids=[f"{m}-{s.name}" for m, s in STOPS])
def test_a_stop_signal_at_any_moment_ends_clean_and_the_rerun_finishes_at_once(moment, signum, tmp_path):
    # The sweep stops within seconds with the signal's exit status; nothing is left RUNNING but a trial
    # marked preempted and released; the parent run ends KILLED; the same command then finishes the
    # study, the stopped trial resumed first, without waiting out the grace period.
    process = start_sweep(tmp_path, *STOPPABLE)
    wait_for(lambda: MOMENTS[moment](*_progress(tmp_path)), every=0.05)
    sent = time.monotonic()
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert time.monotonic() - sent < 60, "stopped within seconds, not at the end of the sweep"
    assert process.returncode == 128 + signum, output[-3000:]
    study = only_study(tmp_path)
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.RUNNING:
            assert trial.system_attrs.get(studies.PREEMPTED) and trial.system_attrs.get(studies.RELEASED), (
                trial.number
            )
        assert trial.state != TrialState.FAIL or not studies.is_counted_failure(trial)
    view = MlflowView.read(tmp_path)
    assert all(p.info.status == "KILLED" for p in view.parents)
    assert not [c for c in view.children if c.info.status == "RUNNING"]
    stopped = [t.number for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]

    # hydra.verbose: the launcher's "Launching" lines, quiet in a sweep otherwise (basic or a plugin's)
    verbose = "hydra.verbose=[hydra._internal.core_plugins.basic_launcher,hydra_plugins]"
    rerun = run_sweep(tmp_path, *STOPPABLE, verbose, timeout=300)
    study = only_study(tmp_path)
    assert len(finished(study)) == 3 and not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in finished(study):
        assert sorted(trial.intermediate_values) == list(range(1, 6)), (
            trial.number
        )  # each epoch reported once
    if stopped:
        text = rerun.stdout + rerun.stderr
        assert text.index(f"trial {stopped[0]} was preempted: resuming it") < text.index("Launching"), (
            "adopted first"
        )
    view = MlflowView.read(tmp_path)
    [parent] = view.parents
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_running"] == 0
    for trial in finished(study):
        child = view.child(trial.number)
        assert (
            child.info.status == "FINISHED"
            and "error" not in child.data.tags
            and child.data.tags["optuna.state"] == "COMPLETE"
        )


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_stopping_a_parallel_sweep_stops_its_joblib_workers_and_the_rerun_resumes_their_trials(tmp_path):
    # The default on 2+ cores (joblib workers, a trial per core). SIGTERM to the sweep process alone
    # (not its group): its workers stop their trials and exit too; the same command resumes them.
    parallel = [*STOPPABLE, PARALLEL_DEFAULT]
    process = start_sweep(tmp_path, *parallel, "tracking=none")
    wait_for(lambda: MOMENTS["mid-trial"](*_progress(tmp_path)), every=0.05)
    workers = psutil.Process(process.pid).children(recursive=True)
    assert workers
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    running = only_study(tmp_path).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    assert running and all(t.system_attrs.get(studies.RELEASED) for t in running)

    run_sweep(tmp_path, *parallel, "tracking=none")
    study = only_study(tmp_path)
    assert len(finished(study)) == 3 and len(study.trials) == 3, states(study)  # resumed under their numbers
    for trial in finished(study):
        assert sorted(trial.intermediate_values) == list(range(1, 6)), (
            trial.number
        )  # each epoch reported once


# -- a changed search space -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ("data.batch_size=choice(8,16)", "data.batch_size"),
        ("optimizer.lr=tag(log, interval(1e-3, 0.5))", "optimizer.lr"),
        ("model.dropout=interval(0.0, 0.5)", "model.dropout"),
    ],
    ids=["categorical", "float range", "added"],
)
def test_a_resume_with_another_search_space_is_refused_with_nothing_written(change, param, tmp_path):
    # The first run records the space with the study; a resume with another one is one line naming the
    # parameter and how to start a new study, exit 2, and neither the journal nor MLflow changes.
    run_sweep(tmp_path, *QUICK, "hydra.sweeper.n_trials=1", "hydra.sweeper.study_name=fixed")
    journal_before = (tmp_path / "optuna.journal").read_bytes()
    runs_before = len(MlflowView.read(tmp_path).children)
    done = run_sweep(
        tmp_path, *QUICK, "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=fixed", change, check=False
    )
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert (
        line.startswith(f"sweepkit-train: error: hydra.sweeper.params.{param}=")
        and "hydra.sweeper.study_name=<new name>" in line
    )
    assert (tmp_path / "optuna.journal").read_bytes() == journal_before
    view = MlflowView.read(tmp_path)
    assert len(view.children) == runs_before and [p.info.status for p in view.parents] == ["FINISHED"]


# -- bad input -----------------------------------------------------------------------------------------

BAD_SWEEP_INPUTS = [
    (["trainer.max_epochs=abc"], "trainer.max_epochs=abc must be an integer >= 1"),
    (["trainer.max_epochs=2.5"], "trainer.max_epochs=2.5 must be an integer >= 1"),
    (["data.batch_size=abc"], "data.batch_size=abc must be an integer >= 1"),
    (["optimizer.lr=inf"], "optimizer.lr=inf must be a finite number > 0"),
    (["optimizer.lrr=0.1"], "optimizer.lrr=0.1 is not a key of the config (did you mean optimizer.lr?"),
    (["optimizer=choice()"], "the override optimizer=choice() does not parse"),
    (["optimizer.lr=interval(0.1, 0.0001)"], "optimizer.lr=interval(0.1, 0.0001) is reversed"),
    (["+hydra.sweeper.params.optimizer.lrr=interval(0.1, 1)"], "optimizer.lrr"),
    (["optimizer=choice(sgd, adamx)"], "optimizer=adamx is not one of: adagrad, adam, adamw, rmsprop, sgd"),
    (["hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0 must be >= 1"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), BAD_SWEEP_INPUTS, ids=[" ".join(o) for o, _ in BAD_SWEEP_INPUTS]
)
def test_bad_sweep_input_is_one_line_exit_2_and_writes_nothing(overrides, message, tmp_path):
    # Checked before any study, run or checkpoint exists.
    done = run_sweep(tmp_path, *QUICK, *overrides, check=False, fresh_store=True)
    err = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith(("[", " ", "warnings"))
    ]
    assert done.returncode == 2, done.stderr[-2000:]
    assert err[-1].startswith("sweepkit-train: error: ") and message in err[-1], err
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())


def test_report_of_a_study_that_does_not_exist_creates_nothing(tmp_path):
    # sweepkit-report nosuchstudy: one line, exit 2, and no empty optuna.journal left behind.
    done = subprocess.run(
        [str(TRAIN.with_name("sweepkit-report")), "nosuchstudy"],
        cwd=tmp_path,
        env=sweep_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.startswith("sweepkit-report: error: --storage=")
    assert list(tmp_path.iterdir()) == []
