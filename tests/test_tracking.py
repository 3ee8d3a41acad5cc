"""MLflow records every run: config and provenance as params, per-epoch curves, checkpoints that
rebuild the model, and how the run ended. Real MLflow throughout: SQLite stores in ``tmp_path``,
and a real ``mlflow ui`` server for the REST and browser checks."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import torch
from browser import CHROMIUM, screenshot_and_dom
from conftest import CONFIG_DIR, compose_config
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient
from mlflow_server import serve_mlflow
from omegaconf import OmegaConf, open_dict
from postgres import free_port
from sweeps import empty_store

from sweepkit import provenance
from sweepkit.errors import ConfigError
from sweepkit.loop import evaluate
from sweepkit.mlflow_runs import MAX_PARAM_VALUE, resolve_store
from sweepkit.tracking import build_tracker
from sweepkit.train import cli
from sweepkit.training import build, group_choices, run

VENV_BIN = Path(sys.executable).parent
EPOCH_METRICS = ("train/loss", "val/loss", "val/acc", "lr", "epoch_time_s", "train/samples_per_s")
FINAL_METRICS = ("test/loss", "test/acc", "best/val/acc")
ARTIFACTS = ("checkpoints/best.pt", "checkpoints/last.pt", "config.yaml", "plots/learning_curve.png")


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def migrated_db() -> Path:
    """An empty MLflow database with its schema, made once: a copy saves each test seconds of set-up."""
    return empty_store()


@pytest.fixture
def store(tmp_path, migrated_db) -> str:
    """A fresh, empty SQLite tracking store in ``tmp_path``."""
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def all_runs(client: MlflowClient):
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def only_run(client: MlflowClient):
    runs = all_runs(client)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


class FailsAt:
    """A pruning reporter that raises ``error`` after ``epoch``: a failure from outside the tracker."""

    def __init__(self, epoch: int, error: BaseException) -> None:
        self.epoch, self.error = epoch, error

    def should_prune(self, epoch: int, value: float) -> bool:
        if epoch == self.epoch:
            raise self.error
        return False


# -- what a run holds ------------------------------------------------------------------------------


def test_finished_run_holds_the_flattened_config_provenance_and_group_tags(make_cfg, store):
    # One FINISHED run; params = resolved config with dotted keys + lr_effective, parameter count, provenance.
    metrics = run(make_cfg("tracking=mlflow", f"tracking.uri={store}"))
    found = only_run(MlflowClient(store))
    assert found.info.status == "FINISHED" and found.info.run_id == metrics["mlflow_run_id"]
    params = found.data.params
    assert params["optimizer.lr"] == "0.002" and params["data.batch_size"] == "64"
    assert params["optimizer.name"] == "adam" and params["model.hidden"] == "[128, 64]"
    assert params["trainer.early_stopping.patience"] == "None" and params["seed"] == "42"
    assert float(params["lr_effective"]) == metrics["lr_effective"]
    weights = torch.load(metrics["checkpoint"], weights_only=True)["model"]
    assert int(params["model.parameters"]) == sum(w.numel() for w in weights.values())
    assert params["git_commit"] == provenance.git_commit() and params["torch_version"] == torch.__version__
    assert params["device"] == "cpu" and params["precision"] == "32"
    tags = found.data.tags
    assert {k: tags[k] for k in ("model", "data", "optimizer", "scheduler")} == {
        "model": "mlp",
        "data": "digits",
        "optimizer": "adam",
        "scheduler": "none",
    }
    assert tags["mlflow.runName"] == "mlp-digits-adam-bs64-lr0.002" and tags["stop_reason"] == "completed"


def test_a_run_from_python_with_hydras_config_is_tagged_and_named_as_the_commands(
    store, tmp_path, monkeypatch
):
    # The same overrides through the command and through Hydra's compose API (return_hydra_config=True,
    # as docs/training.md shows): the same group tags (model=cnn, not the class's lenet), run name and
    # params; Hydra's own node is not logged as the run's config.
    overrides = ["model=cnn", "trainer=debug", "trainer.max_epochs=1", f"tracking.uri={store}"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sweepkit-train", *overrides, "hydra.run.dir=outputs/command"])
    cli()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=[*overrides, f"output_dir={tmp_path / 'python'}"], return_hydra_config=True
        )
    python_run = run(cfg)["mlflow_run_id"]
    client = MlflowClient(store)
    [command] = [r for r in all_runs(client) if r.info.run_id != python_run]
    python = client.get_run(python_run)
    groups = ("model", "data", "optimizer", "scheduler", "trainer", "tracking")
    assert {g: python.data.tags.get(g) for g in groups} == {g: command.data.tags.get(g) for g in groups}
    assert python.data.tags["model"] == "cnn" and python.info.run_name == command.info.run_name
    assert not [k for k in python.data.params if k.startswith("hydra.")]
    differ = {k for k in command.data.params if python.data.params.get(k) != command.data.params[k]}
    assert differ <= {"output_dir"}, differ


def test_every_epoch_is_one_step_of_each_curve_and_test_metrics_come_at_the_end(make_cfg, store):
    # train/loss, val/loss, val/acc, lr, epoch_time_s, train/samples_per_s: step = epoch, 1..N; then test/*, best/*.
    metrics = run(make_cfg("tracking=mlflow", f"tracking.uri={store}", "trainer.max_epochs=3"))
    client = MlflowClient(store)
    for key in EPOCH_METRICS:
        assert [m.step for m in client.get_metric_history(metrics["mlflow_run_id"], key)] == [1, 2, 3], key
    logged = client.get_run(metrics["mlflow_run_id"]).data.metrics
    assert {key: logged[key] for key in FINAL_METRICS} == {key: metrics[key] for key in FINAL_METRICS}


def test_downloaded_best_checkpoint_rebuilds_the_model_and_reproduces_the_logged_accuracy(
    make_cfg, store, tmp_path
):
    # best.pt from MLflow loads weights-only; its config rebuilds the model; validation gives best/val/acc exactly.
    metrics = run(
        make_cfg("tracking=mlflow", f"tracking.uri={store}", "trainer.max_epochs=3", "model.dropout=0.3")
    )
    client, run_id = MlflowClient(store), metrics["mlflow_run_id"]
    download = Path(client.download_artifacts(run_id, "", str(tmp_path / "download")))
    assert all((download / path).is_file() for path in ARTIFACTS), sorted(
        p.as_posix() for p in download.rglob("*")
    )
    assert (download / "plots/learning_curve.png").read_bytes().startswith(b"\x89PNG")
    state = torch.load(download / "checkpoints/best.pt", weights_only=True)
    assert (download / "config.yaml").read_text() == state["config_yaml"]

    cfg = OmegaConf.create(state["config_yaml"])
    cfg.output_dir = None
    rebuilt = build(cfg, None)
    rebuilt.loop.model.load_state_dict(state["model"])
    loop = rebuilt.loop
    val = evaluate(loop.model, loop.val_batches, loop.loss_fn, loop.precision, rebuilt.source.task)
    assert val["acc"] == client.get_run(run_id).data.metrics["best/val/acc"]


def test_each_epoch_is_logged_in_one_batched_call(make_cfg, store, tmp_path):
    # log_epoch makes exactly one MlflowClient.log_batch call (the real client, counted).
    cfg = make_cfg("tracking=mlflow", f"tracking.uri={store}", "trainer.max_epochs=3")
    tracker = build_tracker(cfg.tracking, tmp_path)
    calls: list[dict] = []
    real_log_batch, real_log_epoch = tracker.client.log_batch, tracker.log_epoch

    def counted_log_batch(*args, **kwargs):
        calls.append(kwargs)
        return real_log_batch(*args, **kwargs)

    per_epoch: list[int] = []

    def log_epoch(epoch, metrics):
        before = len(calls)
        real_log_epoch(epoch, metrics)
        per_epoch.append(len(calls) - before)

    tracker.client.log_batch, tracker.log_epoch = counted_log_batch, log_epoch
    run(cfg, make_tracker=lambda: tracker)
    assert per_epoch == [1, 1, 1]
    assert len(MlflowClient(store).get_metric_history(tracker.run_id, "val/acc")) == 3


def test_any_config_fits_mlflow_limits(make_cfg, store):
    # Over 100 params, a 7,000-character value, a 300-character key, characters MLflow refuses: the run still records.
    cfg = make_cfg("tracking=mlflow", f"tracking.uri={store}", "trainer.max_epochs=1")
    with open_dict(cfg):
        cfg.notes = "x" * 7000
        cfg.extra = {f"k{i}": i for i in range(120)} | {"k" * 300: 1, "p(drop)@2": 0.5, "a//b": 2}
    metrics = run(cfg)
    found = only_run(MlflowClient(store))
    params = found.data.params
    assert found.info.status == "FINISHED" and found.info.run_id == metrics["mlflow_run_id"]
    assert params["notes"] == "x" * MAX_PARAM_VALUE and params["extra.k119"] == "119"
    assert params["extra.p_drop__2"] == "0.5" and params["extra.a__b"] == "2"
    assert ("extra." + "k" * 300)[:250] in params
    assert len(params) > 150


# -- how a run ends --------------------------------------------------------------------------------


def test_a_failing_run_ends_failed_with_the_error_as_tag_and_traceback_artifact(make_cfg, store, tmp_path):
    # An exception mid-training (here from the pruning reporter) ends the run FAILED, never RUNNING.
    cfg = make_cfg("tracking=mlflow", f"tracking.uri={store}")
    with pytest.raises(RuntimeError, match="reporter exploded"):
        run(cfg, reporter=FailsAt(1, RuntimeError("reporter exploded at epoch 1")))
    client = MlflowClient(store)
    found = only_run(client)
    assert found.info.status == "FAILED"
    assert found.data.tags["error"] == "RuntimeError: reporter exploded at epoch 1"
    error_txt = Path(
        client.download_artifacts(found.info.run_id, "error.txt", str(tmp_path / "download"))
    ).read_text()
    assert error_txt.startswith("Traceback") and "reporter exploded at epoch 1" in error_txt
    assert [r.info.status for r in all_runs(client)] == ["FAILED"]


def test_an_interrupted_run_ends_killed(make_cfg, store):
    # Ctrl-C (KeyboardInterrupt) mid-training ends the run KILLED, with the reason as its error tag.
    with pytest.raises(KeyboardInterrupt):
        run(make_cfg("tracking=mlflow", f"tracking.uri={store}"), reporter=FailsAt(1, KeyboardInterrupt()))
    found = only_run(MlflowClient(store))
    assert found.info.status == "KILLED" and "KeyboardInterrupt" in found.data.tags["error"]


def test_system_metrics_are_logged_when_asked(make_cfg, store):
    # tracking.system_metrics=true: CPU, memory, disk and network as system/* metrics, even for a short run.
    metrics = run(
        make_cfg(
            "tracking=mlflow", f"tracking.uri={store}", "tracking.system_metrics=true", "trainer.max_epochs=1"
        )
    )
    found = MlflowClient(store).get_run(metrics["mlflow_run_id"])
    system = {k for k in found.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system
    assert found.info.status == "FINISHED"


# -- where runs land ---------------------------------------------------------------------------------


def test_runs_from_any_working_directory_land_in_the_launch_directory_store(tmp_path, monkeypatch):
    # tracking.uri=null: mlflow.db and mlartifacts/ of the launch directory, also for a job that chdirs away.
    launch = tmp_path / "launch"
    launch.mkdir()
    monkeypatch.chdir(launch)
    for name, chdir in (("here", "false"), ("away", "true")):  # "away": the job's cwd is its output folder
        monkeypatch.setattr(
            sys,
            "argv",
            [
                "sweepkit-train",
                "trainer=debug",
                "trainer.max_epochs=1",
                f"hydra.run.dir=outputs/{name}",
                f"hydra.job.chdir={chdir}",
            ],
        )
        cli()
    assert Path.cwd() == launch
    assert sorted(p.relative_to(launch).as_posix() for p in launch.rglob("mlflow.db")) == ["mlflow.db"]
    assert not list(launch.rglob("mlruns")), "a stray mlruns/ would make `mlflow ui` ignore mlflow.db"
    client = MlflowClient(f"sqlite:///{launch / 'mlflow.db'}")
    runs = all_runs(client)
    assert len(runs) == 2 and {r.data.tags["trainer"] for r in runs} == {"debug"}
    for found in runs:
        assert found.info.artifact_uri.startswith((launch / "mlartifacts").as_uri())
        assert (launch / "mlartifacts" / found.info.run_id / "artifacts/checkpoints/best.pt").is_file()


def test_a_relative_sqlite_uri_resolves_against_the_launch_directory_with_artifacts_beside_it(
    make_cfg, tmp_path, monkeypatch
):
    # sqlite:///../mlflow.db from launch/sub is launch/mlflow.db, its artifacts in launch/mlartifacts/.
    (tmp_path / "sub").mkdir()
    uri, artifacts = resolve_store("sqlite:///../mlflow.db", tmp_path / "sub")
    assert (uri, artifacts) == (f"sqlite:///{tmp_path / 'mlflow.db'}", (tmp_path / "mlartifacts").as_uri())
    monkeypatch.chdir(tmp_path / "sub")
    metrics = run(make_cfg("tracking=mlflow", "tracking.uri=sqlite:///../mlflow.db", "trainer.max_epochs=1"))
    assert (tmp_path / "mlartifacts" / metrics["mlflow_run_id"] / "artifacts/config.yaml").is_file()
    assert not (tmp_path / "sub" / "mlflow.db").exists() and not (tmp_path / "sub" / "mlruns").exists()


PARALLEL_RUN = """
import pathlib, sys, time
import mlflow  # imported before the start signal, so that the processes open the store together
from sweepkit.tracking import build_tracker
launch = pathlib.Path(sys.argv[1])
(launch / f"ready-{sys.argv[2]}").touch()
while not (launch / "go").exists():
    time.sleep(0.01)
