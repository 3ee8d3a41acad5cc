"""Choosing the training device and the mixed-precision policy that goes with it; the CUDA settings
a run trains under; what a run says when the device runs out of memory."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from sweepkit import device_claims
from sweepkit.errors import ConfigError, RunFailed, one_of

log = logging.getLogger("sweepkit")
PRECISIONS = ("32", "bf16", "16")
SHARED_DEVICES = ("auto", "cuda")  # claimed per run among the visible GPUs; cuda:N pins one
CUBLAS_DETERMINISTIC = ":4096:8"  # the workspace setting cuBLAS needs for reproducible matmuls
_claim: device_claims.Claim | None = None  # this process's GPU claim (one run at a time)
_last_index: int | None = None  # the GPU this process trained on last: a reused worker goes back to it


class DeviceOutOfMemory(RunFailed):
    """The device ran out of memory; ``str(err)`` is the one line with the advice (exit status 1)."""


def resolve_device(name: str, claim: bool = True) -> torch.device:
    """``trainer.device`` as a torch device.

    ``auto`` takes a GPU when torch sees one (and says in one line why not, when the machine has
    GPUs that torch cannot see); ``cuda`` without a GPU is an error, not a silent CPU run. On a
    machine with several GPUs, ``auto`` and ``cuda`` claim one for this run (see
    :mod:`sweepkit.device_claims`), so parallel trials spread over the GPUs; ``cuda:N`` pins one.
    ``claim=False`` only checks the setting (a sweep's check of its first trial's config), taking
    the first GPU and no claim.
    """
    if name == "auto" and not torch.cuda.is_available():
        note = hidden_gpus_note(
            os.environ.get("CUDA_VISIBLE_DEVICES"), physical_gpu_count(), torch.backends.cuda.is_built()
        )
        if note and claim:  # said once, by the run itself
            log.warning(note)
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name in SHARED_DEVICES or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError("trainer.device", name, "needs a CUDA GPU and torch sees none; use auto or cpu")
        if name in SHARED_DEVICES:
            return claim_gpu() if claim else torch.device("cuda", 0)
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                "trainer.device", name, f"is not one of the {torch.cuda.device_count()} visible GPUs"
            )
        _drop_claim()  # a pinned run holds no claim (and keeps none from this process's last run)
        return device
    raise one_of("trainer.device", name, ["auto", "cpu", "cuda", "cuda:N"])


def claim_gpu() -> torch.device:
    """The visible GPU with the fewest sweepkit runs on it (this process's last one on a tie)."""
    global _claim, _last_index
    count = torch.cuda.device_count()
    _drop_claim()
    if count == 1:  # one visible GPU (a Slurm job's, or the machine's only one): nothing to choose
        _last_index = 0
        return torch.device("cuda", 0)
    _claim = device_claims.claim(
        [gpu_key(i) for i in range(count)], device_claims.lock_dir(), prefer=_last_index
    )
    if _last_index is not None and _last_index != _claim.index:
        free_memory()  # the cache held on the previous GPU is no use on this one
    _last_index = _claim.index
    shared = f", shared with {_claim.share} other sweepkit run(s)" if _claim.share else ""
    log.info("device cuda:%d of %d visible GPUs (the first free one%s)", _claim.index, count, shared)
    return torch.device("cuda", _claim.index)


def gpu_key(index: int) -> str:
    """A name for visible GPU ``index`` that every process agrees on, whatever it can see."""
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        return f"gpu-{uuid}"
    return f"pci-{getattr(props, 'pci_domain_id', 0):04x}-{getattr(props, 'pci_bus_id', index):02x}-{getattr(props, 'pci_device_id', 0):02x}"


def release_device() -> None:
    """End of a run in a process that lives on (a joblib worker, the sweep process): its cached GPU
    memory goes back to the driver and its GPU claim to the next run."""
    free_memory()
    _drop_claim()


def _drop_claim() -> None:
    global _claim
    if _claim is not None:
        _claim.release()
        _claim = None


def free_memory() -> None:
    """Collect unreachable tensors, then return the CUDA cache's unused blocks to the driver (a
    process that never used CUDA pays nothing: no collection)."""
    if torch.cuda.is_initialized():
        gc.collect()
        torch.cuda.empty_cache()


def visible_gpu_count() -> int:
    """GPUs torch sees in this process (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def physical_gpu_count() -> int:
    """NVIDIA GPUs the driver shows on this machine, visible to this process or not."""
    driver = Path("/proc/driver/nvidia/gpus")
    if driver.is_dir():
        return sum(1 for _ in driver.iterdir())
    dev = Path("/dev")
    return sum(1 for p in dev.glob("nvidia*") if re.fullmatch(r"nvidia\d+", p.name)) if dev.is_dir() else 0


def hidden_gpus_note(visible: str | None, physical: int, cuda_built: bool) -> str | None:
    """Why ``trainer.device=auto`` trains on the CPU of a machine that has GPUs (None: it has none)."""
    if physical == 0:
        return None
    start = f"trainer.device=auto trains on the CPU, but this machine has {physical} GPU(s): "
    if not cuda_built:
        return start + f"torch {torch.__version__} is a CPU-only build; install a CUDA build of torch"
    if visible is not None:
        return start + (
            f"CUDA_VISIBLE_DEVICES={visible!r} hides them (hydra/launcher=submitit_local gives its jobs none "
            "unless gpus_per_node is set: use hydra/launcher=submitit_local_gpus)"
        )
    return start + "torch cannot use them (does the driver support torch's CUDA version? `nvidia-smi` tells)"


def trial_gpus(launcher_target: str, gpus_per_node: int | None, device: str, visible: int) -> int:
    """How many of this machine's GPUs a sweep's parallel trials share (0: they train elsewhere, or
    on CPUs). Slurm jobs get their GPUs from the scheduler; submitit_local jobs see ``gpus_per_node``."""
    if visible == 0 or "Slurm" in launcher_target or device == "cpu":
        return 0
    if "submitit" in launcher_target:
        visible = min(visible, gpus_per_node or 0)
    return min(visible, 1) if device.startswith("cuda:") else visible


def parallel_trials(n_jobs: int, gpus: int, trials_per_gpu: int | None) -> tuple[int, str | None]:
    """``hydra.sweeper.n_jobs`` capped at ``trials_per_gpu`` trials per GPU; the note says so."""
    if gpus == 0 or trials_per_gpu is None or n_jobs <= gpus * trials_per_gpu:
        return n_jobs, None
    cap = gpus * trials_per_gpu
    return cap, (
        f"hydra.sweeper.n_jobs={n_jobs} capped at {cap}: {gpus} GPU(s) x hydra.sweeper.trials_per_gpu={trials_per_gpu} "
        "(raise trials_per_gpu to run more trials on each GPU)"
    )


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """Speed by default on CUDA: TF32 matmuls (tensor cores; convolutions use TF32 already) and cuDNN
    autotuning; ``trainer.deterministic`` trades the autotuner for bit-identical runs instead."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)  # read when cuBLAS starts
    # warn_only: an op with no deterministic kernel (AdaptiveAvgPool2d's CUDA backward) warns, naming
    # itself, instead of ending the run. Called only to change the setting: the call imports
    # torch._inductor's config, a second of start-up in every process, for what is already so.
    already = torch.are_deterministic_algorithms_enabled() == deterministic and (
        not deterministic or torch.is_deterministic_algorithms_warn_only_enabled()
    )
    if not already:
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # on CUDA only: on a CPU it would change oneDNN's numbers
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic


def out_of_memory_note(device: torch.device, where: str, key: str, batch_size: int, precision: str) -> str:
    """The one line for an out-of-memory error: where it happened, how full the device was, what to change."""
    usage = ""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        usage = f" ({torch.cuda.max_memory_allocated(device) / 2**30:.1f} of {total / 2**30:.1f} GiB allocated at the peak)"
    advice = f"lower {key}" + (
        " or use trainer.precision=bf16" if key == "data.batch_size" and precision == "32" else ""
    )
    return f"{device} ran out of memory{usage} in {where} at {key}={batch_size}: {advice}"


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
        raise ConfigError(
            "trainer.precision", name, f"needs CUDA (device is {device}); use bf16 or 32 on a CPU"
        )
    if name == "bf16" and device.type == "cuda" and not bf16_native(device):
        major, minor = torch.cuda.get_device_capability(device)
        raise ConfigError(
            "trainer.precision",
            name,
            f"is emulated, not native, on {torch.cuda.get_device_name(device)} (compute capability {major}.{minor}; "
            "bf16 needs 8.0, Ampere or newer); use 16 or 32",
        )
    return Precision(name=name, device_type=device.type)


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` itself (not the current device) computes in bf16 without emulation."""
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def use_channels_last(enabled: bool, device: torch.device, precision: Precision, input_dims: int) -> bool:
    """Whether a model on image inputs should run channels-last (NHWC).

    Tensor cores on CUDA and oneDNN's bf16 convolutions on a CPU both want NHWC: on this project's
    CPU benchmark a LeNet-style CNN in bf16 runs about 1.7x faster channels-last than NCHW, while
    fp32 on a CPU gains nothing, so it stays NCHW there.
    """
    on_fast_path = device.type == "cuda" or precision.name == "bf16"
    return enabled and input_dims == 3 and on_fast_path
