"""Stop signals in a trial job (sweepkit.preemption): real signals, in a child process of its own."""

import os
import signal
import subprocess
import sys
import threading
import time

from sweepkit.preemption import relay_through_the_sweep

SAME_REQUEST_DURING_BOOKKEEPING = """
import os, signal, sys
from sweepkit.preemption import on_preemption

asked = []

def on_stopped(handover):
    os.kill(os.getpid(), signal.SIGTERM)  # the sweep forwarding the request the job already got
    with open(sys.argv[1], "w") as out:
        out.write(f"marked requeued={handover.requeued}")

try:
    with on_preemption(asked.append, on_stopped=on_stopped):
        os.kill(os.getpid(), signal.SIGTERM)
        while not asked:
            pass
        raise RuntimeError("stopped at its safe point")
except RuntimeError:
    pass
"""


def test_a_repeat_of_the_stop_request_during_the_bookkeeping_does_not_kill_the_job(tmp_path):
    # The job's bookkeeping (marking its trial preempted) runs under sweepkit's handler: the same
    # request again is ignored, not the default action that would end the job before the mark.
    marked = tmp_path / "marked"
    done = subprocess.run(
        [sys.executable, "-c", SAME_REQUEST_DURING_BOOKKEEPING, str(marked)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert marked.read_text() == "marked requeued=False"


IDLE_WORKER = """
import os, signal, sys, time
from sweepkit.preemption import on_preemption

print("idle", flush=True)
sys.stdin.readline()  # meanwhile: a stop signal sent to the whole group
asked = []
with on_preemption(asked.append):  # a trial: the signal that came while idle is handled now
    deadline = time.monotonic() + 10
    while not asked and time.monotonic() < deadline:
        time.sleep(0.01)
os.kill(os.getpid(), signal.SIGUSR1)  # after the trial: blocked again, not the default action
print(f"asked {asked}", flush=True)
"""


def test_a_worker_started_from_a_launch_thread_takes_stop_signals_only_inside_a_trial():
    # A group's signal (Ctrl-C, a scheduler's warning) must not kill an idle joblib worker: loky would
    # end the whole pool, and the trial running in a sibling worker, before that trial is marked.
    started = []

    def launch() -> None:
        relay_through_the_sweep()
        started.append(
            subprocess.Popen(
                [sys.executable, "-c", IDLE_WORKER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )

    thread = threading.Thread(target=launch)
    thread.start()
    thread.join()
    [worker] = started
    assert worker.stdout.readline() == "idle\n"
    os.kill(worker.pid, signal.SIGUSR1)
    time.sleep(0.5)
    assert worker.poll() is None, "an idle worker survives the signal"
    output, _ = worker.communicate("go\n", timeout=60)
    assert worker.returncode == 0 and output == f"asked [{int(signal.SIGUSR1)}]\n"
