"""What ``hparams_search=scaling_law`` teaches on the bundled digits, for SGD and for Adam, and what
the gradient-noise-scale probe costs.

    python bench/scaling_law.py [--optimizers sgd adam] [--keep DIR] [--rounds 3] [overrides ...]

For each optimizer: the real command, ``sweepkit-train -m hparams_search=scaling_law optimizer=<name>``
(6 batch sizes x 9 lrs x 20 epochs, no pruner, tracking off: MLflow's cost is not the question), in a
fresh folder; then the fit of ``sweepkit.scaling_law`` on its study: alpha with its 90% interval,
the verdict, the break, the noise scale, the suggested config, and the whole report.

Then the probe's cost: for each batch size of the preset, whole runs (the preset's 20 epochs, at
the optimizer's centre lr, ``trainer.noise_scale=true`` with its default share and time budget).
Printed per batch size, median (min..max) over the rounds: the probe's seconds over the epochs'
seconds (``epoch_time_s``: training and validation; the probe runs after that clock), what one
measurement costs against one epoch, and how many epochs the budget let it measure. Target: at
most 0.05 (5% of an epoch).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from hydra import compose, initialize_config_dir

from sweepkit import scaling_law, studies
from sweepkit.train import CONFIG_DIR
from sweepkit.training import build

TRAIN = Path(sys.executable).with_name("sweepkit-train")
PRESET = "hparams_search=scaling_law"


def run_preset(optimizer: str, extra: list[str], keep: Path | None) -> tuple[list[str], float, list]:
    """The sweep of one optimizer; returns the report's lines, the wall time and the fits."""
    with tempfile.TemporaryDirectory(prefix="scaling-law-") as scratch:
        folder = Path(scratch)
        name = f"bench-{optimizer}"
        command = [
            str(TRAIN),
            "-m",
            PRESET,
            f"optimizer={optimizer}",
            f"hydra.sweeper.study_name={name}",
            "tracking=none",
            "trainer.progress=none",
            *extra,
        ]
        start = time.perf_counter()
        subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        study = optuna.load_study(
            study_name=name, storage=studies.open_storage(str(folder / "optuna.journal"))
        )
        outcome = scaling_law.analyse(
            study, folder / "multirun" / name / "plots" / "lr_vs_batch.png", "val/loss"
        )
        if (
            keep is not None
        ):  # the study too: sweepkit-report <name> --storage <keep>/<optimizer>.journal --scaling
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / "optuna.journal", keep / f"{optimizer}.journal")
            if outcome.plot is not None:
                shutil.copy(outcome.plot, keep / f"lr_vs_batch_{optimizer}.png")
        return outcome.lines, wall, outcome.fits


def probe_overhead(
    optimizer: str, extra: list[str], rounds: int
) -> dict[int, tuple[list[float], list[float], int, int]]:
    """Per batch size, over ``rounds`` whole runs of the preset's epochs: the probe's seconds over the
    epochs' seconds, one measurement's seconds over one epoch's, and epochs measured of epochs run."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        preset = compose("train", overrides=[PRESET, f"optimizer={optimizer}", *extra])
        out = {}
        for batch in preset.scaling_law.batch_sizes:
            cfg = compose(
                "train",
                overrides=[
                    PRESET,
                    f"optimizer={optimizer}",
                    f"data.batch_size={batch}",
                    "tracking=none",
                    "trainer.progress=none",
                    "trainer.save_checkpoints=false",
                    "output_dir=null",
                    *extra,
                ],
            )
            shares, singles, measured, epochs = [], [], 0, 0
            for _ in range(rounds):
                setup = build(cfg, output_dir=None)
                state = setup.loop.fit(cfg.trainer.max_epochs, setup.objective)
                probe = setup.loop.noise_probe
                shares.append(probe.spent_s / probe.epochs_s)
                singles.append((probe.spent_s / probe.measured) / (probe.epochs_s / len(state.history)))
                measured, epochs = measured + probe.measured, epochs + len(state.history)
            out[int(batch)] = (shares, singles, measured, epochs)
        return out


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}..{max(values):.3f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    parser.add_argument(
        "--rounds", type=int, default=3, help="whole runs per batch size for the probe's cost"
    )
    parser.add_argument(
        "--keep", type=Path, help="copy each optimizer's study journal and lr_vs_batch.png into this folder"
    )
    parser.add_argument("--skip-sweeps", action="store_true", help="only measure the probe's cost")
    parser.add_argument(
        "overrides", nargs="*", help="more overrides for the sweeps and the cost runs, e.g. model=cnn"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    for optimizer in args.optimizers:
        if args.skip_sweeps:
            break
        lines, wall, fits = run_preset(optimizer, args.overrides, args.keep)
        print(
            f"=== {optimizer}: sweepkit-train -m {PRESET} optimizer={optimizer}  ({wall:.0f} s)", flush=True
        )
        for fit in fits:
            law, brk = fit.law, fit.breakpoint
            alpha = (
                f"alpha {law.alpha:.2f} [{law.low:.2f}..{law.high:.2f}]  verdict {law.verdict}"
                if law
                else "no law"
            )
            noise = fit.noise_scale
            print(
                f"summary: {alpha}  break {f'~{brk.batch_size:.0f}' if brk else 'none'}  "
                f"B_simple {'-' if noise is None else f'{noise:.3g}'}"
            )
        print("\n".join(lines), flush=True)

    for optimizer in args.optimizers:
        costs = probe_overhead(optimizer, args.overrides, args.rounds)
        print(
            f"=== noise-scale probe, {optimizer}: its time / epoch time over whole runs (target <= 0.050), "
            "one measurement / one epoch, epochs measured"
        )
        for batch, (shares, singles, measured, epochs) in costs.items():
            print(
                f"  batch {batch:>4}: {spread(shares)}   one: {spread(singles)}   measured {measured}/{epochs}",
                flush=True,
            )


if __name__ == "__main__":
    main()
