"""Runs a plan: independent steps concurrently, each with its timeout, every transition journaled as it happens.

The critical path decides the wall time: a step starts the moment its dependencies have succeeded. A step that
already succeeded in the journal is not run again (that is resume). On the first failure no new step starts, the
running ones finish, and the run is recorded as failed; the lock is released either way, except when the process dies,
which leaves the lock to tell the next operator to resume or unlock.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from graphlib import TopologicalSorter
from typing import Protocol

from dr_runbooks.engine import calls
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import RunRecord, StepRecord
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.engine.plan import Plan, Step

#: A step thread that overruns its timeout by this much is declared failed without waiting for it any longer.
TIMEOUT_GRACE_SECONDS = 1.0


class Listener(Protocol):
    """Progress for people (rich) or machines; called from the runner's thread."""

    def step_started(self, step: Step) -> None: ...

    def step_ended(self, step: Step, record: StepRecord) -> None: ...


class _Silent:
    def step_started(self, step: Step) -> None:
        pass

    def step_ended(self, step: Step, record: StepRecord) -> None:
        pass


def run_step(ctx: RunContext, step: Step) -> StepRecord:
    """Run one step and journal its start and end: the unit a Lambda task of the Step Functions version runs too."""
    started = time.time()
    ctx.journal.record_step(ctx.run.run_id, StepRecord(name=step.name, status="running", started_at=started))
    recorder = calls.Recorder(parent=calls.current())
    with calls.recording(recorder):
        try:
            outputs = step.resolve()(ctx.for_step(step)) or {}
            status, error = "succeeded", None
        except Exception as exc:  # a failed step is an outcome to journal, whatever its type
            outputs, status, error = {}, "failed", f"{type(exc).__name__}: {exc}"
    record = StepRecord(
        name=step.name,
        status=status,
        started_at=started,
        ended_at=time.time(),
        outputs=outputs,
        error=error,
        calls=recorder.calls,
        call_count=recorder.call_count,
        busy_seconds=calls.busy_seconds(recorder.intervals),
    )
    ctx.journal.record_step(ctx.run.run_id, record)
    return record


def execute(
    plan: Plan, ctx: RunContext, lock: RunLock, listener: Listener | None = None, max_workers: int = 4
) -> RunRecord:
    """Take the lock, run every step not yet succeeded, journal the outcome, release the lock."""
    plan.verify_actions()
    listener = listener or _Silent()
    run = ctx.run
    lock.acquire(run.run_id, run.operator)
    if run.status != "running":
        run.status, run.error, run.ended_at = "running", None, None
    ctx.journal.start(run)
    failure = _drive(plan, ctx, lock, listener, max_workers)
    ctx.journal.finish(run.run_id, "failed" if failure else "succeeded", failure)
    lock.release(run.run_id)
    return run


def _drive(plan: Plan, ctx: RunContext, lock: RunLock, listener: Listener, max_workers: int) -> str | None:
    sorter = TopologicalSorter(plan.graph())
    sorter.prepare()
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"step-{plan.runbook}")
    running: dict[Future[StepRecord], tuple[Step, float]] = {}
    failure: str | None = None
    try:
        # After a failure nothing new starts, but the running steps still end (or time out) and are journaled.
        while running or (failure is None and sorter.is_active()):
            for name in sorter.get_ready() if failure is None else ():
                step = plan.step(name)
                done_before = ctx.run.steps.get(name)
                if done_before is not None and done_before.status == "succeeded":
                    sorter.done(name)
                    continue
                listener.step_started(step)
                future = pool.submit(contextvars.copy_context().run, run_step, ctx, step)
                running[future] = (step, time.time() + step.timeout_seconds + TIMEOUT_GRACE_SECONDS)
            if not running:
                continue
            nearest = min(deadline for _, deadline in running.values())
            finished, _ = wait(running, timeout=max(nearest - time.time(), 0.0), return_when=FIRST_COMPLETED)
            for future in finished:
                step, _ = running.pop(future)
                record = future.result()
                lock.refresh(ctx.run.run_id)
                listener.step_ended(step, record)
                if record.status == "succeeded":
                    sorter.done(step.name)
                else:
                    failure = failure or f"step {step.name} failed: {record.error}"
            for future, (step, deadline) in list(running.items()):
                if not future.done() and time.time() > deadline:
                    running.pop(future)
                    record = _timed_out(ctx, step)
                    listener.step_ended(step, record)
                    failure = failure or f"step {step.name} failed: {record.error}"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return failure


def _timed_out(ctx: RunContext, step: Step) -> StepRecord:
    started = ctx.run.steps[step.name].started_at if step.name in ctx.run.steps else time.time()
    record = StepRecord(
        name=step.name,
        status="failed",
        started_at=started,
        ended_at=time.time(),
        error=f"timed out after {step.timeout_seconds:g} s",
    )
    ctx.journal.record_step(ctx.run.run_id, record)
    return record
