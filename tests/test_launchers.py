"""The launcher presets in conf/hydra/launcher/ compose into the real Hydra launchers, and submitit runs jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CONFIG_DIR
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

SWEEPKIT_TRAIN = Path(sys.executable).parent / "sweepkit-train"


def class_path(obj) -> str:
    # Not isinstance: Hydra's plugin scan loads plugin modules afresh, so their classes are new objects.
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def compose_hydra(*overrides: str) -> DictConfig:
    """The ``hydra`` node of the real config tree, as a sweep would compose it."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True).hydra


def test_slurm_preset_sets_every_resource_of_a_trial_job():
    # hydra/launcher=slurm is submitit's Slurm launcher with partition, time limit, GPUs, CPUs,
    # memory, array parallelism and requeue on timeout or preemption all stated.
    launcher = compose_hydra("hydra/launcher=slurm").launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert "partition" in launcher  # null: the cluster's default partition
    assert launcher.timeout_min > 0 and launcher.gpus_per_node >= 1
    assert launcher.cpus_per_task >= 1 and launcher.mem_gb >= 1
    assert launcher.array_parallelism >= 1
    assert launcher.max_num_timeout >= 1 and launcher.signal_delay_s > 0
    assert launcher.additional_parameters.requeue is True


def test_slurm_setup_lines_resolve_when_the_launcher_is_built():
    # The preset's setup lines are interpolated from its own keys when Hydra instantiates it.
    launcher = instantiate(compose_hydra("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=6").launcher)
    assert class_path(launcher) == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert "export OMP_NUM_THREADS=6" in launcher.params["setup"]


def test_local_parallel_preset_is_the_joblib_launcher():
    # hydra/launcher=local_parallel builds joblib's launcher; under a sweeper without n_jobs
    # (Hydra's basic one) it runs one process per CPU.
    launcher = instantiate(compose_hydra("hydra/launcher=local_parallel").launcher)
    assert class_path(launcher) == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert launcher.joblib["n_jobs"] == -1
    assert launcher.joblib["backend"] == "loky"


def test_local_parallel_runs_as_many_trials_at_once_as_the_sweeper_batches():
    # Under the sweepkit sweeper, local_parallel's processes follow hydra.sweeper.n_jobs.
    hydra = compose_hydra(
        "hparams_search=lr_batch_optimizer", "hydra/launcher=local_parallel", "hydra.sweeper.n_jobs=3"
    )
    assert instantiate(hydra.launcher).joblib["n_jobs"] == 3


def test_submitit_local_gpus_preset_shows_each_job_every_visible_gpu():
    # hydra/launcher=submitit_local_gpus: submitit's local launcher whose jobs see all the GPUs this
    # process sees (each job then claims a free one); plain submitit_local shows them none.
    import torch

    launcher = instantiate(compose_hydra("hydra/launcher=submitit_local_gpus").launcher)
    assert class_path(launcher) == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    assert launcher.params["gpus_per_node"] == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


@pytest.mark.slow
def test_cfg_hydra_prints_the_slurm_launcher_of_a_sweep(tmp_path):
    # `sweepkit-train -m hparams_search=... hydra/launcher=slurm --cfg hydra` shows the whole submitit
    # Slurm configuration (Hydra 1.3 alone refuses -m together with --cfg; sweepkit-train accepts it).
    shown = subprocess.run(
        [
            str(SWEEPKIT_TRAIN),
            "-m",
            "hparams_search=lr_batch_optimizer",
            "hydra/launcher=slurm",
            "--cfg",
            "hydra",
            "--package",
            "hydra.launcher",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    launcher = yaml.safe_load(shown.stdout)
    assert launcher["_target_"].endswith("SlurmLauncher")
    for key in (
        "partition",
        "timeout_min",
        "gpus_per_node",
        "gres",
        "cpus_per_task",
        "mem_gb",
        "array_parallelism",
        "max_num_timeout",
        "signal_delay_s",
        "additional_parameters",
        "setup",
    ):
        assert key in launcher, key


@pytest.mark.slow
def test_submitit_local_runs_a_two_job_sweep(tmp_path):
    # `sweepkit-train -m hydra/launcher=submitit_local ...` runs each job in its own submitit
    # process, and both jobs train to the end.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [
            str(SWEEPKIT_TRAIN),
            "-m",
            "hydra/launcher=submitit_local",
            "trainer=debug",
            "tracking=none",
            "seed=1,2",
            "hydra.sweep.dir=sweep",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sweep = tmp_path / "sweep"
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # two submitit jobs, each finished
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.pt").is_file()
        assert "best val/acc" in (sweep / job / "train.log").read_text()
