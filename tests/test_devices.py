"""Device and precision policy; bf16 and fp16-with-GradScaler steps run on the CPU."""

import pytest
import torch
from torch import nn

from sweepkit.devices import Precision, resolve_device, resolve_precision
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
    losses = [train_step(model, x, y, nn.CrossEntropyLoss(), optimizer, scaler, precision).item() for _ in range(20)]
    assert losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_fp16_step_with_grad_scaler_runs_on_cpu():
    # The CUDA fp16 path (autocast fp16 + GradScaler) exercised on the CPU, where torch allows it.
    model, x, y = _tiny_problem()
    precision = Precision(name="16", device_type="cpu")
    scaler = precision.grad_scaler()
    assert scaler.is_enabled()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = [train_step(model, x, y, nn.CrossEntropyLoss(), optimizer, scaler, precision, grad_clip_norm=1.0).item() for _ in range(20)]
    assert losses[-1] < losses[0]
    assert scaler.get_scale() > 0


@pytest.mark.gpu
def test_fp16_on_cuda_scales_gradients():
    model, x, y = _tiny_problem()
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    precision = resolve_precision("16", torch.device("cuda"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = precision.grad_scaler()
    losses = [train_step(model, x, y, nn.CrossEntropyLoss(), optimizer, scaler, precision).item() for _ in range(20)]
    assert losses[-1] < losses[0]
