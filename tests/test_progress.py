"""Progress: plain log lines when output is not a terminal (cluster logs)."""

import logging

import pytest

from sweepkit.errors import ConfigError
from sweepkit.progress import BarProgress, LogProgress, SweepProgress, build_progress, format_metrics


def test_auto_picks_log_lines_when_stdout_is_not_a_tty(capsys):
    # pytest captures stdout, so it is not a terminal, as in a Slurm log.
    assert type(build_progress("auto", 30)) is LogProgress


def test_bar_mode_is_available_on_request():
    progress = build_progress("bar", 30)
    try:
        assert isinstance(progress, BarProgress)
        progress.start_epoch(1, 2, 10)
        progress.advance(10, 0.5)
    finally:
        progress.close()


def test_log_mode_prints_a_line_per_epoch(caplog):
    progress = LogProgress(every_s=0.0)
    with caplog.at_level(logging.INFO, logger="sweepkit"):
        progress.start_epoch(1, 3, 10)
        progress.advance(5, 0.25)
        progress.end_epoch(1, {"train/loss": 0.2, "val/acc": 0.9, "lr": 0.001})
    assert "epoch 1/3  batch 5/10  train/loss 0.2500" in caplog.text
    assert "epoch 1/3  train/loss 0.2000  val/acc 0.9000  lr 0.001" in caplog.text


def test_unknown_progress_mode_lists_the_choices():
    with pytest.raises(ConfigError, match="trainer.progress=fancy is not one of: auto, bar, log, none"):
        build_progress("fancy", 30)


def test_format_metrics_suits_each_metric():
    assert (
        format_metrics({"train/samples_per_s": 1234.56, "lr": 0.00012345})
        == "train/samples_per_s 1234.6  lr 0.000123"
    )


def test_a_sweep_shows_no_bar_when_stdout_is_not_a_terminal(capsys):
    # In a log file (Slurm, nohup, a pipe) a bar is escape codes: the sweep's lines come plain.
    progress = SweepProgress(total=3, done=0)
    progress.line("trial 0 COMPLETE value 0.5000")
    progress.advance(1, "0.5000")
    progress.close()
    assert progress.bar is None and capsys.readouterr().out == "trial 0 COMPLETE value 0.5000\n"


def test_a_sweeps_bar_counts_finished_trials():
    progress = SweepProgress(total=3, done=1, bar=True)
    try:
        progress.advance(2, "0.9000")
        task = progress.bar.tasks[0]
        assert (task.completed, task.total, task.fields["best"]) == (2, 3, "0.9000")
    finally:
        progress.close()
