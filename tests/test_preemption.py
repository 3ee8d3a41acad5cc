"""Stop signals in a trial job (sweepkit.preemption): real signals, in a child process of its own."""

import subprocess
import sys

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
