"""Runs a plan: independent steps concurrently, each with its timeout, every transition journaled as it happens.

The critical path decides the wall time: a step starts the moment its dependencies have succeeded. A step that
already succeeded in the journal is not run again (that is resume); one journaled "waiting" or "running" is run again
and continues from its checkpoints. On the first failure no new step starts, the
running ones finish, and the run is recorded as failed; the lock is released either way. While the run goes on, its
lease is renewed in the background; a run that stops without ending (an exception, Ctrl-C) keeps its lock with its
lease expired, and a killed process lets it expire: the next operator sees a dead holder and resumes or unlocks.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from graphlib import TopologicalSorter
from typing import Any, Protocol

from dr_runbooks.engine import calls
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import RunRecord, StepRecord
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.engine.plan import TIMEOUT_GRACE_SECONDS, Plan, Step
from dr_runbooks.engine.waits import StepPending


class Listener(Protocol):
    """Progress for people (rich) or machines; called from the runner's thread."""

    def step_started(self, step: Step) -> None: ...

    def step_ended(self, step: Step, record: StepRecord) -> None: ...


class _Silent:
    def step_started(self, step: Step) -> None:
        pass

    def step_ended(self, step: Step, record: StepRecord) -> None:
        pass


def first_start(before: StepRecord | None) -> float:
    """When the step's current attempt started: a waiting step keeps its first invocation's start, so its deadline
    (start + timeout) holds across invocations and re-invoking it cannot wait forever; any other attempt is new."""
    return before.started_at if before is not None and before.status == "waiting" else time.time()


def run_step(ctx: RunContext, step: Step) -> StepRecord:
    """Run one invocation of a step and journal its start and end: the unit a Lambda task of the Step Functions
    version runs too. Returns the journaled record, whose status is "succeeded", "failed", or "waiting": the step
    handed back at `ctx.invocation_deadline` (`StepPending`) and must be invoked again after the record's
    `resume_after_seconds`.

    An earlier attempt that handed back ("waiting") or died mid-step ("running": a killed process, a timed-out
    Lambda) is continued: its checkpoints (`progress`) and the AWS calls it journaled are kept. A failed step starts
    afresh (its checkpoints name what failed)."""
    before = ctx.journal.step_record(ctx.run.run_id, step.name)
    started = first_start(before)
    carried = _carried(before)
    ctx.journal.record_step(ctx.run.run_id, StepRecord(name=step.name, status="running", started_at=started,
                                                       **carried))
    recorder = calls.Recorder(parent=calls.current())
    resume_after: int | None = None
    with calls.recording(recorder):
        try:
            outputs = step.resolve()(ctx.for_step(step, started)) or {}
            status, error = "succeeded", None
        except StepPending as pending:
            outputs, status, error, resume_after = {}, "waiting", None, pending.resume_after_seconds
        except Exception as exc:  # a failed step is an outcome to journal, whatever its type
            outputs, status, error = {}, "failed", f"{type(exc).__name__}: {exc}"
    now = ctx.journal.step_record(ctx.run.run_id, step.name)
    record = StepRecord(
        name=step.name,
        status=status,
        started_at=started,
        ended_at=time.time(),
        outputs=outputs,
        error=error,
        calls=[*carried["calls"], *recorder.calls],
        call_count=carried["call_count"] + recorder.call_count,
        busy_seconds=carried["busy_seconds"] + calls.busy_seconds(recorder.intervals),
        progress=now.progress if now is not None else {},
        resume_after_seconds=resume_after,
    )
    ctx.journal.record_step(ctx.run.run_id, record)
    return record


def _carried(before: StepRecord | None) -> dict[str, Any]:
    """What an unfinished earlier attempt ("waiting", or "running" when it died) hands on to this one."""
    if before is None or before.status not in ("waiting", "running"):
        return {"progress": {}, "calls": [], "call_count": 0, "busy_seconds": 0.0}
    return {"progress": before.progress, "calls": before.calls, "call_count": before.call_count,
            "busy_seconds": before.busy_seconds}


def execute(
    plan: Plan, ctx: RunContext, lock: RunLock | None, listener: Listener | None = None, max_workers: int = 4
) -> RunRecord:
    """Take the lock (if the plan takes one) and renew its lease while running every step not yet succeeded, journal
    the outcome, release it.

    A plan with `locks=False` (a game day, whose legs are runs of their own that take the lock) needs no `lock`."""
    plan.verify_actions()
    if plan.locks and lock is None:
        raise ValueError(f"plan {plan.runbook!r} takes the runbook lock: pass one")
    held = lock if plan.locks else None
    listener = listener or _Silent()
    run = ctx.run
    if held is not None:
        held.acquire(run.run_id, run.operator)
        held.renew_in_background(run.run_id)
    try:
        if run.status != "running":
            run.status, run.error, run.ended_at = "running", None, None
        ctx.journal.start(run)
        failure = _drive(plan, ctx, held, listener, max_workers)
        ctx.journal.finish(run.run_id, "failed" if failure else "succeeded", failure)
    except BaseException:
        if held is not None:
            held.expire(run.run_id)
        raise
    if held is not None:
        held.release(run.run_id)
    return run


def _drive(plan: Plan, ctx: RunContext, lock: RunLock | None, listener: Listener, max_workers: int) -> str | None:
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
                running[future] = (step, first_start(done_before) + step.timeout_seconds + TIMEOUT_GRACE_SECONDS)
            if not running:
                continue
            nearest = min(deadline for _, deadline in running.values())
            finished, _ = wait(running, timeout=max(nearest - time.time(), 0.0), return_when=FIRST_COMPLETED)
            for future in finished:
                step, _ = running.pop(future)
                record = future.result()
                listener.step_ended(step, record)
                if record.status == "succeeded":
                    sorter.done(step.name)
                elif record.status == "waiting":  # only with a finite invocation deadline, which drctl never sets
                    failure = failure or f"step {step.name} handed back still waiting (invoke it again)"
                else:
                    failure = failure or f"step {step.name} failed: {record.error}"
            if lock is not None and lock.lost:
                failure = failure or lock.lost  # another run may act now: start nothing more
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
