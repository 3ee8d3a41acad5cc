"""What a sweep costs beyond training: the real command against an in-process Optuna loop (the floor).

    python bench/sweep_cost.py [--seeds 0 1 2] [--n-trials 30] [--short 10]

The floor is the loop the README's "From Python" shows: one process, ``study.optimize`` over
``sweepkit.training.run(cfg, reporter=...)``, the preset's search space, sampler and pruner, no
tracking. Against it, on ``hparams_search=lr_batch_optimizer`` (30 trials of up to 12 epochs on
digits), each a fresh folder and a fresh process, seeds interleaved:

- sweepkit / floor wall, no tracking, one trial at a time (``n_jobs=1``);
- MLflow on / off, ``n_jobs=1``;
- pruned / unpruned (``NopPruner``) wall beside pruned / unpruned epochs, ``n_jobs=1``;
- the per-sweep fixed cost and the per-trial marginal cost, from ``--short`` and ``--n-trials``
  trials (sweepkit and the floor alike);
- all cores (``n_jobs`` null, the default) / one worker: trials per minute.

Ratios are medians over seeds of per-seed ratios, with their range.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Sweep, ratio

TRAIN = Path(sys.executable).with_name("sweepkit-train")
PRESET = "lr_batch_optimizer"
SERIAL = ["hydra.sweeper.n_jobs=1"]
CONTENDERS = {  # name: extra overrides of the real command (None: the floor)
    "floor": None,
    "sweepkit": [*SERIAL, "tracking=none"],
    "sweepkit+mlflow": [*SERIAL, "tracking=mlflow"],
    "unpruned": [*SERIAL, "tracking=none", "hydra.sweeper.pruner=NopPruner"],
    "parallel": ["tracking=none"],
}


def floor(seed: int, n_trials: int) -> None:
    """The in-process loop (run in a child process of its own, so that imports count as for the command)."""
    import optuna
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from hydra_plugins.sweepkit_sweeper._impl import LR, suggest
    from hydra_plugins.sweepkit_sweeper._search_space import params_as_overrides, parse_search_space
    from sweepkit.optuna_parts import build_optuna_part
    from sweepkit.train import CONFIG_DIR
    from sweepkit.training import run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        preset = compose(
            "train", overrides=[f"hparams_search={PRESET}"], return_hydra_config=True
        ).hydra.sweeper
        distributions, _ = parse_search_space(params_as_overrides(dict(preset.params)))
        # built as the sweeper builds them (its defaults, constant_liar among them), so that both draw the same trials
        sampler = build_optuna_part("sampler", OmegaConf.to_container(preset.sampler), seed=seed)
        pruner = build_optuna_part("pruner", OmegaConf.to_container(preset.pruner))
        study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)

        def objective(trial: optuna.Trial) -> float:
            # in the sweeper's order (the lr last: a centred lr range depends on the optimizer drawn)
            params = {
                name: suggest(trial, name, distributions[name])
                for name in sorted(distributions, key=lambda n: n == LR)
            }
            cfg = compose(
                "train",
                overrides=[
                    f"hparams_search={PRESET}",
                    "tracking=none",
                    "trainer.progress=none",
                    "output_dir=null",
                    *(f"{k}={v}" for k, v in params.items()),
                ],
            )

            class Reporter:
                def should_prune(self, epoch: int, value: float) -> bool:
                    trial.report(value, epoch)
                    return trial.should_prune()

            metrics = run(cfg, reporter=Reporter())
            trial.set_user_attr("epochs", metrics["epochs_run"])
            if metrics["stop_reason"] in ("pruned", "diverged"):
                raise optuna.TrialPruned()
            return metrics["best/val/acc"]

        study.optimize(objective, n_trials=n_trials)
    best = study.best_value
    epochs = sum(t.user_attrs.get("epochs", len(t.intermediate_values)) for t in study.trials)
    print(f"RESULT {best} {epochs}")


def run_contender(name: str, seed: int, n_trials: int) -> Sweep:
    with tempfile.TemporaryDirectory(prefix="sweep-cost-") as folder:
        extra = CONTENDERS[name]
        if extra is None:
            command = [sys.executable, __file__, "--floor", str(seed), "--n-trials", str(n_trials)]
        else:
            command = [
                str(TRAIN),
                "-m",
                f"hparams_search={PRESET}",
                f"hydra.sweeper.n_trials={n_trials}",
                f"hydra.sweeper.sampler.seed={seed}",
                "hydra.sweeper.study_name=bench",
                "trainer.progress=none",
                *extra,
            ]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if extra is None:
            best, epochs = done.stdout.split("RESULT ", 1)[1].split()
            return Sweep(wall, n_trials, int(epochs), float(best))
        import optuna

        from sweepkit import studies

        study = optuna.load_study(
            study_name="bench", storage=studies.open_storage(str(Path(folder) / "optuna.journal"))
        )
        return Sweep(wall, n_trials, studies.summarize(study).epochs_run, study.best_value)


def ratio_of(pairs: list[tuple[float, float]]) -> str:
    return ratio([a for a, _ in pairs], [b for _, b in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument(
        "--short", type=int, default=10, help="the smaller trial count of the fixed/marginal split"
    )
    parser.add_argument("--floor", type=int, help=argparse.SUPPRESS)  # internal: run the floor for this seed
    args = parser.parse_args()
    if args.floor is not None:
        floor(args.floor, args.n_trials)
        return

    full: dict[str, list[Sweep]] = {name: [] for name in CONTENDERS}
    short: dict[str, list[Sweep]] = {"floor": [], "sweepkit": []}
    print(f"{'seed':>4}  {'sweep':<16} {'trials':>6} {'epochs':>6} {'best':>7} {'wall s':>7}")
    for seed in args.seeds:
        for name in CONTENDERS:
            for count, table in ((args.n_trials, full), (args.short, short)):
                if name not in table:
                    continue
                result = run_contender(name, seed, count)
                table[name].append(result)
                print(
                    f"{seed:>4}  {name:<16} {count:>6} {result.epochs:>6} {result.best:>7.4f} {result.wall_s:>7.1f}",
                    flush=True,
                )

    def pairs(a: str, b: str, key: str = "wall_s") -> list[tuple[float, float]]:
        return [(getattr(x, key), getattr(y, key)) for x, y in zip(full[a], full[b])]

    print(
        f"\nsweepkit / floor wall, no tracking, n_jobs=1:  {ratio_of(pairs('sweepkit', 'floor'))}   (target <= 1.10x)"
    )
    print(
        f"MLflow on / off wall, n_jobs=1:                {ratio_of(pairs('sweepkit+mlflow', 'sweepkit'))}   (target <= 1.15x)"
    )
    print(f"pruned / unpruned wall:                        {ratio_of(pairs('sweepkit', 'unpruned'))}")
    print(
        f"pruned / unpruned epochs:                      {ratio_of(pairs('sweepkit', 'unpruned', 'epochs'))}   (target: wall within 0.10 of this)"
    )
    print(
        f"all cores / one worker, trials per minute:     {ratio_of([(s.wall_s, p.wall_s) for s, p in zip(full['sweepkit'], full['parallel'])])}   (target >= 1.4x)"
    )
    for name in short:
        marginal = [
            (f.wall_s - s.wall_s) / (args.n_trials - args.short) for f, s in zip(full[name], short[name])
        ]
        fixed = [s.wall_s - args.short * m for s, m in zip(short[name], marginal)]
        print(
            f"{name:<8} fixed cost per sweep {statistics.median(fixed):6.2f} s ({min(fixed):.2f}..{max(fixed):.2f})   "
            f"marginal cost per trial {statistics.median(marginal):5.3f} s ({min(marginal):.3f}..{max(marginal):.3f})"
        )


if __name__ == "__main__":
    main()
