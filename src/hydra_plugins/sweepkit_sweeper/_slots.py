"""Trials in flight: each launched on its own, from its own thread, so that a worker that finishes
takes the next trial at once instead of waiting for the slowest trial of its batch (pruned trials
end early; a batch-synchronous sweep would leave their workers idle)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class Slots:
    """At most ``size`` calls running at once, each in a thread; the sweep's main thread waits for them
    (and, there, sees stop signals: signals reach only the main thread)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._threads: dict[int, threading.Thread] = {}
        self._done: queue.Queue[int] = queue.Queue()
        self._errors: list[BaseException] = []

    def __len__(self) -> int:
        return len(self._threads)

    @property
    def free(self) -> int:
        return self.size - len(self._threads)

    def start(self, key: int, call: Callable[[], None]) -> None:
        thread = threading.Thread(
            target=self._run, args=(key, call), name=f"sweepkit-trial-{key}", daemon=True
        )
        self._threads[key] = thread
        thread.start()

    def _run(self, key: int, call: Callable[[], None]) -> None:
        try:
            call()
        except BaseException as err:  # re-raised in the main thread by wait()
            self._errors.append(err)
        finally:
            self._done.put(key)

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for one call to end; raise what a call raised."""
        try:
            key = self._done.get(timeout=timeout)
        except queue.Empty:
            return
        self._threads.pop(key).join()
        if self._errors:
            raise self._errors.pop(0)

    def drain(self, on_wait: Callable[[], None]) -> None:
        """Wait for every call to end, calling ``on_wait`` between short waits."""
        while self._threads:
            on_wait()
            try:
                key = self._done.get(timeout=0.2)
            except queue.Empty:
                continue
            self._threads.pop(key).join()
