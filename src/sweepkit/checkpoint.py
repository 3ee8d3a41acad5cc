"""Checkpoints written atomically and readable with ``torch.load(..., weights_only=True)``.

A save writes a temporary file in the same folder, flushes it to disk and renames it over the old
one: a crash mid-save leaves the previous checkpoint intact, never a truncated file. The file gets
the mode an ordinary file would (the umask honoured), so a team sharing a run folder can read it.

A training loop saves through a :class:`CheckpointWriter`: the state is serialized at once (later
steps cannot change what is written) and the file written in a thread of its own, so that training
goes on while the file system takes its time (tens of milliseconds per file on a busy disk, about as
long as an epoch on the bundled digits).
"""

from __future__ import annotations

import functools
import io
import os
import random
import tempfile
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

REQUIRED_KEYS = ("model", "loop")  # what every checkpoint written by TrainingLoop.save holds


class CheckpointError(ValueError):
    """A file that cannot be read as a sweepkit checkpoint; ``str(err)`` is the reason, one line."""


@functools.cache
def file_mode() -> int:
    """The mode ``open()`` would give a new file under this process's umask (0644 under 022).

    ``mkstemp`` makes its file 0600 whatever the umask; the umask can only be read by setting it.
    """
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def save_atomic(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` so that readers see the old file or the new one, never half."""
    return _write_atomic(_serialize(state), Path(path))


def _serialize(state: dict[str, Any]) -> memoryview:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer()


def _write_atomic(data: memoryview, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


class CheckpointWriter:
    """Saves checkpoints in the background, one at a time and in order of saving.

    :meth:`save` serializes the state in the caller's thread and returns; :meth:`wait` returns once every
    file saved so far is on disk and raises the first write error (a full disk stops the run where it
    would have stopped had the write been in line). Whoever reads the files waits first.
    """

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweepkit-checkpoint")
        self._pending: list[Future] = []

    def save(self, state: dict[str, Any], path: str | Path) -> Path:
        path = Path(path)
        self._pending.append(self._thread.submit(_write_atomic, _serialize(state), path))
        return path

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for write in pending:
            write.result()


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects.

    Raises CheckpointError for anything that is not one: an empty, truncated or foreign file. torch's
    own message for those advises ``weights_only=False``, the unsafe thing to do with a file of
    unknown origin, so it is not passed on.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise CheckpointError("is empty, not a checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about the pickle protocol of foreign files
            state = torch.load(path, map_location=map_location, weights_only=True)
    except (
        Exception
    ) as err:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError, ... for bad bytes
        raise CheckpointError(f"is corrupt or not a sweepkit checkpoint ({_damage(path, err)})") from None
    if not isinstance(state, dict) or not all(key in state for key in REQUIRED_KEYS):
        raise CheckpointError(f"is not a sweepkit checkpoint (it lacks {' and '.join(REQUIRED_KEYS)})")
    return state


def _damage(path: Path, err: Exception) -> str:
    """What is wrong, in a few words: torch writes zip archives, so a zip it cannot read was cut short."""
    with open(path, "rb") as handle:
        is_zip = handle.read(4) == b"PK\x03\x04"
    return "a truncated or damaged file" if is_zip else f"not a file torch wrote: {type(err).__name__}"


def capture_rng(generators: dict[str, torch.Generator], device: torch.device | None = None) -> dict[str, Any]:
    """Every random state a resumed run needs to continue exactly: torch, Python, the run's own
    generators, and the CUDA state of the training device alone (not of every visible GPU: a resume
    may see fewer)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(
    state: dict[str, Any], generators: dict[str, torch.Generator], device: torch.device | None = None
) -> list[str]:
    """The inverse of :func:`capture_rng`; returns what it could not restore (a checkpoint written on
    another kind of device holds no state for this one's generators), which then draws afresh."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    missing = []
    for name, g in generators.items():
        saved = state["generators"].get(name)
        try:
            if saved is None:
                raise RuntimeError(name)
            g.set_state(saved)
        except RuntimeError:  # a CPU generator's state does not fit a CUDA one, nor the reverse
            missing.append(f"the {name} generator")
    if device is not None and device.type == "cuda":
        cuda = state.get("cuda")
        if isinstance(cuda, list):  # older checkpoints: one state per GPU visible then
            cuda = cuda[device.index or 0] if (device.index or 0) < len(cuda) else None
        if cuda is None:
            missing.append("the CUDA RNG")
        else:
            torch.cuda.set_rng_state(cuda, device)
    return missing
