"""TensorBoard records runs as event files in the run folder: MLflow's scalars at MLflow's steps, the
config as text, an input grid and the model graph, and one HParams session per sweep trial. Read
back with TensorBoard's own EventAccumulator, served by a real ``tensorboard --logdir``."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import torch
from browser import CHROMIUM, screenshot_and_dom
from conftest import compose_config
from mlflow import MlflowClient
from postgres import free_port
from sweeps import FAST_SEARCH, SEARCHPATH, MlflowView, finished, only_study, run_sweep, wait_for
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from sweepkit import studies
from sweepkit.errors import ConfigError
from sweepkit.event_files import TensorBoardTracker
from sweepkit.mlflow_runs import MlflowTracker
from sweepkit.tracking import NoTracker, Trackers, build_tracker
from sweepkit.training import run

VENV_BIN = Path(sys.executable).parent
EPOCH_METRICS = ("train/loss", "val/loss", "val/acc", "lr", "epoch_time_s", "train/samples_per_s")
FINAL_METRICS = ("test/loss", "test/acc", "best/val/acc")
STATUS = {api_pb2.Status.Value(name): name for name in ("STATUS_SUCCESS", "STATUS_FAILURE")}


def events(folder: Path) -> EventAccumulator:
    """Every event file in ``folder``, read as TensorBoard reads one run (nothing sampled away)."""
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def text(accumulator: EventAccumulator, tag: str) -> str:
    (event,) = accumulator.Tensors(f"{tag}/text_summary")
    return event.tensor_proto.string_val[0].decode()


def session(accumulator: EventAccumulator) -> tuple[dict, str]:
    """A run's HParams session: its hparams (name -> value) and end status."""
    content = accumulator.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    end = hparams_metadata.parse_session_end_info_plugin_data(content[hparams_metadata.SESSION_END_INFO_TAG])
    values = {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}
    return values, STATUS[end.status]


def history(run_folder: Path) -> list[dict[str, float]]:
    return torch.load(run_folder / "checkpoints/last.pt", weights_only=True)["loop"]["history"]


# -- one run -------------------------------------------------------------------------------------------


def test_scalars_have_mlflow_names_and_steps_and_the_final_metrics_come_at_step_0(make_cfg, tmp_path):
    # Each epoch metric at step = epoch (1..N) with the loop's values; test/* and best/* once, at step 0.
    metrics = run(make_cfg("tracking=tensorboard", "trainer.max_epochs=3"))
    found = events(tmp_path / "run")
    epochs = history(tmp_path / "run")
    for name in EPOCH_METRICS:
        assert scalars(found, name) == [
            (i + 1, pytest.approx(h[name], rel=1e-6)) for i, h in enumerate(epochs)
        ], name
    for name in FINAL_METRICS:
        assert scalars(found, name) == [(0, pytest.approx(metrics[name], rel=1e-6))], (
            name
        )  # event files hold float32


def test_config_is_text_and_image_data_gets_one_input_grid_and_the_graph(make_cfg, tmp_path):
    # The resolved config (MLflow's param names) as text, one grid of input images, the model graph, the tags.
    run(make_cfg("tracking=tensorboard", "model=cnn", "tracking.tensorboard.images=9"))
    found = events(tmp_path / "run")
    config = text(found, "config")
    assert (
        "optimizer.lr: 0.002" in config
        and "model._target_: sweepkit.models.LeNet" in config
        and "lr_effective: " in config
    )
    (grid,) = found.Images("inputs")
    assert grid.step == 0 and grid.width == grid.height == 2 + 3 * (
        32 + 2
    )  # 3 x 3 digits, 8x8 drawn 4x larger, padded
    assert found.Tags()["graph"]
    assert "stop_reason: completed" in text(found, "tags") and "status: FINISHED" in text(found, "tags")


def test_data_that_are_not_images_get_no_input_grid(make_cfg, tmp_path):
    # Regression inputs (N x 1) are no images: no grid; the graph is still drawn.
    run(make_cfg("tracking=tensorboard", "data=sine"))
    found = events(tmp_path / "run")
    assert "inputs" not in found.Tags()["images"] and found.Tags()["graph"]


