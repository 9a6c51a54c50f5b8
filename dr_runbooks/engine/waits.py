"""Step-level waits: poll a status transition with tenacity until it holds or the step's deadline passes.

API-level retries (throttling, 5xx, connection resets) are botocore's, configured in `session.py`; this is the other
kind of waiting, for a global cluster to finish switching over or a canary to replicate. Sleeps are recorded as
waiting time, so the benchmark can tell the runbook's own overhead from time spent waiting on AWS.

A wait also stops at the invocation's deadline (`RunContext.invocation_deadline`): a Lambda task lives at most 900 s
while a restore takes up to an hour, so there the wait hands back with `StepPending` and the state machine invokes
the step again after a pause; the step continues from what it checkpointed.

A long wait is never silent: every `PROGRESS_SECONDS` it prints (stderr; the function's log in Lambda) what it waits
for, how long so far and its deadline, so an operator holding the lock sees why.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_result,
    stop_after_delay,
    stop_before_delay,
    wait_random_exponential,
)

from dr_runbooks.engine import calls
from dr_runbooks.engine.context import RunContext

T = TypeVar("T")

#: How often a wait says it is still waiting.
PROGRESS_SECONDS = 30.0


class WaitTimeout(Exception):
    """The awaited condition did not hold before the step's deadline."""


class StepPending(Exception):
    """The invocation's deadline came before the awaited condition held: invoke the step again after
    `resume_after_seconds` (whole seconds, at least 1, as a Step Functions Wait state takes them)."""

    def __init__(self, what: str, resume_after_seconds: int) -> None:
        super().__init__(f"{what}: still waiting, resume after {resume_after_seconds} s")
        self.resume_after_seconds = resume_after_seconds


def _recorded_sleep(seconds: float) -> None:
    with calls.waiting():
        time.sleep(seconds)


def _progress(what: str, deadline: float, every: float) -> Callable[[RetryCallState], None]:
    """A tenacity `before_sleep` hook printing a line about the wait at most every `every` seconds."""
    started = last = time.time()

    def report(state: RetryCallState) -> None:
        nonlocal last
        now = time.time()
        if now - last < every:
            return
        last = now
        until = ("no deadline" if math.isinf(deadline) else
                 f"deadline {datetime.fromtimestamp(deadline, UTC):%H:%M:%S} UTC, in {deadline - now:.0f} s")
        print(f"  … waiting for {what}: {now - started:.0f} s so far ({until})", file=sys.stderr, flush=True)

    return report


def wait_until(ctx: RunContext, probe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    """Call `probe` until `done(result)`, with jittered exponential backoff, until the step's deadline (then
    `WaitTimeout`) or, when that comes first, the invocation's deadline (then `StepPending`)."""
    assert ctx.step is not None, "wait_until runs inside a step"
    now = time.time()
    step_left = max(ctx.deadline - now, 0.0)
    invocation_left = max(ctx.invocation_deadline - now, 0.0)
    handing_back = invocation_left < step_left
    policy = ctx.step.poll
    retrying = Retrying(
        retry=retry_if_result(lambda result: not done(result)),
        wait=wait_random_exponential(multiplier=policy.initial_seconds, max=policy.maximum_seconds),
        # Handing back must not sleep past the invocation's end (Lambda would kill the task mid-sleep).
        stop=stop_before_delay(invocation_left) if handing_back else stop_after_delay(step_left),
        sleep=_recorded_sleep,
        before_sleep=_progress(what, ctx.deadline, PROGRESS_SECONDS),
    )
    try:
        return retrying(probe)
    except RetryError as error:
        if handing_back:
            pause = min(policy.maximum_seconds, max(ctx.deadline - time.time(), 0.0))
            raise StepPending(what, max(math.ceil(pause), 1)) from None
        last = error.last_attempt.result() if not error.last_attempt.failed else error.last_attempt.exception()
        raise WaitTimeout(f"{what}: not reached within {ctx.step.timeout_seconds:.0f} s (last seen: {last})") from None
