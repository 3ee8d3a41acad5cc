"""What tracking costs a training run: ``tracking=mlflow`` and ``tracking=tensorboard`` against
``tracking=none``.

    python bench/tracking_overhead.py [--repeats 5] [--cnn-epochs 4]

Two runs of the real config tree, same seed, the three contenders alternated in one process:
- default: the default MLP on the bundled digits (20 short epochs: the worst case for overhead);
- cnn:     experiment=cnn_digits widened to 512 channels (about a second per epoch on a 2-core CPU).
The SQLite store and its experiment are created, and MLflow and TensorBoard imported, before any
timing: they are paid once per launch directory and per process, not per run. For each run the
tracker's calls are timed where they happen (and the learning-curve PNG, drawn only for tracked
runs), and the MlflowClient.log_batch calls made while logging an epoch are counted. Medians and
spread over the repeats are printed; targets, for each tracker: overhead <= 5% of training time
for the second-per-epoch run, fixed cost per run <= 0.3 s; MLflow: <= 1 logging call per epoch.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import alternate, ratio, summary

import sweepkit.plots
from sweepkit.tracking import build_tracker
from sweepkit.train import compose as compose_config
from sweepkit.training import run

SCENARIOS = {
    "default": ["trainer.progress=none"],
    "cnn": [
        "experiment=cnn_digits",
        "model.channels=[512,512]",
        "model.hidden=[256]",
        "trainer.progress=none",
    ],
}


TRACKERS = ("mlflow", "tensorboard")
# What a tracked run pays once, whatever its length; "watch" is TensorBoard's model graph and input grid.
FIXED_KEYS = (
    "build_tracker",
    "start",
    "watch",
    "log_metrics",
    "set_tags",
    "learning_curve_png",
    "log_artifact",
    "end",
)


class TimedTracker:
    """A real tracker, with the time spent in each of its methods written down (and for MLflow's,
    the log_batch calls each one makes)."""

    def __init__(self, tracker, seconds: dict[str, float], calls: dict[str, int]) -> None:
        self.tracker, self.seconds, self.calls = tracker, seconds, calls
        self._current = "other"
        if hasattr(tracker, "client"):  # MLflow's
            real_log_batch = tracker.client.log_batch

            def counted_log_batch(*args, **kwargs):
                self.calls[self._current] += 1
                return real_log_batch(*args, **kwargs)

            tracker.client.log_batch = counted_log_batch

    @property
    def run_id(self):
        return self.tracker.run_id

    def __getattr__(self, name):
        method = getattr(self.tracker, name)

        def timed(*args, **kwargs):
            self._current = name
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self._current = "other"

        return timed


class Contenders:
    """One scenario's contenders; each call trains one whole run and returns its wall time."""

    def __init__(self, overrides: list[str], root: Path, store: str) -> None:
        self.overrides, self.root, self.store = overrides, root, store
        self.runs = 0
        # per tracker, per tracked run: seconds per tracker method, log_batch calls per epoch, mean epoch_time_s
        self.components: dict[str, list[dict[str, float]]] = defaultdict(list)
        self.calls_per_epoch: dict[str, list[float]] = defaultdict(list)
        self.epoch_seconds: dict[str, list[float]] = defaultdict(list)
        self.epochs = 0

    def _cfg(self, tracking: list[str]):
        self.runs += 1
        output = self.root / f"run{self.runs}"
        return compose_config([*self.overrides, *tracking], output), output

    def none(self) -> float:
        cfg, output = self._cfg(["tracking=none"])
        start = time.perf_counter()
        run(cfg)
        seconds = time.perf_counter() - start
        shutil.rmtree(output, ignore_errors=True)
        return seconds

    def mlflow(self) -> float:
        return self._tracked(
            "mlflow", ["tracking=mlflow", f"tracking.uri={self.store}", "tracking.experiment=bench"]
        )

    def tensorboard(self) -> float:
        return self._tracked("tensorboard", ["tracking=tensorboard"])

    def _tracked(self, name: str, tracking: list[str]) -> float:
        cfg, output = self._cfg(tracking)
        seconds: dict[str, float] = defaultdict(float)
        calls: dict[str, int] = defaultdict(int)

        def make_tracker():
            begin = time.perf_counter()
            tracker = TimedTracker(build_tracker(cfg.tracking, self.root), seconds, calls)
            seconds["build_tracker"] += time.perf_counter() - begin
            return tracker

        real_curve = sweepkit.plots.learning_curve  # training imports it from there when it draws

        def timed_curve(*args, **kwargs):
            begin = time.perf_counter()
            try:
                return real_curve(*args, **kwargs)
            finally:
                seconds["learning_curve_png"] += time.perf_counter() - begin

        sweepkit.plots.learning_curve = timed_curve
        try:
            start = time.perf_counter()
            metrics = run(cfg, make_tracker=make_tracker)
            wall = time.perf_counter() - start
        finally:
            sweepkit.plots.learning_curve = real_curve
        epochs = metrics["epochs_run"]
        self.epochs = epochs
        self.components[name].append(dict(seconds))
        self.calls_per_epoch[name].append(calls["log_epoch"] / epochs)
        history = torch.load(output / "checkpoints/last.pt", weights_only=True)["loop"]["history"]
        self.epoch_seconds[name].append(statistics.mean(h["epoch_time_s"] for h in history))
        shutil.rmtree(output, ignore_errors=True)
        return wall


