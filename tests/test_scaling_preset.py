"""hparams_search=scaling_law end to end on digits at a tiny budget (2 batch sizes x 3 lrs x 2 epochs):
the real sweep in a subprocess, then its study, folder, MLflow runs and report. One sweep serves
every test here; each test checks one thing it left behind."""

import subprocess

import pytest
from optuna.trial import TrialState
from sweeps import SERIAL, TRAIN, MlflowView, only_study, run_sweep, sweep_env

from sweepkit import studies
from sweepkit.tasks import NOISE_SCALE

pytestmark = pytest.mark.slow

TINY = [
    "hparams_search=scaling_law",
    "scaling_law.batch_sizes=[32,128]",
    "scaling_law.lr_points=3",
    "scaling_law.lr_centre=0.01",
    "scaling_law.lr_decades=2",
    "trainer.max_epochs=2",
    SERIAL,
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("scaling_law")
    run_sweep(cwd, *TINY)
    study = only_study(cwd)
    return cwd, study, cwd / "multirun" / study.study_name


def test_the_grid_runs_whole_and_each_trial_records_its_lr(sweep):
    # n_trials follows the grid: every (batch size, lr) pair once, to the end, lr_effective recorded.
    _, study, _ = sweep
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    assert {(t.params["data.batch_size"], t.params["optimizer.lr"]) for t in trials} == {
        (b, lr) for b in (32, 128) for lr in (0.001, 0.01, 0.1)
    }
    assert all(t.user_attrs[studies.LR_EFFECTIVE] == t.params["optimizer.lr"] for t in trials)  # rule none


def test_sweep_end_writes_the_plot_and_parent_run_metrics(sweep):
    # The sweep's end fits the law: plots/lr_vs_batch.png in the folder and on the parent run,
    # alpha with its interval as metrics, the verdict as a tag.
    cwd, _, folder = sweep
    assert (folder / "plots" / "lr_vs_batch.png").stat().st_size > 0
    (parent,) = MlflowView.read(cwd).parents
    assert {"scaling/alpha", "scaling/alpha_low", "scaling/alpha_high"} <= set(parent.data.metrics)
    assert (
        parent.data.metrics["scaling/alpha_low"]
        <= parent.data.metrics["scaling/alpha"]
        <= parent.data.metrics["scaling/alpha_high"]
    )
    assert parent.data.tags["scaling.verdict"] in ("linear", "sqrt", "neither", "undecided")
    from mlflow import MlflowClient

    artifacts = [
        a.path
        for a in MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}").list_artifacts(parent.info.run_id, "plots")
    ]
    assert "plots/lr_vs_batch.png" in artifacts


def test_every_child_run_logs_the_noise_scale_each_epoch(sweep):
    # trainer.noise_scale is on in the preset: grad_noise_scale from epoch 1 of every trial (epoch 2
    # only where the probe's time budget allows it).
    cwd, _, _ = sweep
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    children = MlflowView.read(cwd).children
    assert len(children) == 6
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, NOISE_SCALE)] in ([1], [1, 2])


def test_report_scaling_prints_the_law_and_the_config(sweep):
    # sweepkit-report <folder> --scaling: the per-batch table, alpha with interval and verdict, the config.
    cwd, _, folder = sweep
    out = subprocess.run(
        [str(TRAIN.with_name("sweepkit-report")), str(folder), "--scaling"],
        cwd=cwd,
        env=sweep_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "lr vs batch size" in out and "alpha " in out and "config: lr_scaling.rule=" in out
    assert f"plot: {folder / 'plots' / 'lr_vs_batch.png'}" in out


def test_report_scaling_on_a_study_without_both_params_is_one_line_and_exit_2(sweep, tmp_path):
    # A study that did not search batch size and lr cannot give a law: one line, exit 2.
    import optuna

    storage = studies.open_storage(str(tmp_path / "optuna.journal"))
    optuna.create_study(study_name="plain", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2
    )
    done = subprocess.run(
        [str(TRAIN.with_name("sweepkit-report")), "plain", "--scaling"],
        cwd=tmp_path,
        env=sweep_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sweepkit-report: error: --scaling=(study plain) needs trials that searched both data.batch_size and "
        "optimizer.lr with one objective (hparams_search=scaling_law does)"
    ]
