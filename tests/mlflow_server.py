"""A real MLflow server on a free loopback port, for tests: ``mlflow ui`` or ``mlflow server``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from postgres import free_port

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 90


@contextmanager
def serve_mlflow(cwd: Path, *args: str) -> Iterator[str]:
    """``mlflow <args> --host 127.0.0.1 --port <free>`` in ``cwd``; yields its base URL, stops it after."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job-runner processes for a test
    log_path = cwd / "server.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [str(VENV_BIN / "mlflow"), *args, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=cwd,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, server, log_path)
            yield url
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def wait_healthy(url: str, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"mlflow did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.2)
