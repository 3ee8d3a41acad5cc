"""The user's own project, run as a user would, from its own folder with the real console scripts:
their config folder (--config-dir / -cd / -cp), their modules imported from the launch directory,
their search files, their own Hydra app under the sweepkit sweeper, and sweepkit-init's scaffold."""

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from optuna.trial import TrialState
from sweeps import TESTS, MlflowView, finished, only_study, states

pytestmark = pytest.mark.slow
REPO = TESTS.parent
EXAMPLE = REPO / "examples" / "own_project"
BIN = Path(sys.executable).parent


def user_env() -> dict[str, str]:
    """A user's shell: no PYTHONPATH (their modules must import from where they stand)."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    return env


def sh(
    cwd: Path, command: str, *args: str, check: bool = True, timeout: float = 400
) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(BIN / command), *args], cwd=cwd, env=user_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{command} {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of examples/own_project, where a user would have it."""
    folder = tmp_path / "myproj"
    shutil.copytree(
        EXAMPLE,
        folder,
        ignore=shutil.ignore_patterns(
            "__pycache__", "multirun", "outputs", "mlflow.db", "mlartifacts", "optuna.journal*"
        ),
    )
    return folder


@pytest.mark.parametrize("flag", ["--config-dir", "-cd"])
def test_own_model_and_own_optimizer_train_from_the_users_config_folder(flag, project):
    # An own model module beside the configs and torch.optim.NAdam with auto_rule sqrt: found through
    # Hydra's own flag, imported from the launch directory; lr_effective follows the square-root rule.
    done = sh(
        project,
        "sweepkit-train",
        flag,
        "conf",
        "model=ring_net",
        "data=rings",
        "optimizer=nadam",
        "data.batch_size=256",
        "lr_scaling.base_batch_size=64",
        "optimizer.lr=0.001",
        "trainer=debug",
        "tracking=none",
    )
    assert (
        "lr_effective 0.002 = optimizer.lr 0.001 x (batch 256 / base 64) ^ 0.5  [rule sqrt"
        in done.stdout + done.stderr
    )


def test_config_path_makes_the_users_folder_the_primary_one(project):
    # -cp/-cn: the user's own primary config, which still composes sweepkit's shipped groups.
    done = sh(project, "sweepkit-train", "-cp", "conf", "-cn", "mine", "trainer=debug", "tracking=none")
    assert (
        "[rule sqrt, optimizer nadam]" in done.stdout + done.stderr
    )  # conf/mine.yaml chose the own optimizer
    composed = sh(project, "sweepkit-train", "-cp", "conf", "-cn", "mine", "--cfg", "job").stdout
    assert "_target_: ring_model.RingNet" in composed and "_target_: torch.optim.NAdam" in composed


def test_lr_find_takes_the_users_config_folder(project):
    # sweepkit-lr-find --config-dir: the range test of the user's own model.
    done = sh(
        project,
        "sweepkit-lr-find",
        "--config-dir",
        "conf",
        "model=ring_net",
        "data=rings",
        "lr_find.num_steps=20",
        "tracking=none",
    )
    assert "paste: optimizer.lr=" in done.stdout + done.stderr


def test_a_bad_own_option_is_one_line_listing_every_folder_on_the_search_path(project):
    # The options come from Hydra's search path: the shipped ones and the user's, in one line, exit 2.
    done = sh(project, "sweepkit-train", "--config-dir", "conf", "model=ring_nett", check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sweepkit-train: error: model=ring_nett is not one of: cnn, linear, mlp, ring_net, torchvision"
    ]


def test_a_lightning_hydra_template_search_file_from_the_users_folder_sweeps_to_n_trials(project):
    # examples/own_project/conf/hparams_search/rings_optuna.yaml is written as lightning-hydra-template's
    # mnist_optuna.yaml, the sweeper renamed: it runs from the user's folder to n_trials.
    sh(
        project,
        "sweepkit-train",
        "-m",
        "--config-dir",
        "conf",
        "hparams_search=rings_optuna",
        "hydra.sweeper.n_trials=4",
        "trainer.max_epochs=3",
        "tracking=none",
    )
    study = only_study(project)
    assert len(finished(study)) == 4 and {"optimizer.lr", "data.batch_size", "model.width"} <= set(
        study.trials[0].params
    )


