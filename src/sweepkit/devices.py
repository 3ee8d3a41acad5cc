"""Choosing the training device and the mixed-precision policy that goes with it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from sweepkit.errors import ConfigError, one_of

PRECISIONS = ("32", "bf16", "16")


def resolve_device(name: str) -> torch.device:
    """``auto`` takes CUDA when present; ``cuda`` without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError("trainer.device", name, "needs a CUDA GPU and torch sees none; use auto or cpu")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError("trainer.device", name, f"is not one of the {torch.cuda.device_count()} visible GPUs")
        return device
    raise one_of("trainer.device", name, ["auto", "cpu", "cuda", "cuda:N"])


@dataclass(frozen=True)
class Precision:
    """How the forward pass is cast and whether gradients are scaled.

    fp16 has too little range for small gradients, so it needs a GradScaler; bf16 has fp32's range
    and needs none. Autocast is off for fp32.
    """

    name: str
    device_type: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[self.name]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context to run forward passes (and the loss) in."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled only for fp16 (a disabled one passes steps straight through)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "16")


def resolve_precision(name: str | int, device: torch.device) -> Precision:
    """Check ``trainer.precision`` against the device: fp16 training is CUDA-only here."""
    name = str(name)
    if name not in PRECISIONS:
        raise one_of("trainer.precision", name, PRECISIONS)
    if name == "16" and device.type != "cuda":
        raise ConfigError("trainer.precision", name, f"needs CUDA (device is {device}); use bf16 or 32 on a CPU")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("trainer.precision", name, f"is not supported by {torch.cuda.get_device_name(device)}; use 16 or 32")
    return Precision(name=name, device_type=device.type)


def use_channels_last(enabled: bool, device: torch.device, precision: Precision, input_dims: int) -> bool:
    """Whether a model on image inputs should run channels-last (NHWC).

    Tensor cores on CUDA and oneDNN's bf16 convolutions on a CPU both want NHWC: on this project's
    CPU benchmark a LeNet-style CNN in bf16 runs about 1.7x faster channels-last than NCHW, while
    fp32 on a CPU gains nothing, so it stays NCHW there.
    """
    on_fast_path = device.type == "cuda" or precision.name == "bf16"
    return enabled and input_dims == 3 and on_fast_path