cfg = {"trackers": {"mlflow": "sweepkit.mlflow_runs.mlflow_tracker"}, "uri": None, "artifact_location": None, "experiment": "parallel",
       "system_metrics": False}
tracker = build_tracker(cfg, launch)
tracker.start(f"job-{sys.argv[2]}", {"job": sys.argv[2]}, {})
tracker.end("FINISHED")
"""


@pytest.mark.slow
def test_parallel_jobs_can_open_one_fresh_store_together(tmp_path):
    # Jobs of a parallel multirun opening a fresh mlflow.db at once all record their run (MLflow alone breaks it).
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", PARALLEL_RUN, str(tmp_path), str(i)], stderr=subprocess.PIPE, text=True
        )
        for i in range(3)
    ]
    deadline = time.monotonic() + 60
    while (
        len(list(tmp_path.glob("ready-*"))) < len(jobs)
        and time.monotonic() < deadline
        and all(j.poll() is None for j in jobs)
    ):
        time.sleep(0.02)
    (tmp_path / "go").touch()
    errors = [job.communicate(timeout=120)[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0] * len(jobs), "\n".join(e[-1500:] for e in errors)
    runs = all_runs(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert sorted(r.data.params["job"] for r in runs) == ["0", "1", "2"] and {
        r.info.status for r in runs
    } == {"FINISHED"}


def schema(db: Path) -> list[tuple]:
    """A SQLite database's tables, indexes and triggers as created (each definition's lines in order:
    MLflow's own migrations order a table's constraints differently from one store to the next),
    and its alembic revision."""
    with sqlite3.connect(db) as connection:
        entries = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    lines = [
        (kind, name, table, sorted(line.strip(" ,") for line in (sql or "").splitlines()))
        for kind, name, table, sql in entries
    ]
    return sorted(lines) + revision


def test_a_fresh_store_is_mlflows_own_schema_and_a_half_made_one_is_never_used(tmp_path, migrated_db):
    # The store sweepkit makes (MLflow's migrations, no flush per step) is the schema MLflow makes
    # itself, to the index and revision; a file left half-built by a killed maker is discarded.
    from sweepkit.mlflow_runs import open_experiment

    db = tmp_path / "mlflow.db"
    (tmp_path / "mlflow.db-new").write_bytes(b"SQLite format 3\x00 torn")
    client, experiment_id = open_experiment(f"sqlite:///{db}", "fresh", None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "mlflow.db-lock"]
    assert schema(db) == schema(migrated_db)
    run_id = client.create_run(experiment_id).info.run_id
    assert MlflowClient(f"sqlite:///{db}").get_run(run_id).info.experiment_id == experiment_id


def test_experiment_and_hydra_choices_become_tags():
    # With Hydra's choices, every chosen group (experiment too) is a tag; unset groups are left out.
    cfg = compose_config(["experiment=cnn_digits", "tracking=none"], None)
    choices = {
        "model": "cnn",
        "data": "digits",
        "optimizer": "sgd",
        "scheduler": "cosine",
        "trainer": "default",
        "tracking": "none",
        "experiment": "cnn_digits",
        "hparams_search": None,
        "hydra/launcher": "basic",
    }
    assert group_choices(cfg, choices) == {
        k: v for k, v in choices.items() if v is not None and k not in ("hparams_search", "hydra/launcher")
    }


# -- bad input ------------------------------------------------------------------------------------------


def test_an_unreachable_tracking_server_is_one_line_at_once(make_cfg):
    # A server URI nothing listens on fails in well under a second (MLflow alone retries for minutes).
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"^tracking.uri={uri} cannot be reached \(Connection refused\)"):
        run(make_cfg("tracking=mlflow", f"tracking.uri={uri}"))
    assert time.perf_counter() - start < 5


def test_a_deleted_experiment_is_refused_with_how_to_restore_it(make_cfg, store):
    # MLflow keeps a deleted experiment's name: say so, and how to restore it, instead of a stack trace.
    client = MlflowClient(store)
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(
        ConfigError,
        match=r"^tracking.experiment=gone was deleted in MLflow: restore it \(mlflow experiments restore",
    ):
        run(make_cfg("tracking=mlflow", f"tracking.uri={store}", "tracking.experiment=gone"))


@pytest.mark.slow
def test_mlflow_is_not_imported_without_tracking():
    # tracking=none never imports MLflow (the import alone costs about a second).
    code = (
        "import sys; sys.path.insert(0, 'tests'); from conftest import compose_config\n"
        "from sweepkit.training import run; import sweepkit.train\n"
        "run(compose_config(['trainer=debug', 'trainer.max_epochs=1', 'tracking=none'], None))\n"
        "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


# -- a real MLflow server: `mlflow ui` in the launch directory ---------------------------------------------


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """``mlflow ui`` with no store flags in a launch directory that holds one local run; yields
    (base URL, launch directory, the local run's id). Stopped at the end of the module."""
    launch = tmp_path_factory.mktemp("launch")
    cfg = compose_config(["trainer=debug", "tracking=mlflow"], launch / "outputs/local")
    local = run(
        cfg, make_tracker=lambda: build_tracker(cfg.tracking, launch)
    )  # tracking.uri=null: launch/mlflow.db

    with serve_mlflow(launch, "ui") as url:
        yield url, launch, local["mlflow_run_id"]


@pytest.fixture(scope="module")
def served_run(ui_server, tmp_path_factory) -> str:
    """A run logged through the server (tracking.uri=http://...), its artifacts uploaded through it."""
    url, _, _ = ui_server
    cfg = compose_config(
        [
            "trainer=debug",
            "trainer.max_epochs=3",
            "tracking=mlflow",
            f"tracking.uri={url}",
            "tracking.experiment=served",
        ],
        tmp_path_factory.mktemp("served"),
    )
    return run(cfg)["mlflow_run_id"]


def api(url: str, endpoint: str, **params) -> dict:
    response = requests.get(f"{url}/api/2.0/mlflow/{endpoint}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.mark.slow
def test_mlflow_ui_without_flags_shows_the_runs_of_the_launch_directory(ui_server):
    # `mlflow ui` in the launch directory finds mlflow.db and serves its runs' artifacts, no flags needed.
    url, launch, run_id = ui_server
    found = api(url, "runs/get", run_id=run_id)["run"]
    assert found["info"]["status"] == "FINISHED"
    config = requests.get(
        f"{url}/get-artifact", params={"path": "config.yaml", "run_uuid": run_id}, timeout=10
    )
    assert config.ok and config.text == (launch / "outputs/local/config.yaml").read_text()


@pytest.mark.slow
def test_a_run_logged_through_a_tracking_server_reads_back_over_rest(ui_server, served_run, tmp_path):
    # tracking.uri=http://...: params, per-epoch history and checkpoint all readable through the server's REST API.
    url, launch, _ = ui_server
    found = api(url, "runs/get", run_id=served_run)["run"]
    assert found["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in found["data"]["params"]}
    assert params["optimizer.lr"] == "0.002" and "lr_effective" in params and "git_commit" in params
    history = api(url, "metrics/get-history", run_id=served_run, metric_key="val/acc")["metrics"]
    assert [m["step"] for m in history] == [1, 2, 3]

    experiment_id, artifact_uri = found["info"]["experiment_id"], found["info"]["artifact_uri"]
    assert (
        artifact_uri == f"mlflow-artifacts:/{experiment_id}/{served_run}/artifacts"
    )  # proxied by the server
    best = requests.get(
        f"{url}/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{served_run}/artifacts/checkpoints/best.pt",
        timeout=30,
    )
    assert best.ok
    (tmp_path / "best.pt").write_bytes(best.content)
    state = torch.load(tmp_path / "best.pt", weights_only=True)
    best_acc = {m["key"]: m["value"] for m in found["data"]["metrics"]}["best/val/acc"]
    assert state["loop"]["history"][state["loop"]["best_epoch"] - 1]["val/acc"] == best_acc
    assert (launch / "mlartifacts" / experiment_id / served_run / "artifacts/checkpoints/best.pt").is_file()


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs /usr/bin/chromium (apt-get install -y chromium) for a headless look at the MLflow UI",
)
def test_mlflow_ui_run_page_shows_the_run_in_a_browser(ui_server, served_run, tmp_path):
    # Headless Chromium renders the run page: name, status, params (lr_effective) and metrics are on it.
    url, _, _ = ui_server
    found = api(url, "runs/get", run_id=served_run)["run"]
    page = f"{url}/#/experiments/{found['info']['experiment_id']}/runs/{served_run}?workflowType=machine_learning"
    screenshot = tmp_path / "run_page.png"
    dom = screenshot_and_dom(page, screenshot, "1400,2200", 15000, timeout=120)
    for text in (
        found["info"]["run_name"],
        "Finished",
        "lr_effective",
        "optimizer.lr",
        "val/acc",
        "test/acc",
        "best_epoch",
    ):
        assert text in dom, text
    assert screenshot.read_bytes().startswith(b"\x89PNG")


# the sweep's parent row in the runs table, and the button that unfolds its trials' runs
PARENT_CELL = "[...document.querySelectorAll('[role=gridcell]')].find(c => c.querySelector('a')?.textContent.startsWith('sweep-'))"
# whether the first word ("pruned@N") of a run name that starts with PREFIX is in view in its cell (not cut by the ellipsis)
MARKER_IN_VIEW = """(() => {
  const link = [...document.querySelectorAll('[role=gridcell] a')].find(a => a.textContent.startsWith(PREFIX));
  if (!link) return null;
  const walker = document.createTreeWalker(link, NodeFilter.SHOW_TEXT); const node = walker.nextNode();
  const range = document.createRange(); range.setStart(node, 0); range.setEnd(node, node.textContent.indexOf(' '));
  return range.getBoundingClientRect().right <= link.closest('[role=gridcell]').getBoundingClientRect().right;
})()"""


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs /usr/bin/chromium (apt-get install -y chromium) for a headless look at the MLflow UI",
)
def test_mlflow_ui_runs_table_tells_a_pruned_trial_from_a_finished_one(ui_server, tmp_path):
    # A pruned trial's run is FINISHED, like a completed one's: in the runs table, its sweep's parent
    # unfolded, the default columns still tell them apart, the pruned one's name showing pruned@<epoch>.
    from browser import browse
    from sweeps import FAST_SEARCH, MlflowView, run_sweep

    url, launch, _ = ui_server
    run_sweep(
        launch,
        *FAST_SEARCH,
        "tracking.experiment=sweep",
        "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=2",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "hydra.sweeper.enqueue_trials=[{optimizer: adam, optimizer.lr: 0.003, data.batch_size: 64, lr_scaling.rule: none},"
        "{optimizer: sgd, optimizer.lr: 0.0001, data.batch_size: 256, lr_scaling.rule: none}]",
    )
    client = MlflowClient(f"sqlite:///{launch / 'mlflow.db'}")
    view = MlflowView.read_client(client)
    complete, pruned = view.child(0), view.child(1)
    assert (complete.data.tags["optuna.state"], pruned.data.tags["optuna.state"]) == ("COMPLETE", "PRUNED")
    assert complete.info.status == pruned.info.status == "FINISHED"
    experiment_id = client.get_experiment_by_name("sweep").experiment_id

    async def look(page):
        await page.wait_for(f"!!{PARENT_CELL}?.querySelector('button')")
        await page.evaluate(f"{PARENT_CELL}.querySelector('button').click()")
        await page.wait_for("document.body.innerText.includes('trial-0')")
        shot = await page.screenshot(tmp_path / "runs_table.png")
        in_view = await page.evaluate(MARKER_IN_VIEW.replace("PREFIX", "'pruned@1 trial-1'"))
        return await page.evaluate("document.body.innerText"), in_view, shot

    text, marker_in_view, shot = browse(
        f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning", tmp_path / "profile", look
    )
    names = [line for line in text.splitlines() if "trial-" in line]
    assert pruned.info.run_name in names and pruned.info.run_name.startswith("pruned@1 trial-1-")
    assert complete.info.run_name in names and complete.info.run_name.startswith("trial-0-")
    assert marker_in_view  # the name column's width shows the marker, not an ellipsis in its place
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_a_trial_run_ended_with_an_outcome_carries_it_in_its_name(store):
    # A pruned trial's run is FINISHED like a completed one's: its name, which the runs table shows
    # by default, says how it ended at its front (once, however often it is ended).
    from sweepkit.mlflow_runs import end_child_run, mark_outcome, open_child_run, open_experiment

    client, experiment_id = open_experiment(store, "sweep", None)
    parent = client.create_run(experiment_id, run_name="sweep-s").info.run_id
    run_id = open_child_run(store, experiment_id, parent, "trial-1", {"optuna.trial_number": "1"}, None)
    client.update_run(run_id, name="trial-1-mlp-digits-sgd")  # as the training run names it at start
    end_child_run(run_id, "FINISHED", {"optuna.state": "PRUNED"}, "pruned@2")
    mark_outcome(client, run_id, {"optuna.state": "PRUNED"}, "pruned@2")
    found = client.get_run(run_id)
    assert found.info.run_name == "pruned@2 trial-1-mlp-digits-sgd" and found.info.status == "FINISHED"
    assert found.data.tags["mlflow.runName"] == found.info.run_name  # the UI reads either
    assert found.data.tags["optuna.state"] == "PRUNED"


def test_a_trial_run_is_logged_in_few_calls_and_holds_every_record(make_cfg, store, tmp_path):
    # A trial's child run, made active by the trial and given to the training run's tracker, gets its
    # name, tags and params in one call, no second read, and ends once, by its maker, with the outcome.
    import mlflow

    from sweepkit.mlflow_runs import MlflowTracker, end_child_run, open_child_run, open_experiment

    client, experiment_id = open_experiment(store, "sweep", None)
    parent = client.create_run(experiment_id, run_name="sweep-s").info.run_id
    run_id = open_child_run(store, experiment_id, parent, "trial-3", {"optuna.trial_number": "3"}, None)
    cfg = make_cfg("tracking=mlflow", f"tracking.uri={store}", "trainer.max_epochs=2")
    tracker = MlflowTracker(store, "sweep", experiment_id=experiment_id, run_id=run_id)
    calls: list[str] = []
    for name in ("log_batch", "get_run", "update_run", "set_tag", "set_terminated"):
        real = getattr(tracker.client, name)
        setattr(
            tracker.client,
            name,
            lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k),
        )
    try:
        outcome = run(cfg, make_tracker=lambda: tracker, run_name="trial-3-mlp-digits-sgd")
        assert calls[0] == "log_batch" and "get_run" not in calls and "update_run" not in calls
        assert "set_terminated" not in calls and client.get_run(run_id).info.status == "RUNNING"
    finally:
        end_child_run(run_id, "FINISHED", {"optuna.state": "COMPLETE"})
    assert mlflow.active_run() is None
    found = client.get_run(run_id)
    assert found.info.status == "FINISHED" and found.info.run_name == "trial-3-mlp-digits-sgd"
    tags = found.data.tags
    assert tags["mlflow.parentRunId"] == parent and tags["optuna.state"] == "COMPLETE"
    assert tags["model"] == "mlp" and tags["stop_reason"] and tags["mlflow.runName"] == found.info.run_name
    assert found.data.params["optimizer.lr"] and found.data.params["lr_effective"]
    assert found.data.metrics["best/val/acc"] == outcome["best/val/acc"]
    assert [m.step for m in client.get_metric_history(run_id, "val/loss")] == [1, 2]
    logged = {a.path for a in client.list_artifacts(run_id)} | {
        a.path for d in ("checkpoints", "plots") for a in client.list_artifacts(run_id, d)
    }
    assert set(ARTIFACTS) <= logged


