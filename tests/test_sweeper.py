"""The sweepkit sweeper end to end: real sweeps (subprocesses), real Optuna journal, real MLflow store,
real Hydra launchers. Each test states the rule it checks."""

import itertools
import os
import re
import signal
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState
from sweeps import (
    FAST_SEARCH,
    PARALLEL_DEFAULT,
    SEARCHPATH,
    MlflowView,
    finished,
    kill_group,
    only_study,
    run_sweep,
    start_sweep,
    states,
    wait_for,
)

from sweepkit import studies

pytestmark = pytest.mark.slow

LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"],
    "submitit_local": [
        "hydra/launcher=submitit_local",
        "hydra.sweeper.n_jobs=2",
        "hydra.launcher.timeout_min=10",
    ],
}

N_TRIALS = {"joblib": 6, "submitit_local": 6}  # two at a time, (submitit) a process per trial; basic: ten


def _assert_study_mlflow_and_folders_agree(cwd, study, n_trials):
    """Optuna states, MLflow children and their tags, and trial folders tell the same story."""
    trials = study.get_trials(deepcopy=False)
    assert len(finished(study)) == n_trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    view = MlflowView.read(cwd)
    assert len(view.parents) == 1 and view.parents[0].info.status == "FINISHED"
    parent = view.parents[0]
    assert parent.data.metrics["trials_finished"] == n_trials
    assert {c.data.tags["mlflow.parentRunId"] for c in view.children} == {parent.info.run_id}
    sweep_dir = cwd / "multirun" / study.study_name
    for trial in finished(study):
        child = view.child(trial.number)
        assert child.data.tags["optuna.study"] == study.study_name
        assert child.data.tags["optuna.state"] == trial.state.name
        assert child.info.status == "FINISHED"
        assert trial.user_attrs[studies.MLFLOW_RUN_ID] == child.info.run_id
        epochs = trial.user_attrs[studies.EPOCHS_RUN]
        assert sorted(trial.intermediate_values) == list(range(1, epochs + 1))
        assert (sweep_dir / str(trial.number) / "checkpoints" / "last.pt").exists()
        if trial.state == TrialState.PRUNED:
            assert (
                child.data.tags["optuna.pruned_epoch"]
                == str(trial.user_attrs[studies.PRUNED_EPOCH])
                == str(epochs)
            )
            assert child.data.tags["optuna.prune_reason"] == trial.user_attrs[studies.PRUNE_REASON]
            reason = trial.user_attrs[studies.PRUNE_REASON]
            marker = f"{'pruned' if reason == 'pruner' else reason}@{epochs}"
            assert child.info.run_name.startswith(
                f"{marker} trial-{trial.number}-"
            )  # told apart in the runs table by name
        else:
            assert trial.value == pytest.approx(child.data.metrics["best/val/acc"])
            assert child.info.run_name.startswith(f"trial-{trial.number}-")
    # the study, the parent run and the results file name the objective's metric
    assert study.metric_names == ["val/acc"]
    assert parent.data.params["objective"] == "val/acc maximize"
    assert (
        parent.data.metrics["best/val/acc"]
        == parent.data.metrics["best_value"]
        == pytest.approx(study.best_value)
    )
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["metric"] == "val/acc" and results["best_value"] == pytest.approx(study.best_value)
    assert (sweep_dir / "optimization_results.yaml").exists() and (
        sweep_dir / "plots" / "optimization_history.png"
    ).exists()
    from mlflow import MlflowClient  # the study plots (drawn by the plot process) on the parent run too

    logged = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}").list_artifacts(parent.info.run_id, "plots")
    assert {Path(a.path).name for a in logged} == {p.name for p in (sweep_dir / "plots").glob("*.png")}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_sweep_of_ten_trials_with_each_launcher(launcher, tmp_path):
    # Short trials on digits through each launcher: every trial is a child run, states agree.
    n_trials = N_TRIALS.get(launcher, 10)
    run_sweep(tmp_path, *FAST_SEARCH, f"hydra.sweeper.n_trials={n_trials}", *LAUNCHERS[launcher])
    study = only_study(tmp_path)
    _assert_study_mlflow_and_folders_agree(tmp_path, study, n_trials)
    # Fixed seeds: the same suggestions every time, and the median of the finished trials (the
    # first batch, when jobs run in parallel) prunes some of the later ones in every launcher.
    assert states(study).get("PRUNED", 0) >= 1, states(study)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_by_default_trials_run_in_parallel_in_long_lived_workers(tmp_path):
    # n_jobs null: one trial per core at once, in joblib workers that take trial after trial (a process
    # start per worker, not per trial), a freed worker starting the next trial at once.
    run_sweep(tmp_path, *FAST_SEARCH, PARALLEL_DEFAULT, "hydra.sweeper.n_trials=6", "tracking=none")
    trials = finished(only_study(tmp_path))
    workers = {t.user_attrs[studies.WORKER] for t in trials}
    assert len(trials) == 6 and 2 <= len(workers) <= min(
        len(os.sched_getaffinity(0)), 6
    )  # reused, on a machine of < 6 cores
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), (
        "two trials ran at once"
    )


