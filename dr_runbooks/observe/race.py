"""Run probes side by side in daemon threads and stop waiting at a deadline.

Daemon threads rather than a ThreadPoolExecutor: the interpreter joins an executor's workers at exit, so one probe
stuck on a dark region's endpoint would hold `drctl status` past its 10-second promise after it has printed.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)


def start(probes: dict[K, Callable[[], Any]]) -> dict[K, Future[Any]]:
    """Start every probe now; each future holds its result or its exception once it ends."""
    futures: dict[K, Future[Any]] = {key: Future() for key in probes}
    for key, probe in probes.items():
        future = futures[key]

        def target(probe: Callable[[], Any] = probe, future: Future[Any] = future) -> None:
            try:
                future.set_result(probe())
            except Exception as error:  # the caller decides what a failed probe means
                future.set_exception(error)

        threading.Thread(target=contextvars.copy_context().run, args=(target,), daemon=True).start()
    return futures
