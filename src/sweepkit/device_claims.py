"""One training run per GPU on a machine: each process claims a GPU through a lock file.

Parallel trials on one machine (joblib's workers, submitit_local's jobs, a second sweep started by
hand) see the same GPUs and would all pick ``cuda:0``. Instead each run takes the lowest free slot:
slot ``s`` is GPU ``s % n`` of the ``n`` visible ones, held as an exclusive ``flock`` on
``<lock dir>/<GPU uuid>.<s // n>``. A run therefore gets a GPU of its own while one is free, and GPUs
are shared evenly once there are more runs than GPUs. The kernel drops a lock when its process ends,
however it ends, so a crashed worker never keeps its GPU. Locks are named by each GPU's uuid, so
processes that see different subsets (``CUDA_VISIBLE_DEVICES``) still agree on which GPU is which.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no flock; every run takes the first GPU, as without claims
    fcntl = None  # type: ignore[assignment]

MAX_SHARING = 64  # runs per GPU before giving up on a free slot (no machine runs this many)


def lock_dir() -> Path:
    """Where this user's claims live: shared by every process of the user on this machine."""
    return (
        Path(tempfile.gettempdir())
        / f"sweepkit-gpu-claims-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    )


@dataclass
class Claim:
    """A held slot on one GPU; released by :meth:`release` or when the process ends."""

    index: int  # among the visible GPUs: the run trains on cuda:<index>
    share: int  # 0: the GPU was free; k: k other runs hold it too
    handle: IO[bytes] | None

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file drops the flock
            self.handle = None


def claim(keys: Sequence[str], folder: Path, prefer: int | None = None) -> Claim:
    """Take the lowest free slot among the GPUs named ``keys`` (one stable name per visible GPU).

    ``prefer`` (this process's previous GPU) goes first among GPUs of equal sharing: a reused worker
    keeps its one CUDA context instead of opening another on a second GPU.
    """
    order = sorted(range(len(keys)), key=lambda i: i != prefer)
    if fcntl is None or not keys:
        return Claim(order[0] if keys else 0, 0, None)
    folder.mkdir(parents=True, exist_ok=True)
    for share in range(MAX_SHARING):
        for index in order:
            handle = open(folder / f"{keys[index]}.{share}", "ab")  # noqa: SIM115 (held open: the lock lives with it)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            return Claim(index, share, handle)
    return Claim(order[0], MAX_SHARING, None)