def test_rerun_resumes_the_study_without_overwriting(tmp_path):
    # The same command again continues the study: n_trials counts all finished trials, trial numbers
    # and folders continue, nothing written by the first run changes, and the new trials sample new
    # points (every sweep process seeds its sampler apart: no replay of trials 0-2).
    base = [*FAST_SEARCH, "hydra.sweeper.pruner=NopPruner"]
    run_sweep(tmp_path, *base, "hydra.sweeper.n_trials=3")
    study = only_study(tmp_path)
    sweep_dir = tmp_path / "multirun" / study.study_name
    first_checkpoint = (sweep_dir / "0" / "checkpoints" / "last.pt").read_bytes()

    second = run_sweep(tmp_path, *base, "hydra.sweeper.n_trials=5")
    output = second.stdout + second.stderr
    study = only_study(tmp_path)
    assert [t.number for t in finished(study)] == [0, 1, 2, 3, 4]
    points = [tuple(sorted(t.params.items())) for t in finished(study)]
    assert len(set(points)) == 5, points
    assert "3 of 5 trials done" in output
    assert sorted(p.name for p in sweep_dir.iterdir() if p.name.isdigit()) == ["0", "1", "2", "3", "4"]
    assert (sweep_dir / "0" / "checkpoints" / "last.pt").read_bytes() == first_checkpoint
    view = MlflowView.read(tmp_path)
    assert len(view.parents) == 1 and len(view.children) == 5


def test_different_fixed_configs_do_not_share_a_study(tmp_path):
    # A fixed override changes the derived study name: two studies, two folders.
    base = [*FAST_SEARCH, "hydra.sweeper.n_trials=1", "tracking=none"]
    run_sweep(tmp_path, *base, "seed=1")
    run_sweep(tmp_path, *base, "seed=2")
    names = sorted(p.name for p in (tmp_path / "multirun").iterdir())
    assert len(names) == 2 and all(name.startswith("lr_batch_optimizer-") for name in names)


def test_diverging_trials_are_pruned_with_reason_diverged(tmp_path):
    # A non-finite loss stops the trial at once; it is told PRUNED with reason "diverged".
    run_sweep(
        tmp_path,
        *FAST_SEARCH,
        "hydra.sweeper.n_trials=2",
        "optimizer=sgd",
        "optimizer.momentum=0",
        "optimizer.nesterov=false",
        "optimizer.lr=tag(log, interval(1e10, 1e12))",
        "data.batch_size=64",
    )
    study = only_study(tmp_path)
    view = MlflowView.read(tmp_path)
    for trial in study.get_trials(deepcopy=False):
        assert trial.state == TrialState.PRUNED
        assert (
            trial.user_attrs[studies.PRUNE_REASON] == "diverged"
            and trial.user_attrs[studies.PRUNED_EPOCH] == 1
        )
        child = view.child(trial.number)
        assert (
            child.data.tags["optuna.prune_reason"] == "diverged"
            and child.data.tags["optuna.state"] == "PRUNED"
        )


