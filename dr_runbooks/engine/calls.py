"""Which AWS calls a step made, and when: the journal's "calls" and the benchmark's overhead both come from here.

A runbook's wall time is spent either waiting on AWS (an API call in flight, or a poll sleeping until a status
changes) or in the runbook itself. Recording every call and every poll sleep as an interval lets the journal show the
exact calls of each step and lets `benchmarks/failover.py` compute the runbook's own overhead as wall time minus the
union of those intervals. The current recorder is a context variable, so concurrent steps never mix their calls.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

#: Request parameters whose values never go into a journal (they may carry PHI or secrets).
_REDACTED = frozenset({"Body", "SecretString", "SecretBinary", "Password", "MasterUserPassword", "TokenCode"})
#: A polling step may call the same API hundreds of times; the journal keeps the first ones and counts the rest.
MAX_CALLS_KEPT = 60


class CallRecord(BaseModel):
    """One AWS API call as the journal shows it."""

    service: str
    operation: str
    region: str
    params: dict[str, Any]
    started: float
    seconds: float = 0.0
    retries: int = 0
    error: str | None = None


class Recorder:
    """Collects the calls and waits of one step; thread-safe. Whatever it records also goes to `parent`, so a
    recorder around a whole run (the benchmark's) sees every call, in steps or not."""

    def __init__(self, parent: Recorder | None = None) -> None:
        self.parent = parent
        self._lock = threading.Lock()
        self.calls: list[CallRecord] = []
        self.calls_dropped = 0
        self.call_count = 0
        self.intervals: list[tuple[float, float]] = []

    def add_call(self, call: CallRecord) -> None:
        with self._lock:
            self.call_count += 1
            self.intervals.append((call.started, call.started + call.seconds))
            if len(self.calls) < MAX_CALLS_KEPT:
                self.calls.append(call)
            else:
                self.calls_dropped += 1
        if self.parent is not None:
            self.parent.add_call(call)

    def add_wait(self, started: float, ended: float) -> None:
        with self._lock:
            self.intervals.append((started, ended))
        if self.parent is not None:
            self.parent.add_wait(started, ended)


_current: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar("ehr_dr_recorder", default=None)


@contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    """Attribute every AWS call made in this context (this thread, or a context copied from it) to `recorder`."""
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        _current.reset(token)


def current() -> Recorder | None:
    return _current.get()


@contextmanager
def waiting() -> Iterator[None]:
    """Time spent waiting on something that is not an AWS API call (a poll's sleep, a database query)."""
    started = time.time()
    try:
        yield
    finally:
        recorder = _current.get()
        if recorder is not None:
            recorder.add_wait(started, time.time())


def _summarise(params: dict[str, Any]) -> dict[str, Any]:
    return {key: "<redacted>" if key in _REDACTED else _short(value) for key, value in params.items()}


def _short(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "..."
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


class CallHooks:
    """botocore event handlers that time each API call (retries included) and file it with the current recorder.

    Registered on every client of an `AwsSession`; botocore's per-request context carries the operation, its start
    and its parameters from `before-parameter-build` to `after-call`/`after-call-error`, so threads share no state.
    """

    def __init__(self, service: str, region: str) -> None:
        self.service = service
        self.region = region

    def register(self, events: Any) -> None:
        events.register("before-parameter-build", self.before_call)
        events.register("after-call", self.after_call)
        events.register("after-call-error", self.after_call_error)

    def before_call(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["ehr_dr_call"] = (model.name, time.time(), _summarise(params))

    def after_call(self, parsed: Any, context: dict[str, Any], **_: Any) -> None:
        error = parsed.get("Error", {}).get("Code") if isinstance(parsed, dict) else None
        retries = parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0) if isinstance(parsed, dict) else 0
        self._file(context, retries=retries, error=error)

    def after_call_error(self, context: dict[str, Any], exception: Exception, **_: Any) -> None:
        self._file(context, retries=0, error=type(exception).__name__)

    def _file(self, context: dict[str, Any], retries: int, error: str | None) -> None:
        recorder = _current.get()
        call = context.pop("ehr_dr_call", None)
        if recorder is None or call is None:
            return
        operation, started, params = call
        recorder.add_call(
            CallRecord(
                service=self.service,
                operation=operation,
                region=self.region,
                params=params,
                started=started,
                seconds=time.time() - started,
                retries=retries,
                error=error,
            )
        )


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of intervals: the time at least one AWS call or poll wait was in progress."""
    total = 0.0
    end = float("-inf")
    for start, stop in sorted(intervals):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total
