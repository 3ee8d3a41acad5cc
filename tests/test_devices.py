"""Device and precision policy; bf16 and fp16-with-GradScaler steps run on the CPU; the decisions
of the GPU path (where trials run, how many at once, what an out-of-memory error says) from given counts."""

import logging
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from sweepkit import devices
from sweepkit.devices import (
    Precision,
    configure_backends,
    hidden_gpus_note,
    out_of_memory_note,
    parallel_trials,
    resolve_device,
    resolve_precision,
    trial_gpus,
)
from sweepkit.errors import ConfigError
from sweepkit.loop import train_step

requires_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")


def test_auto_picks_cpu_without_cuda():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@requires_no_gpu
def test_cuda_without_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="trainer.device=cuda needs a CUDA GPU"):
        resolve_device("cuda")


def test_unknown_device_lists_the_choices():
    with pytest.raises(ConfigError, match="trainer.device=tpu is not one of: auto, cpu, cuda, cuda:N"):
        resolve_device("tpu")


def test_unknown_precision_lists_the_choices():
    with pytest.raises(ConfigError, match="trainer.precision=fp8 is not one of: 32, bf16, 16"):
        resolve_precision("fp8", torch.device("cpu"))


def test_fp16_training_needs_cuda():
    with pytest.raises(ConfigError, match="trainer.precision=16 needs CUDA"):
        resolve_precision("16", torch.device("cpu"))


def test_integer_precision_from_yaml_is_accepted():
    # `trainer.precision=32` on the command line arrives as an int.
    assert resolve_precision(32, torch.device("cpu")).autocast_dtype is None


def _tiny_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    return model, x, y


def test_bf16_step_runs_under_autocast_on_cpu():
    # bf16 autocast casts the matmuls; the loss is computed in fp32 and the weights stay fp32.
    model, x, y = _tiny_problem()
    precision = resolve_precision("bf16", torch.device("cpu"))
    with precision.autocast():
        assert model(x).dtype == torch.bfloat16
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = precision.grad_scaler()
    assert not scaler.is_enabled()  # bf16 has fp32's range: no scaling
    losses = [
        train_step(model, x, y, nn.CrossEntropyLoss(), optimizer, scaler, precision).item() for _ in range(20)
    ]
    assert losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_fp16_step_with_grad_scaler_runs_on_cpu():
    # The CUDA fp16 path (autocast fp16 + GradScaler) exercised on the CPU, where torch allows it.
    model, x, y = _tiny_problem()
    precision = Precision(name="16", device_type="cpu")
    scaler = precision.grad_scaler()
    assert scaler.is_enabled()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = [
        train_step(
            model, x, y, nn.CrossEntropyLoss(), optimizer, scaler, precision, grad_clip_norm=1.0
        ).item()
        for _ in range(20)
    ]
    assert losses[-1] < losses[0]
    assert scaler.get_scale() > 0