def test_trials_that_run_out_of_device_memory_are_pruned_with_reason_oom(tmp_path):
    # A batch that does not fit the device (a real torch.OutOfMemoryError from the step) prunes its
    # trial with reason "oom", so that the sampler learns the region (a FAIL it would ignore); the
    # sweep goes on to n_trials.
    run_sweep(
        tmp_path,
        *FAST_SEARCH,
        SEARCHPATH,
        "model=memory_hungry",
        "model.oom_from_batch_size=128",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.enqueue_trials=[{optimizer: adam, optimizer.lr: 0.001, data.batch_size: 256, lr_scaling.rule: none},"
        "{optimizer: adam, optimizer.lr: 0.001, data.batch_size: 32, lr_scaling.rule: none}]",
    )
    study = only_study(tmp_path)
    view = MlflowView.read(tmp_path)
    assert len(finished(study)) == 3
    for trial in study.get_trials(deepcopy=False):
        oom = trial.params["data.batch_size"] >= 128
        assert (
            trial.state == TrialState.PRUNED and trial.user_attrs[studies.PRUNE_REASON] == "oom"
        ) == oom, trial
        if oom:
            child = view.child(trial.number)
            assert (
                child.data.tags["optuna.prune_reason"] == "oom"
                and child.data.tags["optuna.state"] == "PRUNED"
            )
            assert child.info.status == "FINISHED" and trial.user_attrs[studies.PRUNED_EPOCH] == 0


def test_failing_job_is_fail_with_traceback_and_the_sweep_goes_on(tmp_path):
    # A job that raises is FAIL (traceback in its job log and its MLflow child); the others complete.
    run_sweep(
        tmp_path,
        *FAST_SEARCH,
        SEARCHPATH,
        "model=flaky",
        "model.fail_after_steps=5",
        "model.only_in_trial=1",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.max_failure_rate=1.0",
    )
    study = only_study(tmp_path)
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    assert [t.number for t in failed] == [1] and len(finished(study)) == 3
    view = MlflowView.read(tmp_path)
    for trial in failed:
        assert "RuntimeError: boom after 5 steps" in trial.user_attrs[studies.FAIL_REASON]
        log_text = (tmp_path / "multirun" / study.study_name / str(trial.number) / "train.log").read_text()
        assert "Traceback" in log_text and "boom after 5 steps" in log_text
        child = view.child(trial.number)
        assert child.info.status == "FAILED" and child.data.tags["optuna.state"] == "FAIL"
        assert "boom after 5 steps" in child.data.tags["error"]


def test_max_failure_rate_stops_a_sweep_that_keeps_failing(tmp_path):
    # More failures than max_failure_rate x n_trials: the sweep stops with one clear line.
    done = run_sweep(
        tmp_path,
        *FAST_SEARCH,
        SEARCHPATH,
        "model=flaky",
        "model.fail_after_steps=1",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.max_failure_rate=0.25",
        check=False,
    )  # FAST_SEARCH's one trial at a time: in parallel, the trials running when the limit is crossed fail too
    assert done.returncode == 1
    assert "3 trials failed, more than hydra.sweeper.max_failure_rate=0.25 x n_trials=8 allows" in done.stderr
    study = only_study(tmp_path)
    assert states(study) == {"FAIL": 3}
    assert MlflowView.read(tmp_path).parents[0].info.status == "FAILED"


def test_dead_worker_is_fail_and_the_sweep_goes_on(tmp_path):
    # A joblib worker that dies mid-training: its trial is FAIL (lost), retried once, and the sweep
    # still ends with n_trials results. (loky ends all workers of a pool that lost one, so a trial
    # running beside it is lost as well, and retried the same way.)
    run_sweep(
        tmp_path,
        *FAST_SEARCH,
        SEARCHPATH,
        "model=flaky",
        "model.die_after_steps=3",
        "model.only_in_trial=1",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.max_failure_rate=1.0",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=5",
    )
    study = only_study(tmp_path)
    lost = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    reasons = {t.number: t.user_attrs[studies.FAIL_REASON] for t in lost}
    # told by the launcher's missing result or, first, by the heartbeat gone quiet: lost either way
    assert 1 in reasons and all(reason.startswith(("lost:", "stale:")) for reason in reasons.values()), (
        reasons
    )
    for trial in lost:
        retries = [t for t in study.trials if t.user_attrs.get(studies.RETRY_OF) == trial.number]
        assert len(retries) == 1 and retries[0].params == trial.params and retries[0].state.is_finished()
    assert len(finished(study)) == 3
    view = MlflowView.read(tmp_path)
    for trial in lost:
        child = view.child(trial.number)
        assert child.info.status == "FAILED" and child.data.tags["optuna.state"] == "FAIL"


def test_killed_sweep_resumes_retries_the_lost_trial_once_and_ends_at_n_trials(tmp_path):
    # SIGKILL mid-trial under the parallel default (joblib workers), then the same command: no trial
    # left RUNNING, the interrupted params are tried again (once), and the study ends with exactly
    # n_trials finished.
    command = [
        *FAST_SEARCH,
        PARALLEL_DEFAULT,
        "hydra.sweeper.n_trials=3",
        "trainer.max_epochs=24",
        "data.batch_size=16",
        "hydra.sweeper.pruner=NopPruner",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=3",
    ]
    process = start_sweep(tmp_path, *command)
    journal = tmp_path / "optuna.journal"
    wait_for(
        lambda: (
            journal.exists()
            and any(
                t.number == 1 and len(t.intermediate_values) >= 2
                for t in only_study(tmp_path).get_trials(deepcopy=False)
            )
        )
    )
    kill_group(process)
    killed = only_study(tmp_path).get_trials(deepcopy=False)[1]
    assert killed.state == TrialState.RUNNING
    time.sleep(3.5)  # past the grace period: its heartbeat is stale

    run_sweep(tmp_path, *command)
    study = only_study(tmp_path)
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs[studies.FAIL_REASON].startswith(
        "stale"
    )
    retries = [t for t in trials if t.user_attrs.get(studies.RETRY_OF) == 1]
    assert (
        len(retries) == 1 and retries[0].params == killed.params and retries[0].state == TrialState.COMPLETE
    )
    assert len(finished(study)) == 3
    assert MlflowView.read(tmp_path).child(1).info.status == "FAILED"


def test_two_sweep_processes_share_one_study(tmp_path):
    # The cluster pattern: two workers (n_jobs=1 each) on one storage finish n_trials between them,
    # with no duplicate trial and none lost.
    command = [
        *FAST_SEARCH,
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.study_name=shared",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=10",
    ]
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()  # one process creates the store
    workers = [start_sweep(tmp_path, *command) for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    import optuna

    from sweepkit.studies import open_storage

    study = optuna.load_study(study_name="shared", storage=open_storage(str(tmp_path / "optuna.journal")))
    results = finished(study)
    assert len(results) == 8
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    assert all(
        t.user_attrs.get(studies.FAIL_REASON, "").startswith("surplus")
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    )
    assert all(" finished | " in out for out in outputs), (
        "both workers ran trials"
    )  # the per-trial progress line
    folders = {p.name for p in (tmp_path / "multirun" / "shared").iterdir() if p.name.isdigit()}
    assert {str(t.number) for t in results} <= folders


def test_multi_objective_sweep_reports_a_pareto_front_without_pruning(tmp_path):
    # Two objectives (accuracy up, epoch time down): no pruning (Optuna forbids it), a Pareto front.
    done = run_sweep(
        tmp_path,
        *FAST_SEARCH,
        "hydra.sweeper.n_trials=4",
        "objective.metric=[val/acc,epoch_time_s]",
        "objective.mode=[max,min]",
    )
    assert "pruning is off: Optuna cannot prune multi-objective studies" in done.stderr + done.stdout
    study = only_study(tmp_path)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert states(study) == {"COMPLETE": 4} and all(len(t.values) == 2 for t in study.trials)
    results = yaml.safe_load(
        (tmp_path / "multirun" / study.study_name / "optimization_results.yaml").read_text()
    )
    assert results["pareto_front"] and {"number", "params", "values"} <= set(results["pareto_front"][0])


def test_enqueued_points_run_first_and_custom_space_adds_conditional_params(tmp_path):
    # enqueue_trials: known-good points first; custom_search_space: momentum only for SGD trials.
    run_sweep(
        tmp_path,
        *FAST_SEARCH,
        "hydra.sweeper.n_trials=4",
        "tracking=none",
        "hydra.sweeper.enqueue_trials=[{optimizer: sgd, optimizer.lr: 0.05, data.batch_size: 64, lr_scaling.rule: linear}]",
        "hydra.sweeper.custom_search_space=sweepkit.search_spaces.sgd_momentum",
    )
    trials = only_study(tmp_path).trials
    assert trials[0].params["optimizer"] == "sgd" and trials[0].params["optimizer.lr"] == 0.05
    for trial in trials:
        assert ("optimizer.momentum" in trial.params) == (trial.params["optimizer"] == "sgd")


def test_report_shows_trials_best_and_saved_epochs(tmp_path):
    # sweepkit-report on a sweep folder: a table of trials, the best, epochs run against the budget.
    import subprocess

    from sweeps import TRAIN, sweep_env

    run_sweep(tmp_path, *FAST_SEARCH, "hydra.sweeper.n_trials=6", "tracking=none")
    study = only_study(tmp_path)
    report = subprocess.run(
        [str(TRAIN.with_name("sweepkit-report")), f"multirun/{study.study_name}"],
        cwd=tmp_path,
        env=sweep_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(rf"^best \S+ {study.best_value:.4f} \(trial {study.best_trial.number}\)$", report, re.M)
    summary = studies.summarize(study)
    assert f"epochs run {summary.epochs_run} of {summary.epochs_budget} budgeted" in report
    assert "optimizer.lr" in report and "COMPLETE" in report


def test_preempted_trial_resumes_under_its_number_without_reporting_an_epoch_twice(tmp_path):
    # SIGUSR1 (a scheduler's warning) stops the running trial at a safe point with last.pt written;
    # the same command resumes that trial number from last.pt, each epoch reported and logged once.
    # n_jobs=2 keeps an idle joblib worker beside the busy one: the group's signal reaches it too, and
    # it must not take the pool (and the trial) down before the trial is marked preempted.
    command = [
        *FAST_SEARCH,
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.n_jobs=2",
        "trainer.max_epochs=30",
        "data.batch_size=16",
        "hydra.sweeper.pruner=NopPruner",
        "hydra.sweeper.heartbeat_interval=1",
    ]
    process = start_sweep(tmp_path, *command)
    wait_for(
        lambda: (
            (tmp_path / "optuna.journal").exists()
            and any(len(t.intermediate_values) >= 3 for t in only_study(tmp_path).get_trials(deepcopy=False))
        )
    )
    output = kill_group(process, signal.SIGUSR1)
    assert process.returncode != 0
    study = only_study(tmp_path)
    trial = study.trials[0]
    assert trial.state == TrialState.RUNNING and trial.system_attrs.get(studies.PREEMPTED), (
        trial.system_attrs,
        output,
        train_log(tmp_path, study.study_name, 0),
    )
    from sweepkit import checkpoint

    stopped_at = checkpoint.load(tmp_path / "multirun" / study.study_name / "0" / "checkpoints" / "last.pt")[
        "loop"
    ]["epoch"]
    assert 3 <= stopped_at < 30 and sorted(trial.intermediate_values) == list(range(1, stopped_at + 1))
    time.sleep(2.5)  # no heartbeat since the preemption: nobody resumed it

    run_sweep(tmp_path, *command)
    trial = only_study(tmp_path).trials[0]
    assert len(only_study(tmp_path).trials) == 1 and trial.state == TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == list(range(1, 31))
    view = MlflowView.read(tmp_path)
    history = view_history(tmp_path, view.child(0).info.run_id, "val/acc")
    assert [m.step for m in history] == list(range(1, 31))


def train_log(cwd, study_name: str, number: int) -> str:
    log_file = cwd / "multirun" / study_name / str(number) / "train.log"
    return log_file.read_text() if log_file.exists() else f"(no {log_file})"


def view_history(cwd, run_id, key):
    from mlflow import MlflowClient

    return sorted(
        MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}").get_metric_history(run_id, key), key=lambda m: m.step
    )


@pytest.mark.parametrize(
    "pruner", ["HyperbandPruner", '"PercentilePruner(percentile=25.0, n_startup_trials=2)"']
)
def test_other_optuna_pruners_run_in_the_trial_jobs(pruner, tmp_path):
    # Each job rebuilds the pruner from the sweeper config: a class by name, with arguments or without.
    run_sweep(
        tmp_path, *FAST_SEARCH, "hydra.sweeper.n_trials=5", "tracking=none", f"hydra.sweeper.pruner={pruner}"
    )
    study = only_study(tmp_path)
    assert len(finished(study)) == 5
    assert all(len(t.intermediate_values) == t.user_attrs[studies.EPOCHS_RUN] for t in finished(study))
