"""The GPU smoke suite (``pytest -m gpu``): the CUDA path end to end, on the machine's GPUs.

Skipped where torch sees no GPU. What runs here: run() in 32, bf16 and 16 with an exact resume, the
DataLoader path, crop_flip in channels-last, no host sync in a training step in any precision, the
speed settings, a real out-of-memory error, the peak-memory metric, the range test's memory handed
back, and on two or more GPUs: two parallel trials on two GPUs and a resume under fewer visible GPUs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIG_DIR
from hydra import compose, initialize_config_dir
from sweeps import FAST_SEARCH, TRAIN, MlflowView, finished, only_study, run_sweep, sweep_env

from sweepkit import checkpoint
from sweepkit.augment import crop_flip
from sweepkit.batching import DeviceBatches
from sweepkit.datasets import TensorSplit
from sweepkit.devices import Precision, release_device
from sweepkit.loop import EpochData, Objective, Optimization, StopRequested, TrainingLoop
from sweepkit.tasks import GPU_MAX_MEMORY
from sweepkit.train import cli
from sweepkit.training import build, run

pytestmark = pytest.mark.gpu
SWEEP_CONF = Path(__file__).resolve().parent / "sweep_conf"
PRECISIONS = ["32", "bf16", "16"]
needs_two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
CUDA = "trainer.device=cuda"


class StopAfter:
    """A stop request that arrives once the given epoch has ended (as a preemption warning would)."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.seen = epoch, 0

    def should_prune(self, epoch: int, value: float) -> bool:
        self.seen = epoch
        return False

    def __call__(self) -> bool:
        return self.seen >= self.epoch


def _history(path: Path) -> list[dict]:
    drop = ("epoch_time_s", "train/samples_per_s", GPU_MAX_MEMORY)
    return [
        {k: v for k, v in epoch.items() if k not in drop}
        for epoch in checkpoint.load(path)["loop"]["history"]
    ]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_run_on_cuda_resumes_to_the_uninterrupted_result(precision, make_cfg, tmp_path):
    # A CNN with dropout and a warm-up schedule, deterministic: stopped after epoch 2 and resumed, it
    # ends bit-identical to the run that was never stopped, and logs its peak GPU memory each epoch.
    overrides = [
        CUDA,
        f"trainer.precision={precision}",
        "trainer.deterministic=true",
        "model=cnn",
        "model.dropout=0.3",
        "trainer.max_epochs=4",
        "scheduler=cosine",
        "scheduler.warmup_epochs=1",
    ]
    whole = run(make_cfg(*overrides, output_dir=tmp_path / "whole"))
    stop = StopAfter(2)
    with pytest.raises(StopRequested):
        run(make_cfg(*overrides, output_dir=tmp_path / "parts"), reporter=stop, stop_requested=stop)
    resumed = run(make_cfg(*overrides, "trainer.resume=auto", output_dir=tmp_path / "parts"))
    for key in ("val/acc", "test/loss", "test/acc", "best_epoch"):
        assert resumed[key] == whole[key], key
    assert _history(tmp_path / "parts/checkpoints/last.pt") == _history(
        tmp_path / "whole/checkpoints/last.pt"
    )
    peaks = [
        e[GPU_MAX_MEMORY] for e in checkpoint.load(tmp_path / "whole/checkpoints/last.pt")["loop"]["history"]
    ]
    largest = (
        max(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))
        / 2**30
    )
    assert len(peaks) == 4 and all(0 < p < largest for p in peaks)
    assert whole["test/acc"] > 0.5


def test_dataloader_path_trains_on_cuda(make_cfg):
    # data.loader=dataloader: pinned host batches copied without blocking.
    cfg = make_cfg(CUDA, "data.loader=dataloader", "data.num_workers=2", "model=cnn", "trainer.max_epochs=3")
    assert build(cfg, output_dir=None).loop.train_batches.kind == "dataloader"
    assert run(cfg)["test/acc"] > 0.5


def test_crop_flip_batches_stay_channels_last_on_cuda(make_cfg):
    # The gather and the augmentation keep NHWC, and a CNN trains on them.
    images = TensorSplit(torch.randn(256, 3, 32, 32), torch.randint(0, 10, (256,)))
    generator = torch.Generator("cuda").manual_seed(0)
    batches = DeviceBatches(
        images, 64, torch.device("cuda"), generator, augment=crop_flip, channels_last=True
    )
    assert all(x.is_cuda and x.is_contiguous(memory_format=torch.channels_last) for x, _ in batches)
    assert (
        run(make_cfg(CUDA, "model=cnn", "data.augment=crop_flip", "trainer.max_epochs=3"))["test/acc"] > 0.3
    )


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_training_step_never_waits_for_the_device(precision, make_cfg):
    # Under torch's sync debug mode "error" any host-device sync raises: the step (forward, backward,
    # GradScaler, optimizer, clipping, the scheduler and its skip rule), the loss sum on the device,
    # the on-device batch gather and crop_flip all run without one. fp16 needs a fused optimizer
    # (optim.py chooses one on CUDA): an unfused one makes the scaler read found_inf every step.
    cfg = make_cfg(
        CUDA,
        f"trainer.precision={precision}",
        "model=cnn",
        "data.augment=crop_flip",
        "scheduler=cosine",
        "trainer.grad_clip_norm=1.0",
        "data.batch_size=16",
    )
    loop = build(cfg, output_dir=None).loop
    loop.forward_model.train()
    loss_sum = torch.zeros((), device="cuda")
    batches = iter(loop.train_batches)
    x, y = next(batches)  # the epoch's permutation and the first step (lazy CUDA initialisation) outside
    loop.train_batch(x, y, loss_sum)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        steps = 0
        for x, y in batches:
            loop.train_batch(x, y, loss_sum)
            steps += 1
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert steps > 50 and torch.isfinite(loss_sum).item()


