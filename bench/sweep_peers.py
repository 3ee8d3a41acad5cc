"""The same sweep run by sweepkit and by the two Hydra Optuna sweepers on PyPI: wall time, equal work.

    python bench/sweep_peers.py [--seeds 0 1 2] [--n-trials 30] [--dry-run]

Contenders, each on ``hparams_search=lr_batch_optimizer``'s search space (30 trials of 12 epochs on
digits), TPE with the same seed and the preset's ``n_startup_trials``, no pruning, no tracking
(``tracking=none trainer.progress=none``), one trial at a time, each in a fresh temporary folder and a
fresh process, seeds interleaved (seed 0: sweepkit, peer A, peer B; seed 1: ...):

- sweepkit: ``sweepkit-train -m hparams_search=lr_batch_optimizer ... hydra.sweeper.n_jobs=1
  hydra.sweeper.pruner=NopPruner`` from the project's .venv (Optuna 5);
- optuna-sweeper: Hydra's own Optuna sweeper (``hydra-optuna-sweeper`` 1.2.0, Optuna 2.10, SQLAlchemy
  1.4), ``hydra/sweeper=optuna`` with ``n_jobs=1`` (batches of one trial), the basic launcher;
- optuna-mlflow-sweeper: ``hydra-optuna-mlflow-sweeper`` 0.1.3, ``hydra/sweeper=mlflow_optuna``, the
  basic launcher (one trial at a time). It requires optuna>=3 and mlflow>=2 (not optuna<3), and
  installs into the same package path as hydra-optuna-sweeper (``hydra_plugins/hydra_optuna_sweeper``),
  so the two cannot share a venv: it gets Optuna 5.1.0 and MLflow 3.17.2 (sweepkit's versions). With
  no ``trainer.logger.tracking_uri`` in the config it opens no MLflow run, but Hydra's plugin scan
  imports its module, and with it ``mlflow``, at the start of the sweep: that cost is its own.

Each peer runs sweepkit's own training app, unchanged: ``sweepkit-train`` (``sweepkit.train``, which
imports neither Optuna nor MLflow at module level) installed with ``pip install --no-deps -e`` into
the peer's venv beside the runtime modules it imports (torch, hydra-core, omegaconf, numpy, rich,
scikit-learn for the digits).
The peers get the preset's ``hydra.sweeper.params``, ``trainer.max_epochs``, objective (maximize
val/acc: the app returns the best epoch's val/acc) and trial count from a config this script writes
into the temporary folder (``--config-dir``, ``+bench=<peer>``), not ``hparams_search=``, which
selects sweepkit's sweeper. The peer venvs are made when missing, under .bench-venvs/<peer>, from
exact versions (the packages they share with the project's .venv at its versions).

Equal: the training app and its code, torch, hydra-core, numpy and scikit-learn versions, the search
space, epochs per trial, TPE seed and n_startup_trials, one trial at a time in the sweep's process,
checkpoints written per trial. Not equal: the Optuna version (2.10 for optuna-sweeper), and sweepkit
suggests the lr last, the peers in the order of the params, so the TPE draws (hence the best val/acc,
and how long the drawn batch sizes take to train) differ; what the sweeper does around the trials is
the subject: sweepkit keeps its study in an optuna.journal file and reports every epoch to its pruner
(NopPruner), the peers keep theirs in memory and their trials report no epochs; each venv's Hydra
plugin scan imports what it holds (all three: sweepkit's sweeper; .venv and optuna-mlflow-sweeper:
the joblib launcher; .venv: the submitit launcher).
Epochs run and the best val/acc are read from every trial's log (the app's "best val/acc ... (epoch i
of n, reason)" line), for all three alike; sweepkit's are checked against its study's record.

Ratios are ``sweepkit / <peer>``: medians over seeds of per-seed ratios, with their range, of the wall
time and of the time around the trials (wall less the trials' own time, each trial's log from its first
line to its last): the draws differ, and so does the training time of the batch sizes drawn, so the
second is the sweepers' cost at equal work.
``--dry-run``: 2 trials of 1 epoch each per contender (a smoke test, no ratios worth reading).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from common import Sweep, ratio

ROOT = Path(__file__).resolve().parents[1]
MAIN_VENV = ROOT / ".venv"
VENVS = ROOT / ".bench-venvs"
PRESET = "lr_batch_optimizer"
PRESET_FILE = ROOT / "src" / "sweepkit" / "conf" / "hparams_search" / f"{PRESET}.yaml"
# what sweepkit.train and a trial of it on digits import (nothing else of pyproject's dependencies), at
# the main venv's versions; torch from this machine's local index, with pip's configuration as `make install`
COMMON = [
    "torch==2.14.1",
    "hydra-core==1.3.8",
    "omegaconf==2.3.1",
    "numpy==2.4.6",
    "rich==15.0.0",
    "scikit-learn==1.9.1",  # the digits (sklearn.datasets.load_digits)
]


@dataclass(frozen=True)
class Peer:
    sweeper: str  # its hydra/sweeper config name
    packages: tuple[str, ...]


PEERS = {
    "optuna-sweeper": Peer(  # alembic 1.20 needs SQLAlchemy 2: its last release for 1.4
        "optuna",
        ("hydra-optuna-sweeper==1.2.0", "optuna==2.10.1", "sqlalchemy==1.4.54", "alembic==1.19.2"),
    ),
    "optuna-mlflow-sweeper": Peer(
        "mlflow_optuna", ("hydra-optuna-mlflow-sweeper==0.1.3", "optuna==5.1.0", "mlflow==3.17.2")
    ),
}
CONTENDERS = ["sweepkit", *PEERS]


@dataclass
class PeerSweep(Sweep):
    trials_s: float  # the trials' own time, as their logs span it (first line to last, summed)

    @property
    def around_s(self) -> float:
        """The sweep's time beyond its trials' own: what the sweeper and its process cost."""
        return self.wall_s - self.trials_s


def step(message: str) -> None:
    print(f"-- {message}", flush=True)


def quietly(argv: list[str]) -> None:
    """A setup command; its output only when it fails (pip warns of every local index it skips)."""
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str) -> None:
    """The peer's venv, made when missing or when its package list changed: exact versions, the others
    pinned to the main venv's versions where they meet."""
    python = venv_python(name)
    packages = [*COMMON, *PEERS[name].packages]
    marker = VENVS / name / ".installed"  # the packages asked for, then what pip freeze found
    if marker.exists() and marker.read_text().split("\n\n")[0] == " ".join(packages):
        return
    if not python.exists():
        base = subprocess.run(
            [str(MAIN_VENV / "bin" / "python"), "-c", "import sys; print(sys._base_executable)"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        step(f"{name}: python -m venv {VENVS / name} ({base})")
        quietly([base, "-m", "venv", str(VENVS / name)])
    pinned = {p.split("==")[0].lower().replace("_", "-") for p in packages}
    freeze = subprocess.run(
        [str(MAIN_VENV / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    constraints = VENVS / name / "constraints.txt"
    constraints.write_text(
        "".join(
            f"{line}\n"
            for line in freeze
            if "==" in line and line.split("==")[0].lower().replace("_", "-") not in pinned
        )
    )
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    step(f"{name}: pip install {' '.join(packages)} (the others as in .venv: {constraints})")
    quietly([*pip, "-c", str(constraints), *packages])
    step(f"{name}: pip install --no-deps -e {ROOT}")
    quietly([*pip, "--no-deps", "-e", str(ROOT)])
    step(f"{name}: import sweepkit.train")
    quietly([str(python), "-c", "import sweepkit.train"])
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], check=True, capture_output=True, text=True)
    marker.write_text(" ".join(packages) + "\n\n" + freeze.stdout)


def preset() -> dict:
    """What the peers take from the preset: its search space, epochs, objective and TPE settings."""
    spec = yaml.safe_load(PRESET_FILE.read_text())
    sampler = spec["hydra"]["sweeper"]["sampler"]
    assert sampler["_target_"] == "optuna.samplers.TPESampler", sampler
    assert spec["objective"]["mode"] == "max", spec["objective"]
    return {
        "params": dict(spec["hydra"]["sweeper"]["params"]),
        "max_epochs": spec["trainer"]["max_epochs"],
        "objective": spec["objective"],
        "n_startup_trials": sampler["n_startup_trials"],
    }


def peer_config(name: str, seed: int, n_trials: int, max_epochs: int) -> dict:
    """The ``+bench=<name>`` config: the preset's sweep for the peer's sweeper."""
    spec = preset()
    sampler = {"seed": seed, "n_startup_trials": spec["n_startup_trials"]}
    settings = {
        "study_name": "bench",
        "direction": "maximize",
        "n_trials": n_trials,
        "params": spec["params"],
    }
    if name == "optuna-sweeper":
        sweeper = {**settings, "n_jobs": 1, "sampler": sampler}
    else:
        sweeper = {
            "optuna_config": {
                **settings,
                "append_config_hash": False,
                "sampler": {"_target_": "optuna.samplers.TPESampler", **sampler},
            }
        }
    return {
        "defaults": [{"override /hydra/sweeper": PEERS[name].sweeper}],
        "objective": spec["objective"],
        "trainer": {"max_epochs": max_epochs},
        "hydra": {"mode": "MULTIRUN", "sweep": {"dir": "multirun/bench"}, "sweeper": sweeper},
    }


def command(name: str, folder: Path, seed: int, n_trials: int, max_epochs: int | None) -> list[str]:
    common = ["tracking=none", "trainer.progress=none"]
    if max_epochs is not None:
        common.append(f"trainer.max_epochs={max_epochs}")
    if name == "sweepkit":
        return [
            str(MAIN_VENV / "bin" / "sweepkit-train"),
            "-m",
            f"hparams_search={PRESET}",
            f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweeper.sampler.seed={seed}",
            "hydra.sweeper.study_name=bench",
            "hydra.sweeper.n_jobs=1",
            "hydra.sweeper.pruner=NopPruner",
            *common,
        ]
    config = peer_config(name, seed, n_trials, max_epochs or preset()["max_epochs"])
    (folder / "conf" / "bench").mkdir(parents=True)
    (folder / "conf" / "bench" / f"{name}.yaml").write_text(
        "# @package _global_\n" + yaml.safe_dump(config, sort_keys=False)
    )
    return [
        str(VENVS / name / "bin" / "sweepkit-train"),
        "--config-dir",
        str(folder / "conf"),
        "-m",
        f"+bench={name}",
        *common,
    ]


BEST_LINE = re.compile(r"best val/acc (\S+) .*\(epoch \d+ of (\d+), ")
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", re.MULTILINE)  # Hydra's job log lines


def from_logs(sweep_dir: Path) -> tuple[int, int, float, float]:
    """Trials, epochs run, the best val/acc (the app's summary line in each trial's log) and the trials'
    own seconds (each log's first line to its last: the same app phases for every contender)."""
    trials, epochs, best, seconds = 0, 0, float("-inf"), 0.0
    for log in sorted(sweep_dir.glob("*/*.log")):
        text = log.read_text()
        found = BEST_LINE.findall(text)
        if found:
            value, ran = found[-1]
            trials += 1
            epochs += int(ran)
            best = max(best, float(value))
            stamps = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in STAMP.findall(text)]
            seconds += (stamps[-1] - stamps[0]).total_seconds()
    return trials, epochs, best, seconds


def run_contender(name: str, seed: int, n_trials: int, max_epochs: int | None) -> PeerSweep:
    with tempfile.TemporaryDirectory(prefix="sweep-peers-") as tmp:
        folder = Path(tmp)
        argv = command(name, folder, seed, n_trials, max_epochs)
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(
                f"{name} failed ({done.returncode}):\n{' '.join(argv)}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        trials, epochs, best, trials_s = from_logs(folder / "multirun" / "bench")
        if name == "sweepkit":  # its own record of the study agrees with the logs
            import optuna

            from sweepkit import studies

            study = optuna.load_study(
                study_name="bench", storage=studies.open_storage(str(folder / "optuna.journal"))
            )
            recorded = studies.summarize(study).epochs_run
            assert (len(study.trials), recorded) == (trials, epochs), (study.trials, recorded, epochs)
            assert abs(study.best_value - best) <= 5e-5, (study.best_value, best)  # logged to 4 places
        assert trials == n_trials, f"{name}: {trials} trial logs with a summary, expected {n_trials}"
        return PeerSweep(wall, trials, epochs, best, trials_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--dry-run", action="store_true", help="2 trials of 1 epoch each per contender")
    args = parser.parse_args()
    n_trials, max_epochs = (2, 1) if args.dry_run else (args.n_trials, None)
    full_epochs = n_trials * (max_epochs or preset()["max_epochs"])

    for name in PEERS:
        ensure_venv(name)

    results: dict[str, list[PeerSweep]] = {name: [] for name in CONTENDERS}
    print(
        f"{'seed':>4}  {'sweep':<22} {'trials':>6} {'epochs':>6} {'best':>7} {'wall s':>7} {'trials s':>8} {'around s':>8}"
    )
    for seed in args.seeds:
        for name in CONTENDERS:
            result = run_contender(name, seed, n_trials, max_epochs)
            results[name].append(result)
            note = "" if result.epochs == full_epochs else f"  (not {full_epochs}: a trial stopped early)"
            print(
                f"{seed:>4}  {name:<22} {result.trials:>6} {result.epochs:>6} {result.best:>7.4f} "
                f"{result.wall_s:>7.1f} {result.trials_s:>8.1f} {result.around_s:>8.1f}{note}",
                flush=True,
            )

    print()
    for name in PEERS:
        ours, theirs = results["sweepkit"], results[name]
        print(
            f"sweepkit / {name + ' wall:':<28} {ratio([s.wall_s for s in ours], [s.wall_s for s in theirs])}"
        )
        around = ratio([s.around_s for s in ours], [s.around_s for s in theirs])
        print(
            f"sweepkit / {name + ' time around trials:':<28} {around}   (the draws differ: this is equal work)"
        )


if __name__ == "__main__":
    main()