def ms(values: list[float]) -> str:
    return summary([v * 1000 for v in values])


def report(name: str, contenders: Contenders, results: dict[str, list[float]]) -> None:
    untracked = results["none"]
    epochs = contenders.epochs
    n = len(untracked)
    print(f"\n{name}: {epochs} epochs (wall seconds per run, median (min..max, n={n})):")
    print(f"  tracking=none         {summary(untracked)}")
    for tracker in TRACKERS:
        report_tracker(tracker, contenders, results[tracker], untracked)


def report_tracker(
    tracker: str, contenders: Contenders, tracked: list[float], untracked: list[float]
) -> None:
    epochs, n = contenders.epochs, len(tracked)
    parts = contenders.components[tracker][-n:]  # the measured rounds (warm-up rounds come first)
    epoch_seconds = contenders.epoch_seconds[tracker][-n:]
    per_epoch = [p.get("log_epoch", 0.0) / epochs for p in parts]
    fixed = [sum(p.get(k, 0.0) for k in FIXED_KEYS) for p in parts]
    measured = [f + e * epochs for f, e in zip(fixed, per_epoch)]
    difference = [a - b for a, b in zip(tracked, untracked)]
    print(
        f"  tracking={tracker:12s} {summary(tracked)}   mean epoch {statistics.median(epoch_seconds):.3f} s"
    )
    print(
        f"    {tracker} / none = {ratio(tracked, untracked)}   (wall-clock; noise on 2 shared cores is of the order of the overhead)"
    )
    print(f"    wall difference per run        {ms(difference)} ms")
    print(
        f"    tracker time per run, measured {ms(measured)} ms = "
        f"{statistics.median(m / u for m, u in zip(measured, untracked)) * 100:.2f}% of the untracked run"
    )
    print(f"      fixed cost per run           {ms(fixed)} ms   (target <= 300 ms)")
    for key in FIXED_KEYS:
        print(f"        {key:26s} {ms([p.get(key, 0.0) for p in parts])} ms")
    print(
        f"      per epoch (log_epoch)        {ms(per_epoch)} ms = "
        f"{statistics.median(e / s for e, s in zip(per_epoch, epoch_seconds)) * 100:.3f}% of an epoch   (target <= 5%)"
    )
    if tracker == "mlflow":
        print(
            f"    log_batch calls per epoch      {max(contenders.calls_per_epoch[tracker]):g}   (target <= 1)"
        )
    first = contenders.components[tracker][0]
    print(
        f"    first tracked run of the scenario: fixed cost {sum(first.get(k, 0.0) for k in FIXED_KEYS) * 1000:.1f} ms "
        f"(build_tracker {first.get('build_tracker', 0.0) * 1000:.1f} ms, start {first.get('start', 0.0) * 1000:.1f} ms, "
        f"watch {first.get('watch', 0.0) * 1000:.1f} ms, PNG {first.get('learning_curve_png', 0.0) * 1000:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--cnn-epochs", type=int, default=4, help="epochs of the cnn scenario (about a second each)"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    from mlflow import MlflowClient  # imported once, before timing: ~1 s per process, not per run

    import sweepkit.event_files  # noqa: F401  (TensorBoard's writer, imported once, before timing)

    root = Path(tempfile.mkdtemp(prefix="sweepkit-bench-"))
    try:
        store = f"sqlite:///{root / 'mlflow.db'}"
        begin = time.perf_counter()
        MlflowClient(store).create_experiment("bench", artifact_location=(root / "mlartifacts").as_uri())
        print(f"store and experiment created once, beforehand: {time.perf_counter() - begin:.2f} s")
        SCENARIOS["cnn"].append(f"trainer.max_epochs={args.cnn_epochs}")
        for name, overrides in SCENARIOS.items():
            contenders = Contenders(overrides, root, store)
            results = alternate(
                {"none": contenders.none, "mlflow": contenders.mlflow, "tensorboard": contenders.tensorboard},
                args.repeats,
            )
            report(name, contenders, results)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
