"""Work the sandbox does on a schedule of its own, as AWS's schedulers would (EventBridge Scheduler's heartbeat,
AWS Backup's plans): a daemon thread calling one function every `interval` seconds until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    """Calls `work` every `interval` seconds (none when `interval` is falsy: the schedule is off) from `start()` to
    `stop()`. A run that raises is logged and the schedule goes on, as a scheduler's next invocation would."""

    def __init__(self, name: str, interval: float | None, work: Callable[[], object], log: logging.Logger) -> None:
        self.name, self.interval, self.work, self.log = name, interval, work, log
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self.interval
        while not self._stopped.wait(self.interval):
            try:
                self.work()
            except Exception:  # a fault mid-run (a node killed, a region dark): the next run comes anyway
                self.log.exception("%s: a scheduled run failed", self.name)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
