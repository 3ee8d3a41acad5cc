"""``sweepkit-train`` (train.py): the final summary of a single run."""

import sys

from sweepkit.train import cli


def test_a_run_without_mlflow_names_no_mlflow_run(tmp_path, monkeypatch, capsys):
    # tracking=none: the summary names the checkpoint and no MLflow run (never "mlflow run None").
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sweepkit-train", "trainer=debug", "tracking=none"])
    cli()
    out = capsys.readouterr().out
    assert "checkpoint " in out
    assert "mlflow run" not in out