def test_a_search_file_whose_every_lr_diverges_prunes_every_trial_as_diverged(project):
    # conf/hparams_search/diverging.yaml (in the user's folder) draws lrs no model survives: every
    # trial ends PRUNED, reason diverged, and the sweep still reaches n_trials.
    sh(
        project,
        "sweepkit-train",
        "-m",
        "--config-dir",
        "conf",
        "hparams_search=diverging",
        "hydra.sweeper.n_trials=3",
    )
    study = only_study(project)
    assert states(study) == {"PRUNED": 3}
    assert {t.user_attrs["prune_reason"] for t in study.trials} == {"diverged"}
    view = MlflowView.read(project)
    assert {c.data.tags["optuna.prune_reason"] for c in view.children} == {"diverged"}


OWN_APP = textwrap.dedent('''
    """A Hydra app of the user's own (no sweepkit training): a toy objective pruned through current_trial()."""
    import hydra
    import mlflow
    import optuna

    from sweepkit import current_trial


    @hydra.main(version_base="1.3", config_path="conf", config_name="app")
    def main(cfg):
        trial = current_trial()
        value = 0.0
        for step in range(1, cfg.steps + 1):
            value = -((cfg.x - 2.0) ** 2) * step  # bad x only get worse: the median pruner stops them
            if cfg.tracking.trackers.mlflow:
                mlflow.log_metric("my_metric", value, step=step)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value


    if __name__ == "__main__":
        main()
''')
OWN_APP_CONFIG = textwrap.dedent("""
    defaults:
      - override hydra/sweeper: sweepkit
      - _self_
    x: 0.0
    steps: 6
    tracking:
      trackers: {mlflow: sweepkit.mlflow_runs.mlflow_tracker}   # the sweeper opens a parent run, each trial a child
      uri: null
      experiment: my_app
    hydra:
      mode: MULTIRUN
      sweeper:
        direction: maximize
        n_trials: 8
        sampler: {_target_: optuna.samplers.RandomSampler, seed: 3}
        pruner: {_target_: optuna.pruners.MedianPruner, n_startup_trials: 2, n_warmup_steps: 1}
        params:
          x: interval(-4.0, 6.0)
""")


@pytest.mark.parametrize(
    "launcher",
    [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]],
    ids=["basic", "joblib"],
)
@pytest.mark.parametrize("tracking", ["mlflow", "none"])
def test_the_sweeper_prunes_an_own_hydra_app_through_current_trial(launcher, tracking, tmp_path):
    # The user's own task function gets the study, pruning, n_trials, and with MLflow on, its own
    # metric lands in the trial's child run under the sweep's parent.
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.yaml").write_text(OWN_APP_CONFIG)
    (tmp_path / "app.py").write_text(OWN_APP)
    selected = "sweepkit.mlflow_runs.mlflow_tracker" if tracking == "mlflow" else "null"
    done = subprocess.run(
        [sys.executable, "app.py", f"tracking.trackers.mlflow={selected}", *launcher],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = only_study(tmp_path)
    assert len(finished(study)) == 8 and states(study).get("PRUNED", 0) >= 1, states(study)
    if tracking == "none":
        assert not (tmp_path / "mlflow.db").exists()
        return
    view = MlflowView.read(tmp_path)
    [parent] = view.parents
    assert parent.info.status == "FINISHED"
    for trial in finished(study):
        child = view.child(trial.number)
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["optuna.state"] == trial.state.name and "my_metric" in child.data.metrics
        if trial.state == TrialState.PRUNED:
            assert child.data.tags["optuna.pruned_epoch"] == str(max(trial.intermediate_values))


def test_sweepkit_init_makes_a_project_whose_sweep_reaches_n_trials(tmp_path):
    # The scaffold's own README commands, run as written from its folder; a second init refuses.
    sh(tmp_path, "sweepkit-init", "proj")
    project = tmp_path / "proj"
    readme = (project / "README.md").read_text()
    assert "sweepkit-train -m --config-dir conf hparams_search=tiny_search" in readme
    sh(
        project,
        "sweepkit-train",
        "-m",
        "--config-dir",
        "conf",
        "hparams_search=tiny_search",
        "hydra.sweeper.n_trials=3",
        "trainer.max_epochs=2",
        "tracking=none",
    )
    assert len(finished(only_study(project))) == 3
    report = sh(project, "sweepkit-report", "multirun/tiny_search")
    assert re.search(r"^best \S+ [\d.]+ \(trial \d+\)$", report.stdout, re.M)
    again = sh(tmp_path, "sweepkit-init", "proj", check=False)
    assert again.returncode == 2 and "never overwrites" in again.stderr
