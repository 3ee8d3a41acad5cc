"""bench/sweep_peers.py runs (``--dry-run``: 2 trials of 1 epoch per contender) where its peer venvs exist."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "sweep_peers.py"
PEER_VENVS = [
    ROOT / ".bench-venvs" / name / ".installed" for name in ("optuna-sweeper", "optuna-mlflow-sweeper")
]


@pytest.mark.slow
@pytest.mark.skipif(
    not all(marker.exists() for marker in PEER_VENVS),
    reason="the peer venvs are missing: python bench/sweep_peers.py --dry-run makes them (minutes, from PyPI)",
)
def test_peer_benchmark_dry_run_runs_every_contender(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH), "--dry-run", "--seeds", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("   0  ")]
    assert [row[1] for row in rows] == ["sweepkit", "optuna-sweeper", "optuna-mlflow-sweeper"]
    assert all(row[2:4] == ["2", "2"] for row in rows), rows  # 2 trials, 2 epochs: nothing stopped early
    for peer in ("optuna-sweeper", "optuna-mlflow-sweeper"):
        assert f"sweepkit / {peer} wall:" in done.stdout