class Untraceable(torch.nn.Module):
    """A model that trains but refuses to be traced (as models with data-dependent control flow do)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError("data-dependent control flow")
        return self.linear(x)


def test_a_model_that_cannot_be_traced_is_one_log_line_and_the_run_goes_on(tmp_path, caplog):
    # Tracing fails: one INFO line naming the model and why, no graph, and the tracker keeps recording.
    tracker = TensorBoardTracker(tmp_path / "tb")
    tracker.start("run", {}, {})
    with caplog.at_level(logging.INFO, logger="sweepkit"):
        tracker.watch(Untraceable(), lambda: torch.randn(8, 4))
    tracker.log_epoch(1, {"train/loss": 0.5})
    tracker.end("FINISHED")
    lines = [r.getMessage() for r in caplog.records if "graph" in r.getMessage()]
    assert lines == ["tensorboard: no model graph (tracing Untraceable failed: data-dependent control flow)"]
    found = events(tmp_path / "tb")
    assert not found.Tags()["graph"] and scalars(found, "train/loss") == [(1, 0.5)]


def test_tensorboard_does_not_change_what_the_run_learns(make_cfg, tmp_path):
    # Same seed and config, with dropout: the graph trace and the input grid draw no random numbers
    # the run would have drawn, so every epoch's metrics equal those of an untracked run.
    common = ["model=cnn", "model.dropout=0.3", "trainer.max_epochs=2"]
    run(make_cfg(*common, output_dir=tmp_path / "none"))
    run(make_cfg(*common, "tracking=tensorboard", output_dir=tmp_path / "tb"))
    learned = [
        {k: h[k] for k in ("train/loss", "val/loss", "val/acc")} for h in history(tmp_path / "none")
    ]  # times differ
    assert [
        {k: h[k] for k in ("train/loss", "val/loss", "val/acc")} for h in history(tmp_path / "tb")
    ] == learned


@pytest.mark.gpu
def test_tensorboard_does_not_change_what_a_cuda_run_learns(make_cfg, tmp_path):
    # On the GPU too: the CUDA random stream (dropout) is put back after the graph trace (an MLP: no
    # convolution whose CUDA kernels may sum in another order from run to run).
    common = ["model=mlp", "model.dropout=0.3", "trainer.max_epochs=2", "trainer.device=cuda"]
    run(make_cfg(*common, output_dir=tmp_path / "none"))
    run(make_cfg(*common, "tracking=tensorboard", output_dir=tmp_path / "tb"))
    learned = [{k: h[k] for k in ("train/loss", "val/loss", "val/acc")} for h in history(tmp_path / "none")]
    assert [
        {k: h[k] for k in ("train/loss", "val/loss", "val/acc")} for h in history(tmp_path / "tb")
    ] == learned
    assert events(tmp_path / "tb").Tags()["graph"]


def test_a_failed_run_shows_its_traceback_and_status(make_cfg, tmp_path):
    # error.txt, the traceback training writes for a failed run, becomes text; the tags say FAILED and why.
    class Explodes:
        def should_prune(self, epoch, value):
            raise RuntimeError("reporter exploded")

    with pytest.raises(RuntimeError):
        run(make_cfg("tracking=tensorboard"), reporter=Explodes())
    found = events(tmp_path / "run")
    assert "Traceback" in text(found, "error.txt") and "reporter exploded" in text(found, "error.txt")
    assert "status: FAILED" in text(found, "tags") and "error: RuntimeError: reporter exploded" in text(
        found, "tags"
    )


# -- several trackers ------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_mlflow_and_tensorboard_together_hold_the_same_values(make_cfg, store, tmp_path):
    # tracking=[mlflow,tensorboard]: one call each, the same names, steps and values in both.
    metrics = run(make_cfg("tracking=[mlflow,tensorboard]", f"tracking.uri={store}", "trainer.max_epochs=3"))
    client, found = MlflowClient(store), events(tmp_path / "run")
    for name in (*EPOCH_METRICS, *FINAL_METRICS):
        logged = sorted((m.step, m.value) for m in client.get_metric_history(metrics["mlflow_run_id"], name))
        assert scalars(found, name) == [(step, pytest.approx(value, rel=1e-6)) for step, value in logged], (
            name
        )
    assert client.get_run(metrics["mlflow_run_id"]).data.tags["tracking"] == "mlflow,tensorboard"


def test_a_tracker_that_fails_to_start_ends_the_ones_already_started(store, tmp_path):
    # MLflow started, TensorBoard then fails (its folder is a file): the MLflow run ends FAILED, not RUNNING.
    (tmp_path / "taken").write_text("a file, not a folder")
    mlflow = MlflowTracker(store, "both")
    both = Trackers([mlflow, TensorBoardTracker(tmp_path / "taken")])
    with pytest.raises(Exception):
        both.start("run", {"a": 1}, {})
    found = MlflowClient(store).get_run(mlflow.run_id)
    assert found.info.status == "FAILED" and "another tracker failed to start" in found.data.tags["error"]


def test_tracking_none_is_no_tracker_and_a_list_of_one_is_that_tracker(tmp_path):
    # tracking=none builds nothing; tracking=[tensorboard] is the TensorBoard tracker itself, not a wrapper.
    assert type(build_tracker(compose_config(["tracking=none"], tmp_path).tracking, tmp_path)) is NoTracker
    assert (
        type(build_tracker(compose_config(["tracking=[tensorboard]"], tmp_path).tracking, tmp_path))
        is TensorBoardTracker
    )


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tracking.tensorboard.images=-1", r"^tracking.tensorboard.images=-1 must be an integer >= 0"),
        ("tracking.tensorboard.graph=maybe", r"^tracking.tensorboard.graph=maybe must be true or false"),
        (
            "+tracking.trackers.wandb=sweepkit.nowhere.wandb_tracker",
            r"^tracking.trackers.wandb=sweepkit.nowhere.wandb_tracker is not an importable function",
        ),
    ],
)
def test_bad_tensorboard_settings_are_one_line_before_anything_is_written(
    override, message, make_cfg, store, tmp_path
):
    # Every tracker is checked before any starts: no MLflow database, no event file.
    with pytest.raises(ConfigError, match=message):
        run(make_cfg("tracking=[mlflow,tensorboard]", f"tracking.uri={store}", override))
    assert not (tmp_path / "mlflow.db").exists() and not list(tmp_path.rglob("events.out.tfevents.*"))


def test_a_log_dir_that_cannot_be_written_is_refused(make_cfg, tmp_path):
    # A folder below a file cannot be made: one line naming the key and the folder.
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^tracking.tensorboard.log_dir=.*/file/tb cannot be written"):
        run(make_cfg("tracking=tensorboard", f"tracking.tensorboard.log_dir={tmp_path / 'file' / 'tb'}"))


WITHOUT_TENSORBOARD = """
import sys
sys.modules["tensorboard"] = None  # as if it were not installed: importing it raises ImportError
sys.argv = ["sweepkit-train", "trainer=debug", "tracking=[mlflow,tensorboard]"]
from sweepkit.train import cli
cli()
"""


@pytest.mark.slow
def test_without_the_package_tracking_tensorboard_is_one_line_saying_what_to_install(tmp_path):
    # No tensorboard: exit 2 with one line naming the extra to install, before MLflow makes its database.
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORBOARD], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "sweepkit-train: error: tracking=tensorboard needs the tensorboard package: pip install 'sweepkit[tensorboard]'"
    )
    assert not (tmp_path / "mlflow.db").exists()


# -- a sweep in the HParams dashboard --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Five trials with MLflow and TensorBoard: trial 1 fails, a strict pruner prunes most later ones."""
    cwd = tmp_path_factory.mktemp("sweep")
    run_sweep(
        cwd,
        *FAST_SEARCH,
        SEARCHPATH,
        "model=flaky",
        "model.fail_after_steps=5",
        "model.only_in_trial=1",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.max_failure_rate=1.0",
        "tracking=[mlflow,tensorboard]",
        'hydra.sweeper.pruner="PercentilePruner(percentile=99.0, n_startup_trials=1, n_warmup_steps=0)"',
    )
    study = only_study(cwd)
    return cwd, study, cwd / "multirun" / study.study_name


