"""Stop signals: a scheduler's preemption warning (SIGUSR1/SIGUSR2), SIGTERM, Ctrl-C (SIGINT).

Handlers only raise flags (a storage write inside a handler could wait forever on a lock the
interrupted code holds); the code that polls the flag stops at its next safe point. A second signal
means "now": it raises :class:`~sweepkit.errors.Stopped` wherever the program is.

- :func:`on_preemption` serves a trial job: the training loop polls the flag between batches and after
  each epoch's bookkeeping, so the job resumes from ``last.pt`` having lost at most the current epoch.
  A handler already installed for the signal runs once the job has stopped: submitit's
  checkpoint-and-requeue, or the sweep's own (the trial ran in the sweep process).
- :class:`SweepStop` serves the sweep process: it asks the sweep's workers to stop too and lets the
  sweep end between trials, its parent run KILLED.
- :func:`relay_through_the_sweep` serves the sweep's launch threads: the worker processes they start
  (joblib's, loky's resource trackers, submitit's local jobs) block the stop signals while they run no
  trial, so a signal sent to the whole process group (Ctrl-C in a terminal, a scheduler's warning)
  reaches them only as the sweep forwards it. An idle joblib worker that died of one would take the whole
  pool down, and the trial running in a sibling worker with it, before that trial is marked preempted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sweepkit.errors import Stopped

log = logging.getLogger("sweepkit")
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)
# A signal repeated this soon is the same request (Ctrl-C reaches a worker directly and again through
# the sweep, which forwards it); later, it means "stop now".
SAME_REQUEST_S = 1.0


@dataclass
class Handover:
    """Whether a scheduler's own handler (not sweepkit's) took the stopped job over to requeue it."""

    requeued: bool = False


def _is_sweepkit_handler(handler: object) -> bool:
    return getattr(handler, "sweepkit_stop", False)


@contextlib.contextmanager
def on_preemption(
    on_signal: Callable[[int], None], on_stopped: Callable[[Handover], None] | None = None
) -> Iterator[Handover]:
    """Within this block the first stop signal calls ``on_signal(signum)`` (which raises the flag the
    code polls, or raises to stop at once). When the block has stopped, ``on_stopped(handover)`` does the
    job's bookkeeping while sweepkit's handler still holds the signals (a repeat of the request, say the
    sweep forwarding what the job already got, would otherwise find the default action and kill the job
    before its trial is marked); then the signal's previous handler runs, if it is a program's own
    (submitit's, the sweep's)."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    received: list[int] = []
    first_at: list[float] = []
    handover = Handover()

    def handle(signum: int, frame: object) -> None:
        if received:
            if time.monotonic() - first_at[0] > SAME_REQUEST_S:
                raise Stopped(signum)
            return
        received.append(signum)
        first_at.append(time.monotonic())
        on_signal(signum)

    def stopped() -> Callable | None:
        """The handler to chain to, once the bookkeeping is done (None: none of a program's own)."""
        chained = previous.get(received[0])
        if not callable(chained) or chained is signal.default_int_handler:
            chained = None
        handover.requeued = chained is not None and not _is_sweepkit_handler(chained)
        if on_stopped is not None:
            on_stopped(handover)
        return chained

    for sig in STOP_SIGNALS:
        signal.signal(sig, handle)
    mask = _unblock()  # in a sweep's worker: a signal that came while it was idle is handled now
    try:
        yield handover
    except BaseException:
        chained = stopped() if received else None
        _hand_back(previous, mask)
        if chained is not None:
            chained(received[0], None)
        raise
    else:
        if received:
            stopped()
    finally:
        _hand_back(previous, mask)


def _restore(handlers: dict) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _unblock() -> set | None:
    """Let the stop signals in (this thread); returns the mask to hand back (None: no signal masks)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _hand_back(handlers: dict, mask: set | None) -> None:
    """The mask first: in a sweep's worker, a repeat of the request arriving now waits (blocked) instead
    of meeting the default action, which would kill the worker and its pool."""
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    _restore(handlers)


def relay_through_the_sweep() -> None:
    """Block the stop signals in this (launch) thread, and so in every process it starts: they reach the
    sweep's workers through the sweep (:meth:`SweepStop.handle` forwards them), and a job unblocks them
    while it runs its trial (:func:`on_preemption`)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Block the stop signals in this thread for the block: a process started in it keeps them blocked (and
    so do its forks: a sweep's forkserver and its workers), as :func:`relay_through_the_sweep`'s do; a
    signal that came meanwhile reaches this thread once the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class SweepStop:
    """The sweep process's stop flag: the first signal asks the sweep to stop between trials and its
    worker processes (joblib's, submitit's local jobs) to stop their trials; a second one stops now."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._first_at = 0.0
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def raise_if_requested(self) -> None:
        if self.signum is not None:
            raise Stopped(self.signum)

    def __enter__(self) -> SweepStop:
        self._previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        _restore(self._previous)
        if self.signum is not None:
            end_workers()

    def handle(self, signum: int, frame: object = None) -> None:
        if self.signum is not None:
            if time.monotonic() - self._first_at > SAME_REQUEST_S:
                raise Stopped(signum)
            return
        self.signum, self._first_at = signum, time.monotonic()
        log.warning(
            "signal %d: the sweep stops once its running trials have stopped (send it again to stop at once)",
            signum,
        )
        _children_signal(signum)

    handle.sweepkit_stop = True  # type: ignore[attr-defined]  (on_preemption tells it from a scheduler's)


def _children_signal(signum: int) -> list:
    """Pass a signal on to this process's children (the trial workers); returns them."""
    import psutil

    children = psutil.Process(os.getpid()).children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.send_signal(signum)
    return children


def end_workers() -> None:
    """After a stopped sweep, no worker of it goes on: a job still running its trial (the sweep was told
    to stop now) gets the request again and stops at once; idle joblib workers block it and end with
    their pool as the sweep exits (loky hands each an end-of-work item and waits for it)."""
    _children_signal(signal.SIGTERM)
