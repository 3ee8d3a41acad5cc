"""Warm workers: joblib's loky workers forked from one server that imported the trials' code once.

A loky worker started the usual way is a fresh interpreter: it imports torch, Hydra and the app, and on
its first trial what training imports lazily (``torch._dynamo``, which torch's optimizers import when the
first is built; MLflow for a tracked trial): 5-8 s of CPU for each worker, all paid at once at the
sweep's start, on the cores the trials are to use. Under Python's ``forkserver`` start method one server
process imports all that once, in the background while the sweep process sets up the study, and each
worker is a fork of it: ready in milliseconds, its imports (and their memory) shared.

The server starts with the stop signals blocked (``sweepkit.preemption``): its forks inherit the mask, as
workers started from the sweep's launch threads do, and a trial unblocks the signals while it runs. It
also gets the thread limits that joblib gives loky workers (a worker's share of the cores for OpenMP,
BLAS and so torch), since loky hands its environment only to workers of its own start method.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence

from joblib._parallel_backends import LokyBackend
from joblib.externals.loky.backend import context as loky_context

from sweepkit.preemption import stop_signals_blocked

log = logging.getLogger("sweepkit")
FORKSERVER = "forkserver"
FREEZE = "hydra_plugins.sweepkit_sweeper._frozen"  # imported last: freezes what the server imported


def start(preload: Sequence[str], n_jobs: int) -> bool:
    """Make this process's loky workers forks of a server that imports ``preload`` (module names, after the
    main module), and start that server now. False, changing nothing, where the platform has no
    forkserver or loky's start method was chosen already (that choice stands)."""
    if FORKSERVER not in multiprocessing.get_all_start_methods() or loky_context.get_start_method():
        return False
    from multiprocessing import forkserver, resource_tracker

    loky_context.set_start_method(FORKSERVER)
    forkserver.set_forkserver_preload(["__main__", *preload, FREEZE])
    # The server starts the stdlib's resource tracker first, if none runs yet, and unblocks SIGINT and
    # SIGTERM in this thread after that (it blocks them only while starting the tracker): started here
    # first, the tracker is found running there, and the mask below holds when the server starts.
    resource_tracker.ensure_running()
    with _environment(LokyBackend()._prepare_worker_env(n_jobs)), stop_signals_blocked():
        forkserver.ensure_running()  # returns at once: the server imports while the sweep goes on
    log.debug("warm workers: a forkserver preloading %s", ", ".join(preload))
    return True


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` for the block (a process started in it inherits them), then as before."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