def test_a_given_run_that_is_not_the_active_one_is_read_and_set_running(store):
    # A run made earlier (a stopped attempt of a trial) continues: RUNNING, renamed, its logged params
    # kept as they were and the new ones added; the tracker leaves ending it to the run's maker.
    from mlflow.entities import Param

    from sweepkit.mlflow_runs import MlflowTracker, open_experiment

    client, experiment_id = open_experiment(store, "sweep", None)
    run_id = client.create_run(experiment_id, run_name="trial-2").info.run_id
    client.log_batch(run_id, params=[Param("seed", "1")])
    client.set_terminated(run_id, "KILLED")
    tracker = MlflowTracker(store, "sweep", experiment_id=experiment_id, run_id=run_id)
    tracker.start("trial-2-mlp-digits-sgd", {"seed": 5, "optimizer.lr": 0.1}, {"model": "mlp"})
    tracker.end("FINISHED")
    found = client.get_run(run_id)
    assert found.info.status == "RUNNING" and found.info.run_name == "trial-2-mlp-digits-sgd"
    assert found.data.params == {"seed": "1", "optimizer.lr": "0.1"} and found.data.tags["model"] == "mlp"


def test_logged_checkpoint_is_a_copy_that_no_later_write_to_the_run_folder_changes(make_cfg, store, tmp_path):
    # The MLflow artifact is a file of its own (a copy, or a reflink where the file system clones):
    # writing over the run folder's last.pt in place, as `cp other.pt last.pt` does, leaves it as logged.
    cfg = make_cfg("tracking=mlflow", f"tracking.uri={store}")
    run_id = run(cfg)["mlflow_run_id"]
    local = Path(cfg.output_dir) / "checkpoints" / "last.pt"
    logged_uri = MlflowClient(store).get_run(run_id).info.artifact_uri
    logged = Path(logged_uri.removeprefix("file://")) / "checkpoints" / "last.pt"
    assert logged.stat().st_ino != local.stat().st_ino
    logged_bytes = logged.read_bytes()
    with open(local, "r+b") as handle:  # in place: same inode
        handle.write(b"overwritten")
    assert logged.read_bytes() == logged_bytes
