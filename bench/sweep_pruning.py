"""What pruning saves a sweep, and what it costs in result: the pruner against ``NopPruner``.

    python bench/sweep_pruning.py [--seeds 0 1 2] [--n-trials 30] [--tracking none] [overrides ...]

The real command, ``sweepkit-train -m hparams_search=lr_batch_optimizer``, on the bundled digits,
in a fresh folder per sweep: once with the preset's pruner and once with
``hydra.sweeper.pruner=NopPruner``, the same sampler seed and trial budget, the two alternated
seed after seed. For each sweep: best val/acc, epochs run (of n_trials x max_epochs) and wall time;
then the ratios pruned / unpruned per seed and their medians. Targets: at least 40% fewer epochs,
best val/acc within 0.5 points. MLflow is off by default (``--tracking mlflow`` turns it on): its
cost per run is the same with and without pruning and would only blur the wall-time ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from sweepkit import studies

TRAIN = Path(sys.executable).with_name("sweepkit-train")
CONTENDERS = {"pruned": [], "unpruned": ["hydra.sweeper.pruner=NopPruner"]}


@dataclass
class SweepResult:
    best: float
    epochs_run: int
    epochs_budget: int
    wall_s: float


def run_sweep(seed: int, n_trials: int, tracking: str, extra: list[str]) -> SweepResult:
    with tempfile.TemporaryDirectory(prefix="sweep-pruning-") as folder:
        command = [
            str(TRAIN),
            "-m",
            "hparams_search=lr_batch_optimizer",
            f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweeper.sampler.seed={seed}",
            "hydra.sweeper.study_name=bench",
            f"tracking={tracking}",
            "trainer.progress=none",
            *extra,
        ]
        start = time.perf_counter()
        subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        study = optuna.load_study(
            study_name="bench", storage=studies.open_storage(str(Path(folder) / "optuna.journal"))
        )
        summary = studies.summarize(study)
        return SweepResult(study.best_value, summary.epochs_run, summary.epochs_budget, wall)


def median_ratio(pairs: list[tuple[float, float]]) -> str:
    ratios = [a / b for a, b in pairs]
    return f"{statistics.median(ratios):.3f}x ({min(ratios):.3f}..{max(ratios):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--tracking", choices=["none", "mlflow"], default="none")
    parser.add_argument("overrides", nargs="*", help="more overrides for both sweeps, e.g. model=cnn")
    args = parser.parse_args()

    results: dict[str, list[SweepResult]] = {name: [] for name in CONTENDERS}
    print(f"{'seed':>4}  {'sweep':<9} {'best val/acc':>12} {'epochs run':>14} {'wall s':>7}")
    for seed in args.seeds:
        for name, extra in CONTENDERS.items():
            result = run_sweep(seed, args.n_trials, args.tracking, [*args.overrides, *extra])
            results[name].append(result)
            print(
                f"{seed:>4}  {name:<9} {result.best:>12.4f} {result.epochs_run:>6} of {result.epochs_budget:<5} {result.wall_s:>7.1f}",
                flush=True,
            )

    pruned, unpruned = results["pruned"], results["unpruned"]
    epochs = median_ratio([(p.epochs_run, u.epochs_run) for p, u in zip(pruned, unpruned)])
    wall = median_ratio([(p.wall_s, u.wall_s) for p, u in zip(pruned, unpruned)])
    gaps = [100 * (p.best - u.best) for p, u in zip(pruned, unpruned)]
    print(f"\nepochs run, pruned / unpruned: {epochs}   (target <= 0.600x: at least 40% fewer)")
    print(f"wall time,  pruned / unpruned: {wall}")
    print(
        f"best val/acc, pruned - unpruned: median {statistics.median(gaps):+.2f} points "
        f"({min(gaps):+.2f}..{max(gaps):+.2f})   (target >= -0.50)"
    )


if __name__ == "__main__":
    main()