@pytest.mark.slow
def test_each_trial_is_an_hparams_session_with_its_params_state_and_pruned_epoch(sweep):
    # Every trial folder holds one session: the sampled params, optuna.state, and for a pruned trial the
    # epoch and reason; COMPLETE and PRUNED end as success, FAIL as failure.
    _, study, sweep_dir = sweep
    trials = study.get_trials(deepcopy=False)
    assert {t.state.name for t in trials} == {"COMPLETE", "PRUNED", "FAIL"}, [t.state.name for t in trials]
    for trial in trials:
        hparams, status = session(events(sweep_dir / str(trial.number)))
        expected = {**trial.params, "optuna.state": trial.state.name}
        if trial.state.name == "PRUNED":
            expected.update(
                {
                    "optuna.pruned_epoch": trial.user_attrs[studies.PRUNED_EPOCH],
                    "optuna.prune_reason": "pruner",
                }
            )
        assert hparams == expected, trial.number  # numbers are stored as doubles: exact
        assert status == ("STATUS_FAILURE" if trial.state.name == "FAIL" else "STATUS_SUCCESS"), trial.number


@pytest.mark.slow
def test_each_trial_holds_its_curves_and_objective_as_in_its_mlflow_child_run(sweep):
    # Per trial: the reported intermediate values are TensorBoard's val/acc; a completed trial's objective
    # is best/val/acc there and in its MLflow child run.
    cwd, study, sweep_dir = sweep
    view = MlflowView.read(cwd)
    for trial in finished(study):
        found = events(sweep_dir / str(trial.number))
        assert scalars(found, "val/acc") == [
            (s, pytest.approx(v, rel=1e-6)) for s, v in sorted(trial.intermediate_values.items())
        ]
        if trial.state.name == "COMPLETE":
            child = view.child(trial.number).data.metrics
            assert trial.value == child["best/val/acc"]
            assert scalars(found, "best/val/acc") == [(0, pytest.approx(trial.value, rel=1e-6))]


