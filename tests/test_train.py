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


def test_what_a_sweeps_workers_preload_is_what_a_trial_imports_and_all_of_it_imports():
    # The warm workers' server imports these before forking (a name it cannot import, it skips
    # silently): each one imports, and a tracker's modules come with the tracker.
    import importlib

    from sweepkit.train import compose, worker_modules

    both = worker_modules(compose(["tracking=[mlflow,tensorboard]"]))
    assert {"sweepkit.mlflow_runs", "mlflow", "sweepkit.event_files", "torch._dynamo"} <= set(both)
    assert "mlflow" not in worker_modules(compose(["tracking=none"]))
    for module in both:
        importlib.import_module(module)
