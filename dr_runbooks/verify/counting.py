"""Counting the HTTP requests S3 clients send (retries included), to report requests per object."""

from __future__ import annotations

import threading
from typing import Any


class RequestCounter:
    """Hooks botocore's `before-send` event of each attached client; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self._attached: set[int] = set()

    def attach(self, client: Any) -> Any:
        """Count `client`'s requests from now on (attaching the same client twice counts it once)."""
        if id(client) not in self._attached:
            self._attached.add(id(client))
            client.meta.events.register("before-send.s3", self._sent)
        return client

    def _sent(self, **_: Any) -> None:
        with self._lock:
            self.count += 1

    def __call__(self) -> int:
        return self.count
