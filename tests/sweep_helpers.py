"""Models that misbehave on purpose, for sweep tests: a job that raises, a worker that dies, a batch
that does not fit the device.

Selected as ``model=flaky`` (or ``model=memory_hungry``) through ``hydra.searchpath=[file://tests/sweep_conf]`` (the way a user
adds their own configs), so the product code has no test hooks.
"""

import os

import torch

from sweepkit.models import MLP


def current_trial_number():
    """The sweep trial this job runs (None outside a sweepkit sweep)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().sweeper.get("trial_number") if HydraConfig.initialized() else None


class FlakyMLP(MLP):
    """An MLP that raises, or ends its process, after a number of training steps."""

    def __init__(
        self,
        in_shape,
        num_outputs,
        hidden=(32,),
        fail_after_steps=None,
        die_after_steps=None,
        only_in_trial=None,
    ):
        super().__init__(in_shape, num_outputs, hidden=hidden, dropout=0.0)
        if only_in_trial is not None and only_in_trial != current_trial_number():
            fail_after_steps = die_after_steps = None
        self.fail_after_steps, self.die_after_steps, self.steps = fail_after_steps, die_after_steps, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.steps += 1
            if self.fail_after_steps is not None and self.steps > self.fail_after_steps:
                raise RuntimeError(f"boom after {self.fail_after_steps} steps")
            if self.die_after_steps is not None and self.steps > self.die_after_steps:
                os._exit(17)  # the worker vanishes without a traceback
        return super().forward(x)


class MemoryHungryMLP(MLP):
    """An MLP that runs out of device memory on batches of ``oom_from_batch_size`` samples or more:
    on a GPU by allocating twice the GPU's memory, on a CPU by raising torch's own error, so that
    sweepkit's handling of a real ``torch.OutOfMemoryError`` is exercised on any machine."""

    def __init__(self, in_shape, num_outputs, hidden=(32,), oom_from_batch_size=None, in_eval=False):
        super().__init__(in_shape, num_outputs, hidden=hidden, dropout=0.0)
        self.oom_from_batch_size, self.in_eval = oom_from_batch_size, in_eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.oom_from_batch_size is not None
            and len(x) >= self.oom_from_batch_size
            and (self.training or self.in_eval)
        ):
            if x.is_cuda:
                torch.empty(
                    2 * torch.cuda.get_device_properties(x.device).total_memory,
                    dtype=torch.uint8,
                    device=x.device,
                )
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate a batch of {len(x)} (raised on purpose)"
            )
        return super().forward(x)
