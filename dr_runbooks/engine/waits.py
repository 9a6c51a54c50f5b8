"""Step-level waits: poll a status transition with tenacity until it holds or the step's deadline passes.

API-level retries (throttling, 5xx, connection resets) are botocore's, configured in `session.py`; this is the other
kind of waiting, for a global cluster to finish switching over or a canary to replicate. Sleeps are recorded as
waiting time, so the benchmark can tell the runbook's own overhead from time spent waiting on AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_random_exponential

from dr_runbooks.engine import calls
from dr_runbooks.engine.context import RunContext

T = TypeVar("T")


class WaitTimeout(Exception):
    """The awaited condition did not hold before the step's deadline."""


def _recorded_sleep(seconds: float) -> None:
    with calls.waiting():
        time.sleep(seconds)


def wait_until(ctx: RunContext, probe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    """Call `probe` until `done(result)`, with jittered exponential backoff, until the step's deadline."""
    assert ctx.step is not None, "wait_until runs inside a step"
    remaining = max(ctx.deadline - time.time(), 0.0)
    policy = ctx.step.poll
    retrying = Retrying(
        retry=retry_if_result(lambda result: not done(result)),
        wait=wait_random_exponential(multiplier=policy.initial_seconds, max=policy.maximum_seconds),
        stop=stop_after_delay(remaining),
        sleep=_recorded_sleep,
    )
    try:
        return retrying(probe)
    except RetryError as error:
        last = error.last_attempt.result() if not error.last_attempt.failed else error.last_attempt.exception()
        raise WaitTimeout(f"{what}: not reached within {ctx.step.timeout_seconds:.0f} s (last seen: {last})") from None