def test_cuda_runs_use_tensor_cores_and_cudnn_autotuning_unless_deterministic(make_cfg):
    build(make_cfg(CUDA), output_dir=None)
    assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.benchmark
    build(make_cfg(CUDA, "trainer.deterministic=true"), output_dir=None)
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False


def test_a_real_out_of_memory_error_alone_is_one_line(tmp_path, monkeypatch, capsys):
    # A forward that asks for twice the GPU's memory: one line naming the device, how full it was and
    # what to lower; exit 1, as other failed runs.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "sweepkit-train",
            "trainer=debug",
            "tracking=none",
            CUDA,
            f"hydra.searchpath=[file://{SWEEP_CONF}]",
            "model=memory_hungry",
            "model.oom_from_batch_size=64",
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        cli()
    assert exit_info.value.code == 1
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert (
        len(err_lines) == 1
        and "ran out of memory (" in err_lines[0]
        and "GiB allocated at the peak) in the training step" in err_lines[0]
    )
    assert "at data.batch_size=64: lower data.batch_size or use trainer.precision=bf16" in err_lines[0]


def test_out_of_memory_stops_the_loop_with_the_cache_emptied():
    # A trial in a worker that lives on: after an epoch of training (activations cached) validation
    # runs out of memory; the loop stops with reason oom and hands every cached block back.
    from sweep_helpers import MemoryHungryMLP

    cuda = torch.device("cuda", 0)
    torch.manual_seed(0)
    model = MemoryHungryMLP((256,), 10, hidden=(4096, 4096), oom_from_batch_size=1024, in_eval=True).to(cuda)
    split = TensorSplit(torch.randn(8192, 256), torch.randint(0, 10, (8192,)))
    train = DeviceBatches(split, 512, cuda, torch.Generator("cuda").manual_seed(0))
    loop = TrainingLoop(
        model,
        Optimization(
            torch.optim.SGD(model.parameters(), lr=0.01),
            None,
            Precision("32", "cuda"),
            torch.nn.CrossEntropyLoss(),
        ),
        EpochData(train, DeviceBatches(split, 1024, cuda), "classification"),
        {},
    )
    state = loop.fit(2, Objective("val/acc", "max"))
    assert state.stop_reason == "oom" and "in evaluation at data.eval_batch_size=1024" in state.stop_detail
    reserved = torch.cuda.memory_reserved(cuda)
    torch.cuda.empty_cache()
    assert torch.cuda.memory_reserved(cuda) == reserved, "the loop left cached blocks behind"


def test_the_lr_range_test_hands_its_gpu_memory_back_before_trials_start(tmp_path):
    # The sweeper's range tests run in the sweep process, which lives on: they leave no cache behind.
    from hydra_plugins.sweepkit_sweeper._lr_range import run_range_tests

    def compose_lr_find(overrides):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(
                "lr_find",
                overrides=["trainer=debug", "tracking=none", CUDA, "model=cnn", *overrides],
                return_hydra_config=True,
            )

    release_device()
    before = torch.cuda.memory_reserved()
    settings = {
        "min_lr": 1e-5,
        "max_lr": 1.0,
        "num_steps": 30,
        "suggestion": "valley",
    }  # others: lr_find.yaml's
    centres = run_range_tests(compose_lr_find, ["adam"], [], settings, tmp_path)
    assert centres["adam"] > 0 and torch.cuda.memory_reserved() <= before


@needs_two_gpus
def test_two_parallel_trials_train_on_two_gpus(tmp_path):
    # joblib workers see every GPU; each trial claims a free one, so two trials at once use two GPUs.
    run_sweep(
        tmp_path,
        *FAST_SEARCH,
        "hydra.sweeper.n_trials=2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.pruner=NopPruner",
        "trainer.max_epochs=100",
        "data.batch_size=16",
    )
    assert len(finished(only_study(tmp_path))) == 2
    runs = MlflowView.read(tmp_path).children
    a, b = sorted(runs, key=lambda r: r.info.start_time)
    assert a.info.end_time > b.info.start_time, "the two trials did not overlap: raise trainer.max_epochs"
    assert {a.data.params["device"], b.data.params["device"]} == {"cuda:0", "cuda:1"}


@needs_two_gpus
def test_resume_under_fewer_visible_gpus(make_cfg, tmp_path):
    # A checkpoint written on cuda:1 holds that GPU's CUDA RNG state alone; resumed where one GPU is
    # visible it restores it there (it used to index one state per GPU and raise IndexError).
    run(make_cfg("trainer.device=cuda:1", "trainer.max_epochs=1", output_dir=tmp_path / "run"))
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert isinstance(checkpoint.load(last)["rng"]["cuda"], torch.Tensor)
    env = {**sweep_env(), "CUDA_VISIBLE_DEVICES": "0"}
    done = subprocess.run(
        [
            str(TRAIN),
            "trainer=debug",
            "tracking=none",
            CUDA,
            "trainer.max_epochs=2",
            f"trainer.resume={last}",
            f"hydra.run.dir={tmp_path / 'resumed'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stdout + done.stderr


def test_claimed_device_is_logged(make_cfg, caplog):
    # On a machine with several GPUs the run says which it took and whether it shares it.
    with caplog.at_level(logging.INFO, logger="sweepkit"):
        setup = build(make_cfg(CUDA), output_dir=None)
    release_device()
    assert setup.device.type == "cuda"
    if torch.cuda.device_count() > 1:
        assert any(
            r.getMessage().startswith(f"device {setup.device} of {torch.cuda.device_count()} visible GPUs")
            for r in caplog.records
        )
