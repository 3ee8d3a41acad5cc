"""The GPU path's speed: mixed precision, device-resident batches, and a whole sweep.

    python bench/gpu.py [--repeats 5] [--n-trials 30]     # on a CUDA machine
    python bench/gpu.py --dry-run                         # on a CPU, tiny sizes (the test suite runs it)

1. The LeNet-style CNN (``model=cnn``) on an MNIST-sized synthetic set (60,000 images, 1x28x28,
   batch 128), built by sweepkit's own ``build()`` (its optimizer, channels-last and CUDA settings):
   samples/s of a training epoch in bf16 and in fp16 with a GradScaler, against fp32.
2. The same set and model: device-resident batches against the DataLoader path (pinned memory,
   workers, non-blocking copies), fp32.
3. ``sweepkit-train -m hparams_search=lr_batch_optimizer model=cnn`` (30 trials on digits, no
   tracking): wall time on one GPU (trials one after another) against the same sweep on the CPU
   (sweepkit's default: a trial per core at once), and with two or more GPUs all of them
   (``local_parallel``, one trial per GPU) against one.

Contenders alternate round by round within one process (warm-up round discarded); medians and
spread over the repeats are printed, and ratios paired by round. ``--dry-run`` runs every part on
the CPU with tiny sizes (fp16 through the GradScaler on the CPU, which sweepkit itself refuses) so
that the script cannot rot; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).parent))
from common import alternate, ratio, summary

from sweepkit.devices import Precision
from sweepkit.errors import ConfigError
from sweepkit.loop import SkippedSteps, TrainingLoop
from sweepkit.progress import SilentProgress
from sweepkit.train import CONFIG_DIR
from sweepkit.training import build

TRAIN = Path(sys.executable).with_name("sweepkit-train")


def cnn_loop(device: str, precision: str, loader: str, n_samples: int, workers: int) -> TrainingLoop:
    """sweepkit's loop for the CNN on the synthetic set, exactly as ``sweepkit-train`` builds it."""
    overrides = [
        "model=cnn",
        "model.dropout=0.0",
        "tracking=none",
        "trainer.progress=none",
        "output_dir=null",
        f"trainer.device={device}",
        f"trainer.precision={'32' if precision == '16' and device == 'cpu' else precision}",
        "data.name=synthetic",
        "data.batch_size=128",
        f"data.loader={loader}",
        f"data.num_workers={workers}",
        "data.source._target_=synthetic.images",
        f"+data.source.n_samples={n_samples}",
        f"data.source.test_fraction={1 / 7}",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    loop = build(cfg, output_dir=None).loop
    if precision == "16" and device == "cpu":  # dry run only: the fp16 + GradScaler path on a CPU
        loop.precision = Precision("16", "cpu")
        loop.scaler, loop.skips = loop.precision.grad_scaler(), SkippedSteps()
    return loop


def epoch_rate(loop: TrainingLoop) -> Callable[[], float]:
    """Samples/s of one training epoch (it ends with the epoch's one sync, so the time is the device's)."""

    def measure() -> float:
        _, seconds = loop.train_epoch(SilentProgress())
        return loop.train_batches.num_samples / seconds

    return measure


def report(title: str, results: dict[str, list[float]], baseline: str) -> None:
    print(f"\n{title} (samples/s, median (min..max)):")
    for name, values in results.items():
        print(f"  {name:11s} {summary(values)}")
    for name, values in results.items():
        if name != baseline:
            print(f"  {name} / {baseline} = {ratio(values, results[baseline])}")


def sweep_wall(overrides: list[str]) -> tuple[float, str]:
    """Wall seconds of one real sweep in a fresh folder, and its last log line (the epochs run)."""
    with tempfile.TemporaryDirectory(prefix="bench-gpu-sweep-") as folder:
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        start = time.perf_counter()
        done = subprocess.run(
            [
                str(TRAIN),
                "-m",
                "hparams_search=lr_batch_optimizer",
                "model=cnn",
                "tracking=none",
                "trainer.progress=none",
                *overrides,
            ],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"sweep failed:\n{done.stderr[-3000:]}")
    epochs = next(
        (
            line.split("] ", 1)[-1]
            for line in reversed(done.stderr.splitlines() + done.stdout.splitlines())
            if "epochs run" in line
        ),
        "",
    )
    return wall, epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU with tiny sizes")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("needs a CUDA GPU (torch sees none); --dry-run runs it on the CPU")
    device = "cpu" if args.dry_run else "cuda"
    repeats, n_samples, workers = (1, 700, 0) if args.dry_run else (args.repeats, 70_000, 4)
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (dry run: the figures mean nothing)"
    print(f"torch {torch.__version__}, {name}, {torch.cuda.device_count()} visible GPU(s)")

    loops = {"fp32": cnn_loop(device, "32", "device", n_samples, workers)}
    for label, precision in (("bf16", "bf16"), ("fp16+scaler", "16")):
        try:
            loops[label] = cnn_loop(device, precision, "device", n_samples, workers)
        except ConfigError as err:  # e.g. bf16 on a GPU older than Ampere
            print(f"  {label}: skipped ({err})")
    report(
        "1. CNN on 60,000 1x28x28, batch 128, device batches: precision",
        alternate({k: epoch_rate(v) for k, v in loops.items()}, repeats),
        "fp32",
    )

    paths = {"device": loops["fp32"], "dataloader": cnn_loop(device, "32", "dataloader", n_samples, workers)}
    report(
        f"2. the same, fp32: device-resident batches against a DataLoader ({workers} workers)",
        alternate({k: epoch_rate(v) for k, v in paths.items()}, repeats),
        "dataloader",
    )
    del loops, paths

    n_trials = 2 if args.dry_run else args.n_trials
    budget = ["trainer.max_epochs=1", "hydra.sweeper.n_jobs=1"] if args.dry_run else []  # no worker start-up
    base = [f"hydra.sweeper.n_trials={n_trials}", *budget]
    # one GPU, trials one after another; the CPU as sweepkit runs it by default (a trial per core at once)
    contenders = (
        {
            "cuda": [*base, "trainer.device=cuda", "hydra.sweeper.n_jobs=1"],
            "cpu": [*base, "trainer.device=cpu"],
        }
        if device == "cuda"
        else {"cpu": base}
    )
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    if gpus >= 2:
        contenders[f"{gpus} GPUs"] = [
            *base,
            "trainer.device=cuda",
            "hydra/launcher=local_parallel",
            f"hydra.sweeper.n_jobs={gpus}",
        ]
    print(
        f"\n3. sweep of {n_trials} trials (hparams_search=lr_batch_optimizer model=cnn, digits, no tracking): wall s"
    )
    walls = {}
    for label, overrides in contenders.items():
        walls[label], epochs = sweep_wall(overrides)
        print(f"  {label:11s} {walls[label]:8.1f} s   {epochs}", flush=True)
    if "cuda" in walls:
        print(f"  cuda / cpu wall = {walls['cuda'] / walls['cpu']:.3f}x")
    if f"{gpus} GPUs" in walls:
        print(
            f"  {gpus} GPUs / one GPU wall = {walls[f'{gpus} GPUs'] / walls['cuda']:.3f}x   (ideal {1 / gpus:.3f}x)"
        )


if __name__ == "__main__":
    main()
