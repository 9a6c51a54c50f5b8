"""A step across invocations: a wait hands back at the invocation's deadline ("waiting"), the next invocation continues
from the step's checkpoints, the step's own deadline counts from its first start; and plans that take no lock."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.engine.plan import Plan, PollPolicy, Step
from dr_runbooks.engine.runner import execute, run_step
from dr_runbooks.engine.waits import StepPending, WaitTimeout, wait_until

HERE = __name__
FAST = PollPolicy(initial_seconds=0.02, maximum_seconds=0.05)


def _count(ctx: RunContext, what: str) -> int:
    """Count `what` in DynamoDB (it survives the context: each invocation is a new one); the new count."""
    item = ctx.client("dynamodb").update_item(
        TableName=ctx.target.runbook_table, Key={"pk": {"S": f"count#{ctx.run.run_id}"}, "sk": {"S": what}},
        UpdateExpression="ADD runs :one", ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
    return int(item["Attributes"]["runs"]["N"])


def _counted(ctx: RunContext, what: str) -> int:
    item = ctx.client("dynamodb").get_item(
        TableName=ctx.target.runbook_table, Key={"pk": {"S": f"count#{ctx.run.run_id}"}, "sk": {"S": what}}).get("Item")
    return int(item["runs"]["N"]) if item else 0


def start_job_then_wait(ctx: RunContext) -> dict[str, Any]:
    """Plays a restore: start a 'job' once (checkpointed), then wait until it is ready."""
    ready_at = ctx.checkpointed("ready_at")
    if ready_at is None:
        ready_at = time.time() + float(ctx.params["job_seconds"])
        ctx.checkpoint(job=f"job-{_count(ctx, 'starts')}", ready_at=ready_at)
    wait_until(ctx, time.time, lambda now: now >= ready_at, "job ready")
    return {"job": ctx.checkpointed("job")}


def wait_forever(ctx: RunContext) -> None:
    wait_until(ctx, lambda: "pending", lambda status: status == "done", "job done")


def checkpoint_a_set(ctx: RunContext) -> None:
    ctx.checkpoint(jobs={"a", "b"})


def _step(action: str, timeout: float = 30) -> Step:
    return Step(name="restore", action=f"{HERE}:{action}", description="waits", timeout_seconds=timeout, poll=FAST)


def _plan(step: Step, locks: bool = True) -> Plan:
    return Plan(runbook="test", description="one long step", steps=(step,), locks=locks)


def _started(ctx: RunContext) -> RunContext:
    ctx.journal.start(ctx.run)
    return ctx


def _invocation(ctx: RunContext, seconds: float) -> RunContext:
    """The context one invocation of `seconds` gets, as the Lambda handler builds it."""
    return dataclasses.replace(ctx, invocation_deadline=time.time() + seconds)


def test_wait_until_raises_step_pending_at_the_invocation_deadline(make_context: Callable[..., RunContext]) -> None:
    step = _step("wait_forever")
    ctx = _invocation(make_context(), 0.3).for_step(step)
    started = time.time()
    with pytest.raises(StepPending) as pending:
        wait_until(ctx, lambda: "pending", lambda status: status == "done", "job done")
    assert 0.2 < time.time() - started < 0.4  # not the step's 30 s, and not past the invocation's end
    assert pending.value.resume_after_seconds == math.ceil(FAST.maximum_seconds)


def test_a_step_invoked_with_a_short_invocation_deadline_is_journaled_waiting_with_its_checkpoint(
        make_context: Callable[..., RunContext]) -> None:
    ctx = _started(make_context(job_seconds=5))
    record = run_step(_invocation(ctx, 0.2), _step("start_job_then_wait"))
    assert record.status == "waiting" and record.resume_after_seconds == 1
    assert record.progress["job"] == "job-1"
    assert make_context(run_id=ctx.run.run_id).run.steps["restore"].progress["job"] == "job-1"  # in the table


def test_the_next_invocation_of_a_waiting_step_completes_it_without_starting_a_second_job(
        make_context: Callable[..., RunContext]) -> None:
    ctx = _started(make_context(job_seconds=0.5))
    first = run_step(_invocation(ctx, 0.1), _step("start_job_then_wait"))
    assert first.status == "waiting"
    again = make_context(run_id=ctx.run.run_id)  # a new invocation rebuilds its context from the journal
    second = run_step(_invocation(again, 5), _step("start_job_then_wait"))
    assert second.status == "succeeded" and second.outputs == {"job": "job-1"}
    assert _counted(again, "starts") == 1
    assert second.started_at == first.started_at


def test_a_step_cannot_outwait_its_timeout_by_being_invoked_again(make_context: Callable[..., RunContext]) -> None:
    ctx = _started(make_context())
    step = _step("wait_forever", timeout=0.6)
    records = []
    while not records or records[-1].status == "waiting":
        records.append(run_step(_invocation(make_context(run_id=ctx.run.run_id), 0.25), step))
        assert len(records) < 10, "re-invoked past the step's deadline"
    assert len(records) >= 2
    assert records[-1].status == "failed" and "job done: not reached within 1 s" in (records[-1].error or "")
    assert records[-1].ended_at is not None and records[-1].ended_at - records[0].started_at < 1.2


def test_a_resumed_run_runs_a_waiting_step_again_from_its_checkpoint(
        make_context: Callable[..., RunContext], lock: RunLock) -> None:
    ctx = _started(make_context(job_seconds=0.5))
    assert run_step(_invocation(ctx, 0.1), _step("start_job_then_wait")).status == "waiting"
    resumed = make_context(run_id=ctx.run.run_id)
    run = execute(_plan(_step("start_job_then_wait")), resumed, lock)
    assert run.status == "succeeded", run.error
    assert run.steps["restore"].outputs == {"job": "job-1"} and _counted(resumed, "starts") == 1


def test_a_checkpoint_that_is_not_json_fails_the_step_saying_so(make_context: Callable[..., RunContext]) -> None:
    record = run_step(_started(make_context()), _step("checkpoint_a_set"))
    assert record.status == "failed" and "not JSON serializable" in (record.error or "")


def test_a_plan_that_takes_no_lock_runs_while_another_run_holds_it(
        make_context: Callable[..., RunContext], lock: RunLock) -> None:
    lock.acquire("20261122T000000Z-failover-us-west-1-abcdef", "someone")
    run = execute(_plan(_step("start_job_then_wait"), locks=False), make_context(job_seconds=0), None)
    assert run.status == "succeeded", run.error
    held = lock.holder()
    assert held is not None and held.run_id == "20261122T000000Z-failover-us-west-1-abcdef"


def test_a_plan_that_takes_the_lock_is_refused_without_one(make_context: Callable[..., RunContext]) -> None:
    ctx = make_context(job_seconds=0)
    with pytest.raises(ValueError, match="takes the runbook lock"):
        execute(_plan(_step("start_job_then_wait")), ctx, None)
    assert ctx.run.steps == {}


def test_a_long_wait_prints_what_it_waits_for_how_long_so_far_and_its_deadline(
        make_context: Callable[..., RunContext], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("dr_runbooks.engine.waits.PROGRESS_SECONDS", 0.1)
    ctx = make_context().for_step(_step("wait_forever", timeout=0.5))
    with pytest.raises(WaitTimeout):
        wait_until(ctx, lambda: "pending", lambda status: status == "done", "canary object in the DR bucket")
    lines = [line for line in capsys.readouterr().err.splitlines() if "waiting for canary object" in line]
    assert len(lines) >= 2
    assert "s so far (deadline " in lines[0] and " UTC, in " in lines[0]
