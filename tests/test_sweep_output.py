"""What a sweep prints, whatever its launcher: one line per finished trial, each trial's epochs in its
own log file, its warnings and errors on the console, the closing summary; a single run keeps its
epochs on the console. Real sweeps in a subprocess (``sweepkit-train -m``), stdout not a terminal."""

import re
import shlex
import subprocess

import pytest
from sweeps import SEARCHPATH, TRAIN, only_study, run_sweep, sweep_env

pytestmark = pytest.mark.slow

EPOCH_LINE = re.compile(r"epoch \d+/\d+ ")
# Four trials of two epochs: trial 0 enqueued with an lr that diverges (PRUNED, diverged, at epoch 1),
# trial 1 raises after three steps (FAIL), two COMPLETE ones reach n_trials=3 results.
SWEEP = [
    "hparams_search=lr_batch_optimizer",
    "trainer.max_epochs=2",
    SEARCHPATH,
    "model=flaky",
    "model.fail_after_steps=3",
    "model.only_in_trial=1",
    "hydra.sweeper.n_trials=3",
    "hydra.sweeper.max_failure_rate=0.5",
    "hydra.sweeper.enqueue_trials=[{optimizer: sgd, optimizer.lr: 1e12, data.batch_size: 64, lr_scaling.rule: none}]",
]


@pytest.fixture(
    scope="module", params=["hydra.sweeper.n_jobs=2", "hydra.sweeper.n_jobs=1"], ids=["joblib", "in-process"]
)
def sweep(request, tmp_path_factory):
    """(launch folder, its output, the study) of one small sweep: two parallel joblib workers, or the
    basic launcher running every trial in the sweep's own process."""
    cwd = tmp_path_factory.mktemp("sweep")
    done = run_sweep(cwd, *SWEEP, request.param)
    return cwd, done, only_study(cwd)


def summary_lines(stdout: str) -> dict[str, list[str]]:
    """The closing summary's lines by their first word (they come last, after the trial lines)."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("best "))
    found: dict[str, list[str]] = {}
    for line in lines[start:]:
        found.setdefault(line.split()[0], []).append(line)
    return found


def test_the_console_holds_one_line_per_trial_and_no_epoch_line(sweep):
    # 30 trials of 20 epochs must not print 600 lines: the trial lines alone, no bar (not a terminal).
    _cwd, done, study = sweep
    trial_lines = [line for line in done.stdout.splitlines() if line.startswith("trial ")]
    assert sorted(int(line.split()[1]) for line in trial_lines) == [t.number for t in study.trials]
    assert not [line for line in (done.stdout + done.stderr).splitlines() if EPOCH_LINE.search(line)]
    assert (
        "[sweepkit][INFO]" not in done.stdout + done.stderr
        and "Launching jobs" not in done.stdout + done.stderr
    )
    assert "\x1b[" not in done.stdout


def test_each_trials_epochs_are_in_its_own_log_file(sweep):
    # Hydra's job log in the trial's folder keeps every epoch line; nothing of the sweeper's lands there.
    cwd, _done, study = sweep
    folder = cwd / "multirun" / study.study_name
    for trial in study.trials:
        log = (folder / str(trial.number) / "train.log").read_text()
        epochs = 0 if trial.number == 1 else len(trial.intermediate_values) or 1  # trial 1 failed in epoch 1
        assert len(EPOCH_LINE.findall(log)) == epochs, (trial.number, log)
        assert "finished trials: done" not in log and "trial 3 " not in log.replace(
            f"trial {trial.number} ", ""
        )


def test_a_trials_error_reaches_the_console(sweep):
    # The failing trial's error is on the console in one line, naming the log file that holds its traceback.
    cwd, done, study = sweep
    log_file = cwd / "multirun" / study.study_name / "1" / "train.log"
    assert f"trial 1 failed: RuntimeError: boom after 3 steps (traceback in {log_file})" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr and "Traceback" in log_file.read_text()
    assert "trial 1 FAIL value - [RuntimeError: boom after 3 steps]" in done.stdout


def test_the_summary_tells_best_params_counts_and_where_to_look(sweep):
    # The closing lines hold the study's own values, in order, and their commands run as printed.
    cwd, done, study = sweep
    found = summary_lines(done.stdout)
    assert list(found) == ["best", "params", "trials", "results", "mlflow", "report"]
    best = study.best_trial
    assert found["best"] == [f"best val/acc {best.value:.4f} (trial {best.number})"]
    assert found["params"][0].startswith(f"params optimizer={best.params['optimizer']} ")
    assert found["trials"] == [
        "trials COMPLETE 2, PRUNED 1, FAIL 1 | epochs run 5 of 6 budgeted (17% saved by pruning)"
    ]
    assert found["results"] == [f"results multirun/{study.study_name} (optimization_results.yaml, plots/)"]
    uri, parent = study.user_attrs["mlflow_tracking_uri"], study.user_attrs["mlflow_parent_run_id"]
    assert found["mlflow"][0] == f"mlflow {uri} parent run {parent}"
    assert found["mlflow"][1].startswith(f"mlflow ui --backend-store-uri {uri} ")
    command = shlex.split(found["report"][0].removeprefix("report "))
    report = subprocess.run(
        [str(TRAIN.with_name(command[0])), *command[1:]],
        cwd=cwd,
        env=sweep_env(),
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0 and re.search(
        rf"^best \S+ {best.value:.4f} \(trial {best.number}\)$", report.stdout, re.M
    )


def test_a_single_run_keeps_its_epoch_lines_on_the_console(tmp_path):
    # No sweep, no trial log to read: each epoch is told where the user is looking.
    done = subprocess.run(
        [str(TRAIN), "trainer.max_epochs=2", "trainer.progress=log", "tracking=none"],
        cwd=tmp_path,
        env=sweep_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(EPOCH_LINE.findall(done.stdout)) == 2
