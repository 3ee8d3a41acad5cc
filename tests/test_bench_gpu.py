"""bench/gpu.py runs on the CPU (``--dry-run``), so the GPU benchmark cannot rot before a GPU runs it."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"


@pytest.mark.slow
def test_gpu_benchmark_dry_run_prints_every_ratio(tmp_path):
    # All three parts run (precision, data path, a real sweep) and print their figures.
    done = subprocess.run(
        [sys.executable, str(BENCH), "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in (
        "bf16 / fp32 = ",
        "fp16+scaler / fp32 = ",
        "device / dataloader = ",
        "epochs run 2 of 2 budgeted",
    ):
        assert line in done.stdout, line
