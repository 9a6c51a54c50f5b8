"""The runner: concurrency, dependencies, failure, timeouts, crash-and-resume, the lock, throttling."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import Journal, StepRecord
from dr_runbooks.engine.lock import LockHeld, RunLock
from dr_runbooks.engine.plan import Plan, PollPolicy, Step
from dr_runbooks.engine.runner import execute
from dr_runbooks.engine.waits import wait_until

HERE = __name__


def count_run(ctx: RunContext) -> dict[str, Any]:
    """Count executions in DynamoDB (survives a 'crash'), sleep as asked, and report when it ran."""
    started = time.time()
    assert ctx.step is not None
    ctx.client("dynamodb").update_item(
        TableName=ctx.target.runbook_table,
        Key={"pk": {"S": f"count#{ctx.run.run_id}"}, "sk": {"S": ctx.step.name}},
        UpdateExpression="ADD runs :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    time.sleep(float(ctx.params.get("sleep", 0)))
    return {"started": started, "ended": time.time()}


def explode(ctx: RunContext) -> None:
    raise RuntimeError("the target cluster is not available")


def wait_forever(ctx: RunContext) -> None:
    wait_until(ctx, lambda: "switching-over", lambda status: status == "available", "global cluster available")


def overrun(ctx: RunContext) -> None:
    """A step that ignores its deadline (a hung API call, say)."""
    time.sleep(3)


def diamond(first_action: str = "count_run") -> Plan:
    """a -> (b, c) -> d: b and c are independent."""
    return Plan(
        runbook="test",
        description="a diamond",
        steps=(
            Step(name="a", action=f"{HERE}:{first_action}", description="first"),
            Step(name="b", action=f"{HERE}:count_run", description="left", depends_on=("a",)),
            Step(name="c", action=f"{HERE}:count_run", description="right", depends_on=("a",)),
            Step(name="d", action=f"{HERE}:count_run", description="last", depends_on=("b", "c")),
        ),
    )


def runs_of(ctx: RunContext, step: str) -> int:
    item = ctx.client("dynamodb").get_item(
        TableName=ctx.target.runbook_table, Key={"pk": {"S": f"count#{ctx.run.run_id}"}, "sk": {"S": step}}
    ).get("Item")
    return int(item["runs"]["N"]) if item else 0


class Crash(BaseException):
    """Plays the process being killed: not an Exception, so nothing in the engine handles it."""


class CrashAfter:
    def __init__(self, step: str) -> None:
        self.step = step

    def step_started(self, step: Step) -> None:
        pass

    def step_ended(self, step: Step, record: StepRecord) -> None:
        if step.name == self.step:
            raise Crash(step.name)


def test_independent_steps_overlap_in_time(make_context: Callable[..., RunContext], lock: RunLock) -> None:
    run = execute(diamond(), make_context(sleep=0.3), lock)
    b, c = run.steps["b"].outputs, run.steps["c"].outputs
    assert b["started"] < c["ended"] and c["started"] < b["ended"]


def test_a_step_starts_only_after_its_dependencies_succeeded(
    make_context: Callable[..., RunContext], lock: RunLock
) -> None:
    run = execute(diamond(), make_context(sleep=0.05), lock)
    d_started = run.steps["d"].outputs["started"]
    assert d_started >= max(run.steps["b"].outputs["ended"], run.steps["c"].outputs["ended"])


def test_a_successful_run_is_journaled_with_its_calls_and_releases_the_lock(
    make_context: Callable[..., RunContext], lock: RunLock, journal_dir: Path
) -> None:
    ctx = make_context()
    execute(diamond(), ctx, lock)
    stored = ctx.journal.load(ctx.run.run_id)
    assert stored.status == "succeeded"
    assert [call.operation for call in stored.steps["a"].calls] == ["UpdateItem"]
    assert json.loads((journal_dir / f"{ctx.run.run_id}.json").read_text())["status"] == "succeeded"
    assert lock.holder() is None


def test_a_failed_step_stops_its_dependents_and_fails_the_run(
    make_context: Callable[..., RunContext], lock: RunLock
) -> None:
    ctx = make_context()
    run = execute(diamond(first_action="explode"), ctx, lock)
    assert run.status == "failed"
    assert run.error == "step a failed: RuntimeError: the target cluster is not available"
    assert set(run.steps) == {"a"}
    assert runs_of(ctx, "b") == 0
    assert lock.holder() is None


def test_a_wait_that_never_holds_fails_the_step_at_its_timeout(
    make_context: Callable[..., RunContext], lock: RunLock
) -> None:
    plan = Plan(
        runbook="test",
        description="waits",
        steps=(
            Step(
                name="wait",
                action=f"{HERE}:wait_forever",
                description="never",
                timeout_seconds=0.5,
                poll=PollPolicy(initial_seconds=0.05, maximum_seconds=0.1),
            ),
        ),
    )
    started = time.time()
    run = execute(plan, make_context(), lock)
    assert time.time() - started < 3
    assert run.status == "failed"
    assert "global cluster available: not reached within" in (run.error or "")
    assert "last seen: switching-over" in (run.error or "")


def test_a_step_that_overruns_its_timeout_is_failed_without_waiting_for_it(
    make_context: Callable[..., RunContext], lock: RunLock
) -> None:
    plan = Plan(runbook="test", description="hangs", steps=(
        Step(name="hang", action=f"{HERE}:overrun", description="hangs", timeout_seconds=0.2),))
    started = time.time()
    run = execute(plan, make_context(), lock)
    assert time.time() - started < 2.5  # the timeout plus the runner's grace, not the step's 3 s
    assert run.error == "step hang failed: timed out after 0.2 s"


def test_after_a_failure_running_siblings_finish_and_are_journaled(
    make_context: Callable[..., RunContext], lock: RunLock
) -> None:
    plan = Plan(runbook="test", description="siblings", steps=(
        Step(name="fails", action=f"{HERE}:explode", description="fails"),
        Step(name="slow", action=f"{HERE}:count_run", description="slow"),
        Step(name="after", action=f"{HERE}:count_run", description="after", depends_on=("slow",)),
    ))
    ctx = make_context(sleep=0.3)
    run = execute(plan, ctx, lock)
    assert run.status == "failed"
    assert run.steps["slow"].status == "succeeded"
    assert "after" not in run.steps


@pytest.mark.parametrize("crash_after", ["a", "b", "c", "d"])
def test_a_run_crashed_after_any_step_resumes_to_the_end_without_redoing_finished_steps(
    make_context: Callable[..., RunContext], lock: RunLock, crash_after: str
) -> None:
    ctx = make_context()
    with pytest.raises(Crash):
        execute(diamond(), ctx, lock, listener=CrashAfter(crash_after))
    held = lock.holder()
    assert held is not None and held.run_id == ctx.run.run_id and not held.alive  # kept, its lease expired
    time.sleep(0.1)  # let a step that was still in flight at the crash finish its journal write

    resumed = make_context(run_id=ctx.run.run_id)
    done_at_crash = {name for name, step in resumed.run.steps.items() if step.status == "succeeded"}
    assert crash_after in done_at_crash
    run = execute(diamond(), resumed, lock)

    assert run.status == "succeeded"
    assert all(run.steps[name].status == "succeeded" for name in "abcd")
    assert all(runs_of(resumed, name) == 1 for name in done_at_crash)
    assert lock.holder() is None


def test_a_second_run_is_refused_while_another_holds_the_lock(
    make_context: Callable[..., RunContext], lock: RunLock
) -> None:
    holder = make_context()
    lock.acquire(holder.run.run_id, "arn:aws:iam::123456789012:user/alice")
    second = make_context()
    with pytest.raises(LockHeld, match=f"run {holder.run.run_id} by .*alice holds the runbook lock"):
        execute(diamond(), second, lock)
    with pytest.raises(LookupError):
        second.journal.load(second.run.run_id)
    assert runs_of(second, "a") == 0


def test_breaking_the_lock_names_the_run_it_breaks(make_context: Callable[..., RunContext], lock: RunLock) -> None:
    holder = make_context()
    lock.acquire(holder.run.run_id, "alice")
    lock.expire(holder.run.run_id)
    with pytest.raises(LockHeld, match=f"it is held by {holder.run.run_id}"):
        lock.break_lock("20261122T000000Z-test-us-west-1-000000")
    assert lock.break_lock(holder.run.run_id) == ["us-west-1"]
    assert lock.holder() is None


def _throttle(times: int) -> Callable[..., AWSResponse | None]:
    """Answer the first `times` sends with a throttling error (moto still sees them: only the answer is replaced)."""
    remaining = [times]

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        if remaining[0] == 0:
            return None
        remaining[0] -= 1
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, MockRawResponse(body))

    return handler


def test_a_throttling_storm_is_retried_to_success(make_context: Callable[..., RunContext], lock: RunLock) -> None:
    ctx = make_context()
    dynamodb = ctx.client("dynamodb")
    dynamodb.meta.events.register_first("before-send.dynamodb.UpdateItem", _throttle(2))
    plan = Plan(runbook="test", description="one", steps=(Step(name="a", action=f"{HERE}:count_run", description="x"),))
    run = execute(plan, ctx, lock)
    assert run.status == "succeeded"
    assert run.steps["a"].call_count == 1
    assert run.steps["a"].calls[0].retries == 2


def test_a_resumed_run_reads_its_parameters_back_from_the_journal(
    aws: Any, make_context: Callable[..., RunContext], lock: RunLock, table: str, journal_dir: Path
) -> None:
    ctx = make_context(sleep=0.01, to_region="us-west-1")
    execute(diamond(), ctx, lock)
    fresh = Journal(aws, "us-west-1", table, journal_dir / "elsewhere")
    assert fresh.load(ctx.run.run_id).params == {"sleep": 0.01, "to_region": "us-west-1"}
