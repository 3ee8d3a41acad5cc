"""The integrity of an Optuna journal file, checked before a sweep writes to it.

Optuna appends one JSON record per line. A write cut short (power loss, a full disk, an NFS hiccup)
leaves an incomplete last line, which Optuna's reader skips; but the next append would be glued to
it, and from then on every reader fails. So before a sweep writes, the torn tail is cut off and kept
beside the journal (``optuna.journal.torn-<time>``), under the journal's own lock so that no other
writer is mid-append. A line that is not a record anywhere else is damage this cannot repair: it is
named by file and line, and nothing is appended.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sweepkit.errors import ConfigError

log = logging.getLogger("sweepkit")
STORAGE_KEY = "hydra.sweeper.storage"


@dataclass(frozen=True)
class Scan:
    """Where the journal's complete records end, and the torn tail after them (if any)."""

    good_bytes: int
    torn_tail: bytes


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "op_code" in record


def scan(path: Path) -> Scan:
    """Read the journal; raise ConfigError naming the line of a corrupt record before the last."""
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    offset = 0
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        if not (line.endswith(b"\n") and _is_record(line)):
            if is_last:
                return Scan(offset, line)
            raise ConfigError(
                STORAGE_KEY,
                str(path),
                f"is corrupt at line {number} of {len(lines)} (not an Optuna journal record): restore it from a "
                "backup, or move it aside to start a new study",
            )
        offset += len(line)
    return Scan(offset, b"")


def check(path: Path) -> None:
    """For readers: a journal whose records all parse (a torn tail is fine: Optuna skips it)."""
    if path.is_file():
        scan(path)


def repair(path: Path) -> Path | None:
    """For writers, before the first write: cut a torn tail off and keep it beside the journal.

    Returns where the tail was kept, or None when there was nothing to repair.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return None
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))  # the lock Optuna's own appends take
    lock.acquire()
    try:
        found = scan(path)
        if not found.torn_tail:
            return None
        kept = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        kept.write_bytes(found.torn_tail)
        with open(path, "r+b") as handle:
            handle.truncate(found.good_bytes)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        lock.release()
    log.warning(
        "%s ended in a torn record (%d bytes, a write cut short): cut off and kept in %s",
        path,
        len(found.torn_tail),
        kept,
    )
    return kept
