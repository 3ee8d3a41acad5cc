"""console.py, the console scripts' shell: arguments Hydra alone would refuse."""

import pytest

from sweepkit.console import inspect_sweep_args, one_line_errors
from sweepkit.errors import ConfigError


def test_multirun_with_cfg_becomes_the_multirun_mode_override():
    argv = ["-m", "hparams_search=lr_batch_optimizer", "hydra/launcher=slurm", "--cfg", "hydra"]
    assert inspect_sweep_args(argv) == [
        "hydra.mode=MULTIRUN",
        "hparams_search=lr_batch_optimizer",
        "hydra/launcher=slurm",
        "--cfg",
        "hydra",
    ]


def test_other_arguments_pass_unchanged():
    for argv in (["-m", "seed=1,2"], ["--cfg", "job"], ["trainer=debug"]):
        assert inspect_sweep_args(argv) == argv


@pytest.mark.parametrize(
    "err, line, status",
    [
        (ConfigError("DIR", "x", "already holds README.md"), "tool: error: DIR=x already holds README.md", 2),
        (KeyboardInterrupt(), "tool: error: interrupted", 130),
    ],
)
def test_a_script_without_hydra_leaves_through_the_one_line_exit(err, line, status, capsys):
    # argparse scripts (sweepkit-report, sweepkit-init): whatever known error their body raises is one line and its status.
    @one_line_errors("tool")
    def main():
        raise err

    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == status and capsys.readouterr().err.strip() == line


EXIT_REPORT = """
import atexit, gc, sys
from sweepkit.console import run_console_script
from sweepkit.errors import ConfigError

atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0))

def fails():
    raise ConfigError("trainer.max_epochs", 2.5, "must be an integer")

run_console_script("demo", fails if sys.argv[1] == "fails" else lambda: None)
"""


@pytest.mark.parametrize("how", ["returns", "fails"])
def test_a_console_script_ends_without_the_collectors_last_passes(how, tmp_path):
    # Whichever way a command ends, what it holds is frozen before the interpreter's teardown (its
    # last collections over torch's objects took 1-2 s of every command's exit); exit handlers still run.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", EXIT_REPORT, how], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == (2 if how == "fails" else 0), done.stderr
    assert done.stdout.strip().endswith("frozen True")