def serve_tensorboard(logdir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    """``tensorboard --logdir`` on a free loopback port, once it lists the runs."""
    port = free_port()
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [
                str(VENV_BIN / "tensorboard"),
                "--logdir",
                str(logdir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--reload_interval",
                "1",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def lists_runs() -> bool:
        if server.poll() is not None:
            raise RuntimeError(f"tensorboard did not start: {log_path.read_text()[-2000:]}")
        try:
            return len(requests.get(f"{url}/data/runs", timeout=2).json()) > 0
        except (requests.ConnectionError, ValueError):
            return False

    wait_for(lists_runs, timeout=90, every=0.5)
    return server, url


@pytest.fixture(scope="module")
def tensorboard_server(sweep, tmp_path_factory):
    _, _, sweep_dir = sweep
    server, url = serve_tensorboard(sweep_dir, tmp_path_factory.mktemp("tensorboard") / "server.log")
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


@pytest.mark.slow
def test_tensorboard_serves_the_sweep_as_an_hparams_experiment(sweep, tensorboard_server):
    # The real server reads the sessions: the HParams plugin lists the searched params, optuna.state and
    # the objective among its metrics, and one session group per trial.
    _, study, _ = sweep
    experiment = requests.post(
        f"{tensorboard_server}/data/plugin/hparams/experiment", json={}, timeout=30
    ).json()
    hparams = {h["name"] for h in experiment["hparamInfos"]}
    assert set(study.trials[0].params) | {"optuna.state", "optuna.pruned_epoch"} <= hparams
    assert {"tag": "best/val/acc", "group": ""} in [m["name"] for m in experiment["metricInfos"]]
    request = {"startIndex": 0, "sliceSize": 100, "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE"]}
    groups = requests.post(
        f"{tensorboard_server}/data/plugin/hparams/session_groups", json=request, timeout=30
    ).json()
    states = {g["name"].split(" (")[0]: g["hparams"]["optuna.state"] for g in groups["sessionGroups"]}
    assert states == {f"trial {t.number} {t.state.name}": t.state.name for t in study.trials}
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert {
        f"trial {t.number} PRUNED (pruned_epoch {t.user_attrs[studies.PRUNED_EPOCH]}, prune_reason pruner)"
        for t in pruned
    } <= {g["name"] for g in groups["sessionGroups"]}  # the Trial ID column, always shown, tells the outcome


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs /usr/bin/chromium (apt-get install -y chromium) to look at TensorBoard",
)
def test_tensorboard_scalars_page_shows_the_trials_in_a_browser(sweep, tensorboard_server, tmp_path):
    # Headless Chromium renders the time-series dashboard: one run per trial, the metric groups, no error page.
    _, study, _ = sweep
    screenshot = tmp_path / "scalars.png"
    dom = screenshot_and_dom(f"{tensorboard_server}/#timeseries", screenshot, "1400,1600", 20000, timeout=180)
    groups = set(re.findall(r'class="group-title" title="([^"]+)"', dom))  # one card group per tag prefix
    assert {"train", "val", "test", "best", "lr", "inputs"} <= groups, groups
    assert 'title="best/val/acc"' in dom  # the first group's card is open
    assert dom.count('class="run-color-swatch"') == len(study.trials)  # one run per trial in the run list
    assert "No dashboards are active" not in dom and "Failed to fetch" not in dom
    assert screenshot.read_bytes().startswith(b"\x89PNG")
