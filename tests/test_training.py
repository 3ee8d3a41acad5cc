"""run(cfg) end to end on the CPU: learning, resume equivalence, and bad input from the shell."""

import logging
import sys
from pathlib import Path

import pytest
import torch

from sweepkit import checkpoint
from sweepkit.errors import ConfigError
from sweepkit.loop import StopRequested
from sweepkit.train import cli
from sweepkit.training import build, run, run_params


class StopAfter:
    """A stop request (as a preemption warning makes) that arrives during the given epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.seen = epoch, 0

    def should_prune(self, epoch: int, value: float) -> bool:  # the reporter sees each epoch end
        self.seen = epoch
        return False

    def __call__(self) -> bool:  # polled as stop_requested
        return self.seen >= self.epoch


def test_default_run_learns_digits_on_cpu(make_cfg):
    # The default model on the bundled digits: the loss falls and the accuracy is far above chance.
    cfg = make_cfg("trainer.max_epochs=5")
    metrics = run(cfg)
    last = checkpoint.load(metrics["checkpoint"].replace("best.pt", "last.pt"))
    losses = [epoch["train/loss"] for epoch in last["loop"]["history"]]
    assert losses[-1] < losses[0] * 0.5
    assert metrics["test/acc"] > 0.8
    assert metrics["lr_effective"] == pytest.approx(cfg.optimizer.lr)  # batch 64 == base 64
    assert metrics["epochs_run"] == 5 and metrics["stop_reason"] == "completed"


def test_resumed_run_ends_with_the_metrics_of_an_uninterrupted_one(make_cfg, tmp_path):
    # Interrupt after epoch 2, resume from last.pt: every later epoch and the test metrics are identical.
    overrides = [
        "trainer.max_epochs=4",
        "optimizer=sgd",
        "scheduler=cosine",
        "scheduler.warmup_epochs=1",
        "model.dropout=0.3",
    ]
    whole = run(make_cfg(*overrides, output_dir=tmp_path / "whole"))

    stop = StopAfter(2)
    with pytest.raises(StopRequested):
        run(make_cfg(*overrides, output_dir=tmp_path / "parts"), reporter=stop, stop_requested=stop)
    assert checkpoint.load(tmp_path / "parts/checkpoints/last.pt")["loop"]["epoch"] == 2
    resumed = run(make_cfg(*overrides, "trainer.resume=auto", output_dir=tmp_path / "parts"))

    for key in ("train/loss", "val/loss", "val/acc", "test/loss", "test/acc", "best/val/acc", "best_epoch"):
        assert resumed[key] == whole[key], key
    whole_history = checkpoint.load(tmp_path / "whole/checkpoints/last.pt")["loop"]["history"]
    resumed_history = checkpoint.load(tmp_path / "parts/checkpoints/last.pt")["loop"]["history"]

    def strip(h):
        return [{k: v for k, v in e.items() if k not in ("epoch_time_s", "train/samples_per_s")} for e in h]

    assert strip(resumed_history) == strip(whole_history)


def test_checkpoint_holds_everything_and_loads_weights_only(make_cfg):
    # best.pt and last.pt: model, optimizer, scheduler, scaler, epoch, metrics, RNG, config YAML.
    metrics = run(make_cfg("scheduler=cosine"))
    state = torch.load(metrics["checkpoint"], weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "loop", "rng", "config_yaml", "provenance"} <= set(
        state
    )
    assert state["loop"]["epoch"] == metrics["best_epoch"]
    assert "optimizer:" in state["config_yaml"] and "lr_scaling:" in state["config_yaml"]
    assert torch.__version__.startswith(state["provenance"]["torch"])
    assert state["provenance"]["git_commit"]


def test_early_stopping_stops_after_patience(make_cfg):
    # A patience of 1 with min_delta 1 can never see an improvement after the first epoch.
    metrics = run(
        make_cfg(
            "trainer.max_epochs=10",
            "trainer.early_stopping.patience=1",
            "trainer.early_stopping.min_delta=1.0",
        )
    )
    assert metrics["stop_reason"] == "early_stopped"
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] == 1


def test_regression_task_optimizes_the_validation_loss(make_cfg):
    # data=sine switches the objective to val/loss (min) and the loss to MSE.
    cfg = make_cfg("data=sine", "trainer.max_epochs=3")
    assert cfg.objective.metric == "val/loss" and cfg.objective.mode == "min"
    metrics = run(cfg)
    assert "test/loss" in metrics and "test/acc" not in metrics


def test_cnn_trains_in_bf16_on_cpu(make_cfg):
    # `sweepkit-train model=cnn trainer.precision=bf16` trains on a CPU.
    metrics = run(make_cfg("model=cnn", "trainer.precision=bf16", "trainer.max_epochs=2"))
    assert metrics["val/acc"] > 0.3


# -- bad input from the shell: one line naming key and value, non-zero exit, nothing written -----

BAD_INPUTS = [
    (["optimizer.lr=0"], "optimizer.lr=0 must be > 0"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1 must be > 0"),
    (["data.batch_size=0"], "data.batch_size=0 must be >= 1"),
    (["data.batch_size=100000"], "data.batch_size=100000 must be between 1 and the"),
    (["trainer.precision=fp8"], "trainer.precision=fp8 is not one of: 32, bf16, 16"),
    (["trainer.precision=16"], "trainer.precision=16 needs CUDA"),
    (["trainer.device=cuda"], "trainer.device=cuda needs a CUDA GPU"),
    (["data=mnist", "data.root=/nonexistent/mnist"], "data.root=/nonexistent/mnist does not exist"),
    (["objective.metric=val/f1"], "objective.metric=val/f1 is never produced by classification"),
    (["data=sine", "objective.metric=val/acc"], "objective.metric=val/acc is never produced by regression"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs=abc must be an integer >= 1"),
    (["trainer.max_epochs=2.5"], "trainer.max_epochs=2.5 must be an integer >= 1"),
    (["data.batch_size=abc"], "data.batch_size=abc must be an integer >= 1"),
    (["optimizer.lr=inf"], "optimizer.lr=inf must be a finite number > 0"),
    (["optimizer.lr=nan"], "optimizer.lr=nan must be a finite number > 0"),
    (["trainer.compile=maybe"], "trainer.compile=maybe must be true or false"),
    (["optimizer.lrr=0.1"], "optimizer.lrr=0.1 is not a key of the config (did you mean optimizer.lr?"),
    (
        ["trainer.max_epocs=3"],
        "trainer.max_epocs=3 is not a key of the config (did you mean trainer.max_epochs?",
    ),
    (["model=tiny"], "model=tiny is not one of: cnn, linear, mlp, torchvision"),
    (["tracking=[mlflow,tensorbord]"], "tracking=tensorbord is not one of: mlflow, none, tensorboard"),
    (["seed=[1,2"], "the override seed=[1,2 does not parse"),
    (["output_dir=/proc/sweepkit-run"], "output_dir=/proc/sweepkit-run is not a writable folder"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_is_one_line_nonzero_exit_and_no_checkpoint(
    overrides, message, tmp_path, monkeypatch, capsys
):
    if "trainer.device=cuda" in overrides and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sweepkit-train", "trainer=debug", *overrides])
    with pytest.raises(SystemExit) as exit_info:
        cli()
    assert exit_info.value.code == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err_lines) == 1 and message in err_lines[0], err_lines
    assert err_lines[0].startswith("sweepkit-train: error: ")
    assert not list(tmp_path.rglob("*.pt")), "a bad input must leave no checkpoint"
    assert not (tmp_path / "mlflow.db").exists(), "a bad input must leave no tracked run"


def test_config_error_is_raised_by_run_for_library_callers(make_cfg):
    with pytest.raises(ConfigError, match="optimizer.lr=-1.0 must be > 0"):
        run(make_cfg("optimizer.lr=-1.0"))


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, "truncated"], ids=["empty", "random", "truncated"])
def test_resuming_from_a_corrupt_checkpoint_is_one_line_and_writes_nothing(
    content, tmp_path, monkeypatch, capsys
):
    # trainer.resume=<bad file>: one line saying it is corrupt or not a checkpoint, exit 2, no run.
    bad = tmp_path / "bad.pt"
    if content == "truncated":
        good = checkpoint.save_atomic(
            {"model": {"w": torch.ones(5000)}, "loop": {"epoch": 1}}, tmp_path / "good.pt"
        )
        content = good.read_bytes()[:2000]
    bad.write_bytes(content)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, "argv", ["sweepkit-train", "trainer=debug", f"trainer.resume={bad}", "hydra.run.dir=again"]
    )
    with pytest.raises(SystemExit) as exit_info:
        cli()
    assert exit_info.value.code == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert (
        len(err_lines) == 1 and f"trainer.resume={bad} is" in err_lines[0] and "checkpoint" in err_lines[0]
    ), err_lines
    assert "weights_only" not in err_lines[0] and "model" not in err_lines[0]
    assert not (tmp_path / "again" / "checkpoints").exists() and not (tmp_path / "mlflow.db").exists()


# -- the GPU path's decisions, exercised on the CPU -------------------------------------------------------

SWEEP_CONF = Path(__file__).resolve().parent / "sweep_conf"


def test_out_of_memory_alone_is_one_line_and_a_failed_run(tmp_path, monkeypatch, capsys):
    # A real torch.OutOfMemoryError from the training step: one line that says what to lower, exit 1
    # (as other run failures), not torch's traceback.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "sweepkit-train",
            "trainer=debug",
            "tracking=none",
            f"hydra.searchpath=[file://{SWEEP_CONF}]",
            "model=memory_hungry",
            "model.oom_from_batch_size=64",
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        cli()
    assert exit_info.value.code == 1
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err_lines == [
        "sweepkit-train: error: cpu ran out of memory in the training step at data.batch_size=64: "
        "lower data.batch_size or use trainer.precision=bf16"
    ]


def test_data_path_is_logged_and_recorded_as_a_param(make_cfg, caplog):
    # data.loader=auto's choice and its reason are one log line and the param data.loader_resolved.
    for loader, kind in (("auto", "device"), ("dataloader", "dataloader")):
        caplog.clear()
        cfg = make_cfg(f"data.loader={loader}")
        with caplog.at_level(logging.INFO, logger="sweepkit"):
            setup = build(cfg, output_dir=None)
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data path")]
        assert len(lines) == 1 and lines[0].startswith(f"data path {kind}: "), lines
        assert run_params(cfg, setup)["data.loader_resolved"] == kind


def test_resume_from_a_gpu_checkpoint_on_a_cpu_loads_the_weights_and_says_what_it_could_not(
    make_cfg, tmp_path, caplog
):
    # last.pt as a CUDA run writes it (a CUDA device generator, a host generator, the device's CUDA
    # state): resumed on a CPU, weights, optimizer and progress continue; the generator is named.
    first = make_cfg("trainer.max_epochs=1", output_dir=tmp_path / "gpu_run")
    run(first)
    path = tmp_path / "gpu_run" / "checkpoints" / "last.pt"
    state = checkpoint.load(path)
    cuda_generator = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state: seed and offset
    state["rng"]["generators"] = {"device": cuda_generator, "host": torch.Generator().get_state()}
    state["rng"]["cuda"], state["device"] = cuda_generator, "cuda:0"
    checkpoint.save_atomic(state, path)
    with caplog.at_level(logging.WARNING, logger="sweepkit"):
        resumed = run(
            make_cfg("trainer.max_epochs=2", f"trainer.resume={path}", output_dir=tmp_path / "cpu_run")
        )
    assert resumed["epochs_run"] == 2
    history = checkpoint.load(tmp_path / "cpu_run" / "checkpoints" / "last.pt")["loop"]["history"]
    assert history[0]["val/acc"] == state["loop"]["history"][0]["val/acc"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "resumed on cpu from a checkpoint written on cuda:0: weights, optimizer, scheduler and progress restored; "
        "the device generator not (drawing again from the seed)"
    ]


def test_deterministic_run_trains_with_deterministic_algorithms(make_cfg):
    # trainer.deterministic=true reaches torch (no cuDNN autotuning on CUDA, deterministic kernels).
    try:
        metrics = run(make_cfg("model=cnn", "trainer.deterministic=true", "trainer.max_epochs=1"))
        assert torch.are_deterministic_algorithms_enabled() and metrics["epochs_run"] == 1
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.slow
def test_compiled_run_trains_as_the_eager_one(make_cfg, tmp_path):
    # trainer.compile=true: torch.compile (inductor, a C++ compiler on a CPU) gives the eager run's losses.
    overrides = [
        "trainer.max_epochs=1",
        "model.hidden=[16]",
        "model.dropout=0.0",
        "trainer.save_checkpoints=false",
    ]  # inductor draws dropout masks its own way
    eager = run(make_cfg(*overrides, output_dir=tmp_path / "eager"))
    compiled = run(make_cfg(*overrides, "trainer.compile=true", output_dir=tmp_path / "compiled"))
    for key in ("train/loss", "val/loss", "test/loss"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-4), key
