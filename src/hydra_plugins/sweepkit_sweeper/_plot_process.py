"""The study plots drawn by a process of their own, started as the sweep starts.

Drawing the plots of a finished study takes a second or two; importing what draws them (matplotlib,
Optuna's plots, and scikit-learn, which Optuna's fANOVA importances import) takes 2-4 s more. A process
started with the sweep does those imports while the sweep sets up and runs its trials, at a lower
priority (on whatever time the cores leave), then waits; told that the study is done, it draws it, so the sweep's end costs the drawing
alone. The sweep waits for it, and draws the plots itself if the process could not.

The process starts with the stop signals blocked: a Ctrl-C to the whole group stops the sweep, whose end
still asks for the plots. What to draw comes on its input, not its command line (a storage URL may hold a
password); it ends without drawing when the sweep closes its input unasked (the sweep failed, or died).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from sweepkit.preemption import stop_signals_blocked

log = logging.getLogger("sweepkit")
DRAW_TIMEOUT_S = 300  # a study of thousands of trials draws in well under this
NICENESS = 10  # the process's priority below the sweep's (its imports wait while the cores train)


class PlotProcess:
    """The plot process of one sweep: ``draw()`` once its study is complete; as a context, it is ended
    (undrawn) on the way out if ``draw()`` was never called."""

    def __init__(self) -> None:
        with stop_signals_blocked():
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )

    def __enter__(self) -> PlotProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process.poll() is None:
            self._process.kill()  # not asked to draw: nothing of it is wanted
        self._process.wait()

    def draw(self, storage_url: str, study_name: str, folder: Path) -> list[Path] | None:
        """The study's plots as it is now, as PNG paths in ``folder``; None where the process could not
        draw them."""
        order = json.dumps({"storage": storage_url, "study": study_name, "folder": str(folder)})
        try:
            out, _ = self._process.communicate(order + "\n", timeout=DRAW_TIMEOUT_S)
        except (OSError, ValueError, subprocess.TimeoutExpired) as err:  # gone, or closed, or stuck
            log.warning("the plot process did not draw (%s): drawing the plots here", err)
            self._process.kill()
            return None
        if self._process.returncode != 0:
            log.warning(
                "the plot process ended with exit code %d: drawing the plots here", self._process.returncode
            )
            return None
        return [Path(line) for line in out.splitlines() if line]


def main() -> None:
    if hasattr(os, "nice"):  # the imports take the cores' spare time: the trials and workers come first
        os.nice(NICENESS)
    import optuna
    import optuna.importance

    from hydra_plugins.sweepkit_sweeper._study_plots import save_plots
    from sweepkit import studies
    from sweepkit.console import exit_quickly

    order = sys.stdin.readline()
    if not order:  # the sweep ended without wanting plots
        return
    order = json.loads(order)
    study = optuna.load_study(study_name=order["study"], storage=studies.open_storage(order["storage"]))
    for path in save_plots(study, Path(order["folder"])):
        print(path, flush=True)
    exit_quickly()  # the sweep waits for this process's end


if __name__ == "__main__":
    main()
