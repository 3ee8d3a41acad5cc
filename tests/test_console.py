"""console.py, the console scripts' shell: arguments Hydra alone would refuse."""

from sweepkit.console import inspect_sweep_args


def test_multirun_with_cfg_becomes_the_multirun_mode_override():
    argv = ["-m", "hparams_search=lr_batch_optimizer", "hydra/launcher=slurm", "--cfg", "hydra"]
    assert inspect_sweep_args(argv) == ["hydra.mode=MULTIRUN", "hparams_search=lr_batch_optimizer", "hydra/launcher=slurm", "--cfg", "hydra"]


def test_other_arguments_pass_unchanged():
    for argv in (["-m", "seed=1,2"], ["--cfg", "job"], ["trainer=debug"]):
        assert inspect_sweep_args(argv) == argv
