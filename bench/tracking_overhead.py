"""What MLflow tracking costs a training run: ``tracking=mlflow`` against ``tracking=none``.

    python bench/tracking_overhead.py [--repeats 5] [--cnn-epochs 4]

Two runs of the real config tree, same seed, the two contenders alternated in one process:
- default: the default MLP on the bundled digits (20 short epochs: the worst case for overhead);
- cnn:     experiment=cnn_digits widened to 512 channels (about a second per epoch on a 2-core CPU).
The SQLite store and its experiment are created, and MLflow imported, before any timing: they are
paid once per launch directory and per process, not per run. For each run the tracker's calls are
timed where they happen (and the learning-curve PNG, drawn only for tracked runs), and the
MlflowClient.log_batch calls made while logging an epoch are counted. Medians and spread over the
repeats are printed; targets: overhead <= 5% of training time for the second-per-epoch run,
<= 1 logging call per epoch, fixed cost per run <= 0.3 s.
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
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from common import alternate, ratio, summary  # noqa: E402
from conftest import compose_config  # noqa: E402  (the real config tree, as the tests compose it)

import sweepkit.plots  # noqa: E402  (the learning-curve PNG is timed where training draws it)
from sweepkit.tracking import build_tracker  # noqa: E402
from sweepkit.training import run  # noqa: E402

SCENARIOS = {
    "default": ["trainer.progress=none"],
    "cnn": ["experiment=cnn_digits", "model.channels=[512,512]", "model.hidden=[256]", "trainer.progress=none"],
}


class TimedTracker:
    """The real MlflowTracker, with the time spent in each of its methods and the log_batch calls
    each one makes written down."""

    def __init__(self, tracker, seconds: dict[str, float], calls: dict[str, int]) -> None:
        self.tracker, self.seconds, self.calls = tracker, seconds, calls
        self._current = "other"
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
    """One scenario's two contenders; each call trains one whole run and returns its wall time."""

    def __init__(self, overrides: list[str], root: Path, store: str) -> None:
        self.overrides, self.root, self.store = overrides, root, store
        self.runs = 0
        self.components: list[dict[str, float]] = []  # per tracked run: seconds per tracker method
        self.calls_per_epoch: list[float] = []
        self.epoch_seconds: list[float] = []  # per tracked run: mean epoch_time_s as the loop measured it
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
        cfg, output = self._cfg(["tracking=mlflow", f"tracking.uri={self.store}", "tracking.experiment=bench"])
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
        self.components.append(dict(seconds))
        self.calls_per_epoch.append(calls["log_epoch"] / epochs)
        history = torch.load(output / "checkpoints/last.pt", weights_only=True)["loop"]["history"]
        self.epoch_seconds.append(statistics.mean(h["epoch_time_s"] for h in history))
        shutil.rmtree(output, ignore_errors=True)
        return wall


def ms(values: list[float]) -> str:
    return summary([v * 1000 for v in values])


def report(name: str, contenders: Contenders, results: dict[str, list[float]]) -> None:
    tracked, untracked = results["mlflow"], results["none"]
    epochs = contenders.epochs
    n = len(tracked)
    parts = contenders.components[-n:]  # the measured rounds (warm-up rounds come first)
    per_epoch = [p.get("log_epoch", 0.0) / epochs for p in parts]
    fixed_keys = ("build_tracker", "start", "log_metrics", "set_tags", "learning_curve_png", "log_artifact", "end")
    fixed = [sum(p.get(k, 0.0) for k in fixed_keys) for p in parts]
    measured = [f + e * epochs for f, e in zip(fixed, per_epoch)]
    difference = [a - b for a, b in zip(tracked, untracked)]
    print(f"\n{name}: {epochs} epochs, mean epoch {statistics.median(contenders.epoch_seconds[-n:]):.3f} s "
          f"(wall seconds per run, median (min..max, n={n})):")
    print(f"  tracking=none    {summary(untracked)}")
    print(f"  tracking=mlflow  {summary(tracked)}")
    print(f"  mlflow / none = {ratio(tracked, untracked)}   (wall-clock; noise on 2 shared cores is of the order of the overhead)")
    print(f"  wall difference per run        {ms(difference)} ms")
    print(f"  tracker time per run, measured {ms(measured)} ms = "
          f"{statistics.median(m / u for m, u in zip(measured, untracked)) * 100:.2f}% of the untracked run")
    print(f"    fixed cost per run           {ms(fixed)} ms   (target <= 300 ms)")
    for key in fixed_keys:
        print(f"      {key:26s} {ms([p.get(key, 0.0) for p in parts])} ms")
    print(f"    per epoch (log_epoch)        {ms(per_epoch)} ms = "
          f"{statistics.median(e / s for e, s in zip(per_epoch, contenders.epoch_seconds[-n:])) * 100:.3f}% of an epoch")
    print(f"  log_batch calls per epoch      {max(contenders.calls_per_epoch):g}   (target <= 1)")
    first = contenders.components[0]
    print(f"  first tracked run of the scenario: fixed cost {sum(first.get(k, 0.0) for k in fixed_keys) * 1000:.1f} ms "
          f"(build_tracker {first.get('build_tracker', 0.0) * 1000:.1f} ms, start {first.get('start', 0.0) * 1000:.1f} ms, "
          f"PNG {first.get('learning_curve_png', 0.0) * 1000:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cnn-epochs", type=int, default=4, help="epochs of the cnn scenario (about a second each)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    from mlflow import MlflowClient  # imported once, before timing: ~1 s per process, not per run

    root = Path(tempfile.mkdtemp(prefix="sweepkit-bench-"))
    try:
        store = f"sqlite:///{root / 'mlflow.db'}"
        begin = time.perf_counter()
        MlflowClient(store).create_experiment("bench", artifact_location=(root / "mlartifacts").as_uri())
        print(f"store and experiment created once, beforehand: {time.perf_counter() - begin:.2f} s")
        SCENARIOS["cnn"].append(f"trainer.max_epochs={args.cnn_epochs}")
        for name, overrides in SCENARIOS.items():
            contenders = Contenders(overrides, root, store)
            results = alternate({"none": contenders.none, "mlflow": contenders.mlflow}, args.repeats)
            report(name, contenders, results)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
