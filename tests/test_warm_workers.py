"""Warm workers (hydra_plugins.sweepkit_sweeper._warm_workers): joblib's loky workers forked from one
preloaded server, in a process of their own (loky's start method is chosen once per process)."""

import json
import subprocess
import sys

WORKERS = """
import gc, json, os, signal, sys
from joblib import Parallel, delayed
from hydra_plugins.sweepkit_sweeper import _warm_workers

def job(_):
    import torch
    return {
        "pid": os.getpid(),
        "parent": os.getppid(),
        "preloaded": "torch._dynamo" in sys.modules,  # imported before this job asked for anything
        "frozen": gc.get_freeze_count() > 0,  # the server froze what it imported (shared pages, quick end)
        "threads": torch.get_num_threads(),
        "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    }

if __name__ == "__main__":
    started = _warm_workers.start(["torch._dynamo"], n_jobs=2)
    again = _warm_workers.start(["json"], n_jobs=2)  # chosen once: a second call changes nothing
    seen = Parallel(n_jobs=2)(delayed(job)(i) for i in range(4))
    print(json.dumps({"started": started, "again": again, "sweep": os.getpid(), "jobs": seen}))
"""


def test_workers_are_forks_of_one_preloaded_server_with_a_core_share_of_threads_and_stop_signals_blocked(
    tmp_path,
):
    # What makes a worker cheap and safe: it is a fork of a server (not a fresh interpreter), finds the
    # trials' imports done, runs a core's share of torch threads (one each for two workers on two or
    # fewer cores), and takes stop signals only through the sweep (blocked until a trial unblocks them).
    script = tmp_path / "workers.py"
    script.write_text(WORKERS)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["started"] and not result["again"]
    jobs = result["jobs"]
    servers = {job["parent"] for job in jobs}
    assert len(servers) == 1 and result["sweep"] not in servers, (servers, result["sweep"])
    assert all(job["preloaded"] and job["frozen"] for job in jobs)
    import os

    share = max(len(os.sched_getaffinity(0)) // 2, 1)
    assert {job["threads"] for job in jobs} == {share}
    import signal

    assert all({int(signal.SIGTERM), int(signal.SIGINT)} <= set(job["blocked"]) for job in jobs)
