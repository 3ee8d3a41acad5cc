"""Preemption: when the scheduler warns a job (SIGUSR1/SIGUSR2/SIGTERM), stop training at once.

Checkpoints are written at every epoch end, so stopping loses at most the current epoch; the
requeued (or re-run) job resumes from ``last.pt``. A handler already installed for the signal
(submitit's checkpoint-and-requeue) still runs, after ours.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

PREEMPTION_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


class Preempted(KeyboardInterrupt):
    """The job was told to stop by its scheduler. A KeyboardInterrupt, so that nothing on the way
    (Hydra's job runner, the tracker) mistakes it for a failure of the run itself."""


@contextlib.contextmanager
def on_preemption(mark: Callable[[int], None]) -> Iterator[None]:
    """Within this block, a preemption signal calls ``mark(signum)``, then the previous handler,
    then raises :class:`Preempted`."""
    previous = {sig: signal.getsignal(sig) for sig in PREEMPTION_SIGNALS}

    def handle(signum: int, frame) -> None:
        mark(signum)
        chained = previous.get(signum)
        if callable(chained) and chained not in (signal.default_int_handler,):
            chained(signum, frame)  # submitit requeues here and exits
        raise Preempted(f"signal {signal.Signals(signum).name}")

    for sig in PREEMPTION_SIGNALS:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
