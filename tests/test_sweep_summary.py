"""The words a sweep is told in: the line per trial and the closing summary, on real Optuna studies."""

import shlex

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from sweepkit import studies
from sweepkit.sweep_summary import Where, closing_lines, counts_line, metric_names, trial_line

SPACE = {
    "optimizer": CategoricalDistribution(["sgd", "adam"]),
    "optimizer.lr": FloatDistribution(1e-4, 1.0, log=True),
}


def add(study, state, value=None, epochs=(3, 3), **attrs):
    run, budget = epochs
    study.add_trial(
        create_trial(
            state=state,
            value=value,
            params={"optimizer": "adam", "optimizer.lr": 0.0123456},
            distributions=SPACE,
            intermediate_values={e: 0.5 for e in range(1, run + 1)},
            user_attrs={studies.EPOCHS_RUN: run, studies.MAX_EPOCHS: budget, **attrs},
        )
    )


@pytest.fixture
def study():
    """Two COMPLETE trials (the second best), one pruned at epoch 1, one failed: 3 epochs of 12 saved."""
    study = optuna.create_study(direction="maximize")
    add(study, TrialState.COMPLETE, 0.81)
    add(study, TrialState.COMPLETE, 0.93)
    add(study, TrialState.PRUNED, epochs=(1, 3), **{studies.PRUNED_EPOCH: 1, studies.PRUNE_REASON: "pruner"})
    add(study, TrialState.FAIL, epochs=(0, 3), **{studies.FAIL_REASON: "RuntimeError: boom"})
    return study


def test_the_summary_names_the_metric_and_comes_in_its_order(study, tmp_path):
    # best (by the metric's name), params, trials, results, mlflow (two lines), report: each line opens with its word.
    (tmp_path / "multirun" / "s").mkdir(parents=True)
    where = Where(tmp_path / "multirun" / "s", tmp_path, "sqlite:////x/mlflow.db", "7", "abc123")
    lines = closing_lines(study, studies.summarize(study), ["val/acc"], where)
    assert [line.split()[0] for line in lines] == [
        "best",
        "params",
        "trials",
        "results",
        "mlflow",
        "mlflow",
        "report",
    ]
    assert lines[0] == "best val/acc 0.9300 (trial 1)"
    assert lines[1] == "params optimizer=adam optimizer.lr=0.01235"
    assert (
        lines[2] == "trials COMPLETE 2, PRUNED 1, FAIL 1 | epochs run 7 of 9 budgeted (22% saved by pruning)"
    )
    assert lines[3] == "results multirun/s"
    assert lines[4] == "mlflow sqlite:////x/mlflow.db parent run abc123"
    assert lines[5].startswith("mlflow ui --backend-store-uri sqlite:////x/mlflow.db ")
    assert "#/experiments/7/runs/abc123" in lines[5]
    assert lines[6] == "report sweepkit-report multirun/s"


def test_no_mlflow_line_when_the_sweep_is_not_tracked_to_mlflow(study, tmp_path):
    # tracking=none (or TensorBoard alone): no parent run to name, so no mlflow line at all.
    lines = closing_lines(study, studies.summarize(study), ["val/acc"], Where(tmp_path / "sweep", tmp_path))
    assert not [line for line in lines if line.startswith("mlflow")]


def test_a_tracking_server_is_named_as_its_own_ui(study, tmp_path):
    # A server URI: `mlflow ui` would start a second, empty UI; the line points at the server's page.
    where = Where(tmp_path / "s", tmp_path, "http://mlflow.lab:5000", "3", "r1")
    ui = [
        line
        for line in closing_lines(study, studies.summarize(study), ["val/acc"], where)
        if line.startswith("mlflow ui")
    ]
    assert ui == ["mlflow ui at http://mlflow.lab:5000/#/experiments/3/runs/r1"]


def test_results_list_what_the_sweep_folder_holds_and_paths_outside_stay_absolute(study, tmp_path):
    # Relative to the launch directory where the user types; an absolute sweep folder elsewhere stays absolute.
    folder = tmp_path / "elsewhere"
    (folder / "plots").mkdir(parents=True)
    (folder / "optimization_results.yaml").write_text("{}")
    lines = closing_lines(study, studies.summarize(study), ["val/acc"], Where(folder, tmp_path / "launch"))
    assert f"results {folder} (optimization_results.yaml, plots/)" in lines
    assert f"report sweepkit-report {shlex.quote(str(folder))}" in lines


def test_a_study_without_a_complete_trial_says_so_on_the_best_line(tmp_path):
    study = optuna.create_study(direction="minimize")
    add(
        study, TrialState.PRUNED, epochs=(1, 4), **{studies.PRUNE_REASON: "diverged", studies.PRUNED_EPOCH: 1}
    )
    lines = closing_lines(study, studies.summarize(study), ["val/loss"], Where(tmp_path, tmp_path))
    assert lines[0] == "best val/loss - (no trial COMPLETE yet)" and lines[1].startswith("trials ")


def test_several_objectives_give_their_pareto_front(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(create_trial(values=[0.9, 2.0], params={}, distributions={}))
    study.add_trial(create_trial(values=[0.8, 1.0], params={}, distributions={}))
    lines = closing_lines(
        study, studies.summarize(study), ["val/acc", "epoch_time_s"], Where(tmp_path, tmp_path)
    )
    assert lines[0] == "best val/acc, epoch_time_s: Pareto front of trials 0, 1"


def test_metric_names_come_from_the_study_first():
    # study.set_metric_names (what optuna-dashboard shows) wins; a config's names next; else "value".
    study = optuna.create_study()
    assert metric_names(study) == ["value"] and metric_names(study, ["val/loss"]) == ["val/loss"]
    study.set_metric_names(["val/acc"])
    assert metric_names(study, ["val/loss"]) == ["val/acc"]


def test_a_task_that_reports_no_epochs_gets_no_epoch_count():
    # Another app's task may never report: "epochs run 0 of 0" would say nothing.
    study = optuna.create_study()
    study.add_trial(create_trial(value=1.0, params={}, distributions={}))
    assert counts_line(studies.summarize(study)) == "trials COMPLETE 1, PRUNED 0, FAIL 0"


def test_a_pruned_trial_line_says_why_and_at_which_epoch(study):
    # One line per finished trial: state, value, reason, the best so far, progress, time.
    line = trial_line(study.trials[2], studies.summarize(study), 10, 75)
    assert (
        line == "trial 2 PRUNED value - [pruner at epoch 1] | best 0.9300 (trial 1) | 3/10 finished | 1m15s"
    )
