"""Preemption: when the scheduler warns a job (SIGUSR1/SIGUSR2/SIGTERM), stop at the next safe point.

The handler only raises a flag; the training loop polls it between batches and after each epoch's
bookkeeping, and stops there (StopRequested). Checkpoints are written at every epoch end, so the
requeued (or re-run) job resumes from ``last.pt`` having lost at most the current epoch, and no
epoch is logged or reported twice. A handler already installed for the signal (submitit's
checkpoint-and-requeue) runs after the loop has stopped.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

from sweepkit.loop import StopRequested

PREEMPTION_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


class PreemptionFlag:
    """Callable as the loop's ``stop_requested``: true once a preemption signal arrived."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def on_preemption(mark: Callable[[int], None]) -> Iterator[PreemptionFlag]:
    """Within this block a preemption signal calls ``mark(signum)`` and raises the flag; when the
    loop has stopped on it, the signal's previous handler (if any) runs."""
    previous = {sig: signal.getsignal(sig) for sig in PREEMPTION_SIGNALS}
    flag = PreemptionFlag()

    def handle(signum: int, frame) -> None:
        if flag.signum is None:
            flag.signum = signum
            mark(signum)

    for sig in PREEMPTION_SIGNALS:
        signal.signal(sig, handle)
    try:
        yield flag
    except StopRequested:
        chained = previous.get(flag.signum) if flag.signum is not None else None
        _restore(previous)
        if callable(chained) and chained is not signal.default_int_handler:
            chained(flag.signum, None)  # submitit: checkpoint, requeue, exit
        raise
    finally:
        _restore(previous)


def _restore(handlers: dict) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