@pytest.mark.gpu
def test_fp16_on_cuda_scales_gradients():
    model, x, y = _tiny_problem()
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    precision = resolve_precision("16", torch.device("cuda"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = precision.grad_scaler()
    losses = [
        train_step(model, x, y, nn.CrossEntropyLoss(), optimizer, scaler, precision).item() for _ in range(20)
    ]
    assert losses[-1] < losses[0]


# -- trainer.device=auto on a machine whose GPUs this process cannot see ------------------------------


def test_auto_says_in_one_line_why_it_trains_on_the_cpu_of_a_gpu_machine(monkeypatch, caplog):
    # submitit_local without gpus_per_node runs jobs with CUDA_VISIBLE_DEVICES='': auto warns, naming it.
    if torch.cuda.is_available():
        pytest.skip("this machine's GPUs are visible")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(devices, "physical_gpu_count", lambda: 2)  # the driver's count on a GPU machine
    with caplog.at_level(logging.WARNING, logger="sweepkit"):
        assert resolve_device("auto").type == "cpu"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "CUDA_VISIBLE_DEVICES=''" in warnings[0] and "hydra/launcher=submitit_local_gpus" in warnings[0]


def test_auto_on_a_machine_without_gpus_says_nothing():
    assert hidden_gpus_note(None, 0, True) is None and hidden_gpus_note("", 0, True) is None


def test_hidden_gpus_note_names_the_cause():
    # A CPU-only torch build, a hiding CUDA_VISIBLE_DEVICES, or a driver torch cannot use.
    assert "CPU-only build" in hidden_gpus_note(None, 4, cuda_built=False)
    assert "CUDA_VISIBLE_DEVICES='-1' hides them" in hidden_gpus_note("-1", 4, cuda_built=True)
    assert "nvidia-smi" in hidden_gpus_note(None, 4, cuda_built=True)


# -- how many trials at once, on how many GPUs ---------------------------------------------------------

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


@pytest.mark.parametrize(
    ("launcher", "gpus_per_node", "device", "visible", "expected"),
    [
        (JOBLIB, None, "auto", 4, 4),  # joblib workers see every GPU and claim one each
        (JOBLIB, None, "cuda", 4, 4),
        (JOBLIB, None, "cuda:1", 4, 1),  # every trial pinned to one GPU
        (JOBLIB, None, "cpu", 4, 0),  # CPU trials: no GPU to share
        (JOBLIB, None, "auto", 0, 0),
        (LOCAL, None, "auto", 4, 0),  # plain submitit_local hides the GPUs from its jobs
        (LOCAL, 4, "auto", 4, 4),  # submitit_local_gpus shows them all
        (SLURM, 1, "auto", 4, 0),  # Slurm gives each job its own GPU elsewhere
    ],
)
def test_trials_share_the_gpus_their_launcher_shows_them(launcher, gpus_per_node, device, visible, expected):
    assert trial_gpus(launcher, gpus_per_node, device, visible) == expected


def test_parallel_trials_are_capped_at_one_per_gpu_by_default():
    # n_jobs=8 on 2 GPUs: 2 at once, and a note that says how to share GPUs instead.
    n, note = parallel_trials(8, gpus=2, trials_per_gpu=1)
    assert n == 2 and "hydra.sweeper.n_jobs=8 capped at 2" in note and "trials_per_gpu" in note


@pytest.mark.parametrize(
    ("n_jobs", "gpus", "per_gpu", "expected"),
    [(8, 2, 4, 8), (8, 2, 3, 6), (8, 2, None, 8), (8, 0, 1, 8), (2, 4, 1, 2)],
)
def test_more_trials_per_gpu_when_asked_and_no_cap_without_gpus(n_jobs, gpus, per_gpu, expected):
    assert parallel_trials(n_jobs, gpus, per_gpu)[0] == expected


# -- CUDA settings and out-of-memory messages ----------------------------------------------------------


@pytest.fixture
def restore_determinism():
    before = torch.are_deterministic_algorithms_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    yield
    torch.use_deterministic_algorithms(before[0])
    if before[1] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def test_deterministic_switches_on_deterministic_kernels_and_cublas_workspace(
    restore_determinism, monkeypatch
):
    # trainer.deterministic=true: deterministic algorithms everywhere, cuBLAS's workspace setting in place.
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    configure_backends(torch.device("cpu"), deterministic=True)
    assert (
        torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    )
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    configure_backends(torch.device("cpu"), deterministic=False)  # the next run in a reused worker
    assert not torch.are_deterministic_algorithms_enabled()


def test_a_run_without_deterministic_leaves_torchs_setting_alone_and_inductor_unimported():
    # torch.use_deterministic_algorithms imports torch._inductor's config (a second per process):
    # a run that asks for what is already so does not call it.
    code = (
        "import sys, torch; from sweepkit.devices import configure_backends; "
        "configure_backends(torch.device('cpu'), deterministic=False); "
        "print('torch._inductor.config' in sys.modules, torch.are_deterministic_algorithms_enabled())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_cpu_runs_keep_full_fp32_matmul_precision(restore_determinism):
    # TF32 is for CUDA: on a CPU "high" would let oneDNN change the numbers.
    configure_backends(torch.device("cpu"), deterministic=False)
    assert torch.backends.cuda.matmul.fp32_precision != "tf32"


def test_out_of_memory_note_says_where_and_what_to_lower():
    note = out_of_memory_note(torch.device("cpu"), "the training step", "data.batch_size", 512, "32")
    assert (
        note
        == "cpu ran out of memory in the training step at data.batch_size=512: lower data.batch_size or use trainer.precision=bf16"
    )
    in_eval = out_of_memory_note(torch.device("cpu"), "evaluation", "data.eval_batch_size", 4096, "bf16")
    assert in_eval.endswith("at data.eval_batch_size=4096: lower data.eval_batch_size")


@pytest.mark.gpu
def test_bf16_is_checked_natively_on_the_configured_gpu():
    # The configured device, not the current one, and emulation does not count (a V100 or T4 says no).
    for index in range(torch.cuda.device_count()):
        device = torch.device("cuda", index)
        native = torch.cuda.get_device_capability(device) >= (8, 0)
        if native:
            assert resolve_precision("bf16", device).name == "bf16"
        else:
            with pytest.raises(ConfigError, match="is emulated, not native"):
                resolve_precision("bf16", device)
