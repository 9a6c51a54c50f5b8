"""The Lambda handler every task of every runbook state machine calls: the same code `drctl` runs, one step at a time.

Each action rebuilds its run context from the journal (nothing survives between invocations, as nothing survives a
crashed laptop run):
- `start`: the preflight (unless the caller already ran it and passed what it saw; one that finds nothing for this
  region to do returns `{"skipped": why}`, and the execution ends succeeded there), the environment's lock (the lease
  `drctl` takes, in every region that answers, but `ORCHESTRATED_LEASE_SECONDS` long: no process renews it between
  tasks, each task renews it), the run record, and the run ids of the child runs (a game day's legs), which the state
  machine starts as nested executions;
- `step`: one plan step through `engine.runner.run_step` (journaled, calls recorded); a step already succeeded in the
  journal is not run again (a retried task is a resume); a failed step raises `StepFailed`, which the state machine
  does not retry; a step still waiting when its invocation must end hands back `{"status": "waiting"}`;
- `child-ended`: journal a child step from the child run's own journal;
- `finish`: the run's outcome in the journal, the lock released, the evidence appended in the target region's evidence
  bucket, a line to the on-call topic;
- `heartbeat` (no run: EventBridge Scheduler invokes the database function with it every minute): this minute's
  heartbeat row and object, if this region writes (`runbooks.heartbeat`);
- `evaluate` (no run: EventBridge Scheduler invokes the runbook function with it every hour): the readiness
  evaluation, its metrics and evidence record in this region (`readiness.scheduled`); the heartbeat row it needs is
  read by the database function of the target region (`newest-row`).

Two functions in each region run this code. The *runbook* function, outside any VPC, runs every task: it reaches the
APIs of both regions through their public endpoints (TLS, SigV4), as a planned switchover must (Step Functions cannot
invoke across regions). A step that connects to a records database (`Step.database`) is relayed to the *database*
function in that database's region, which sits in the records VPC; it runs the step against the run as the caller
passed it (`database-step`) and returns the step's record, which the runbook function journals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.config import Config

from dr_runbooks.drills.legs import ChildRunFailed, child_summary
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import (
    Journal,
    JournalNotFound,
    RunRecord,
    StepRecord,
    execution_run_id,
    region_of_run,
)
from dr_runbooks.engine.lock import LockHeld, LockLost, RunLock
from dr_runbooks.engine.plan import Plan, Step
from dr_runbooks.engine.runner import run_step
from dr_runbooks.orchestration.catalog import RUNBOOKS, Orchestrated, Skipped
from dr_runbooks.orchestration.definition import HANDBACK_SECONDS, LAMBDA_MAX_SECONDS, WAITING, child_key
from dr_runbooks.readiness import scheduled
from dr_runbooks.runbooks import driver, heartbeat
from dr_runbooks.runbooks.estate import load_topology
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import FUNCTION_ENV_VARIABLE, Topology, database_function_name

#: Calls the database function in a region with a payload and returns its reply.
DatabaseInvoker = Callable[[str, dict[str, Any]], dict[str, Any]]


#: The lease of a run on Step Functions: each task renews it as it starts and ends, and the longest gap between two
#: renewals is one Lambda invocation (at most 900 s) and a Wait state, so a live execution never looks dead.
ORCHESTRATED_LEASE_SECONDS = 2 * LAMBDA_MAX_SECONDS


class StepFailed(Exception):
    """A step ran and failed (the journal has why); the state machine stops starting steps, as the engine does."""


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda's entry point: the function's own region and credentials; `AWS_ENDPOINT_URL` points it at a sandbox."""
    aws = AwsSession.from_options(endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    env_name = os.environ[FUNCTION_ENV_VARIABLE]
    deadline = (time.time() + context.get_remaining_time_in_millis() / 1000 - HANDBACK_SECONDS if context
                else float("inf"))
    return handle(event, aws, env_name, os.environ["AWS_REGION"], invocation_deadline=deadline,
                  invoke_database=lambda_invoker(aws, env_name))


def lambda_invoker(aws: AwsSession, env_name: str) -> DatabaseInvoker:
    """Invoke the database function of a region and wait for its reply (up to a whole invocation, never retried:
    the caller's task is what retries)."""
    config = Config(read_timeout=960, connect_timeout=10, retries={"mode": "standard", "max_attempts": 1})

    def invoke(region: str, payload: dict[str, Any]) -> dict[str, Any]:
        client = aws.boto.client("lambda", region_name=region, config=config,
                                 endpoint_url=aws.endpoint_urls.get(region, aws.endpoint_url))
        reply = client.invoke(FunctionName=database_function_name(env_name), Payload=json.dumps(payload).encode())
        body = json.loads(reply["Payload"].read() or b"null")
        if reply.get("FunctionError"):
            raise StepFailed(f"the database function in {region} failed: {body.get('errorType')}: "
                             f"{body.get('errorMessage')}")
        return body

    return invoke


def handle(event: dict[str, Any], aws: AwsSession, env_name: str, region: str, scratch: Path | None = None,
           invocation_deadline: float = float("inf"), invoke_database: DatabaseInvoker | None = None,
           ) -> dict[str, Any]:
    """One task of a state machine in `region`; `scratch` is where the local journal and evidence copies go (Lambda
    can write only below /tmp, and they are copies: the table and the bucket are the record)."""
    scratch = scratch or Path(tempfile.gettempdir()) / "ehr-dr"
    topology = load_topology(aws, env_name, region)
    action = event.get("action")
    if action == "start":
        return _start(event, aws, topology, region, scratch)
    if action == "step":
        return _step(event, driver.resume_context(aws, topology, event["run_id"], scratch / "runs"),
                     invocation_deadline, invoke_database or lambda_invoker(aws, env_name))
    if action == "database-step":
        return _database_step(event, aws, topology, region, invocation_deadline)
    if action == "child-ended":
        return _child_ended(event, driver.resume_context(aws, topology, event["run_id"], scratch / "runs"), scratch)
    if action == "finish":
        return _finish(event, driver.resume_context(aws, topology, event["run_id"], scratch / "runs"), scratch)
    if action == "heartbeat":
        return heartbeat.beat(aws, topology, region)
    if action == "evaluate":
        return scheduled.run(aws, topology, region, _newest_row(invoke_database or lambda_invoker(aws, env_name)))
    if action == "newest-row":
        return scheduled.newest_row_of(aws, topology, region)
    raise ValueError(f"unknown action {action!r}: expected start, step, database-step, child-ended, finish, "
                     "heartbeat, evaluate or newest-row")


def _newest_row(invoke_database: DatabaseInvoker) -> Callable[[str], datetime | None]:
    """The evaluation's heartbeat-row reads, relayed to the database function of the region read."""
    def newest(region: str) -> datetime | None:
        found = invoke_database(region, {"action": "newest-row"})["newest_row_at"]
        return datetime.fromisoformat(found) if found else None

    return newest


def _runbook(name: str) -> tuple[Orchestrated, Plan]:
    if name not in RUNBOOKS:
        raise ValueError(f"no runbook {name!r} runs on Step Functions (known: {', '.join(sorted(RUNBOOKS))})")
    entry = RUNBOOKS[name]
    return entry, entry.plan()


def _start(event: dict[str, Any], aws: AwsSession, topology: Topology, region: str, scratch: Path) -> dict[str, Any]:
    runbook, given = event["runbook"], event.get("input") or {}
    entry, plan = _runbook(runbook)
    target = given.get("target_region", region)
    if target != region and not entry.any_region:
        raise ValueError(f"this state machine runs in {region}; a {runbook} to {target} starts the one deployed there")
    # A run id the caller chose (drctl --remote names the execution after it), or the execution's own.
    run_id = given.get("run_id") or execution_run_id(entry.label, target, event["execution"], event["started"])
    if region_of_run(run_id) != target:
        raise ValueError(f"run id {run_id} names another region than {target}")
    try:
        params = given.get("params") or entry.preflight(aws, topology, target)
    except Skipped as skipped:
        return {"skipped": str(skipped)}
    operator = given.get("operator") or aws.identity(region).arn
    plan.verify_actions()
    # The caller chose the run id (it is the execution's name) and proved MFA when it started the execution.
    run = RunRecord(run_id=run_id, runbook=runbook, env_name=topology.env_name, target_region=target,
                    params={**params, "changing_steps": [step.name for step in plan.steps if step.changes]},
                    operator=operator, mfa=bool(given.get("mfa")))
    ctx = RunContext(run=run, topology=topology, aws=aws,
                     journal=Journal(aws, target, topology.in_region(target).runbook_table, scratch / "runs"))
    if plan.locks:
        _take_lock(driver.lock_of(ctx, ORCHESTRATED_LEASE_SECONDS), run_id, operator)
    ctx.journal.start(run)
    return {"run_id": run_id, "children": _children(plan, run, topology)}


def _take_lock(lock: RunLock, run_id: str, operator: str) -> None:
    """Take the environment's lock for the run, or take over the lease an earlier attempt of this same `start-run`
    took (Step Functions retried it after a Lambda error): the run id is the execution's, so only that attempt can
    hold it."""
    try:
        lock.acquire(run_id, operator)
    except LockHeld:
        holders = lock.holders()
        if not holders or any(holder.run_id != run_id for holder in holders):
            raise
        lock.adopt(run_id)
        lock.renew(run_id)


def _children(plan: Plan, run: RunRecord, topology: Topology) -> dict[str, Any]:
    """The nested executions' names (their run ids, chosen by the preflight) and inputs, by child step."""
    children: dict[str, Any] = {}
    for step in plan.steps:
        if step.child is None:
            continue
        child_id = run.params["legs"][step.name]
        children[child_key(step)] = {"run_id": child_id, "input": {
            "target_region": region_of_run(child_id), "run_id": child_id, "operator": run.operator, "mfa": run.mfa}}
    return children


def _step(event: dict[str, Any], ctx: RunContext, deadline: float, invoke: DatabaseInvoker) -> dict[str, Any]:
    plan = _runbook(ctx.run.runbook)[1]
    step = plan.step(event["step"])
    before = ctx.run.steps.get(step.name)
    if before is not None and before.status == "succeeded":
        return {"step": step.name, "status": "succeeded", "rerun": False}
    if plan.locks:
        _renew(ctx)
    if step.database is None:
        record = run_step(dataclasses.replace(ctx, invocation_deadline=deadline), step)
    else:
        record = _relay(ctx, step, invoke)
    if plan.locks:
        _renew(ctx)
    if record.status == WAITING:
        return {"step": step.name, "status": WAITING, "wait_seconds": record.resume_after_seconds}
    if record.status != "succeeded":
        raise StepFailed(f"step {step.name} failed: {record.error}")
    return {"step": step.name, "status": record.status, "rerun": before is not None}


def _renew(ctx: RunContext) -> None:
    """Renew the run's lease where its start took it; a lost lease fails the step (another run may act now)."""
    lock = driver.lock_of(ctx, ORCHESTRATED_LEASE_SECONDS)
    try:
        lock.adopt(ctx.run.run_id)
        lock.renew(ctx.run.run_id)
    except LockLost as lost:
        raise StepFailed(str(lost)) from None


def _relay(ctx: RunContext, step: Step, invoke: DatabaseInvoker) -> StepRecord:
    """Run a database step in the function of the database's region; journal what it did here."""
    region = ctx.target.region if step.database == "target" else ctx.source.region
    # Other steps' calls stay behind (the payload is bounded); this step's own travel, so an attempt that continues
    # a waiting one keeps them.
    run = ctx.run.model_copy(update={"steps": {
        name: record if name == step.name else record.model_copy(update={"calls": []})
        for name, record in ctx.run.steps.items()}})
    reply = invoke(region, {"action": "database-step", "step": step.name, "run": run.model_dump(mode="json")})
    record = StepRecord.model_validate(reply["record"])
    ctx.journal.record_step(ctx.run.run_id, record)
    return record


class _Passed(Journal):
    """The run as the calling function passed it: earlier steps' outputs are read from it, and what the step records
    stays here, for the caller to journal in the run's table (the database function writes no table)."""

    def __init__(self, aws: AwsSession, run: RunRecord) -> None:
        super().__init__(aws, run.target_region, table="")
        self._runs[run.run_id] = run

    def _put(self, run_id: str, sort_key: str, doc: dict[str, Any]) -> None:
        pass

    def _save_local(self, run: RunRecord) -> None:
        pass


def _database_step(event: dict[str, Any], aws: AwsSession, topology: Topology, region: str,
                   deadline: float) -> dict[str, Any]:
    run = RunRecord.model_validate(event["run"])
    step = _runbook(run.runbook)[1].step(event["step"])
    if step.database is None:
        raise ValueError(f"step {step.name} connects to no database: the runbook function runs it")
    database_region = run.target_region if step.database == "target" else topology.partner(run.target_region)
    if database_region != region:
        raise ValueError(f"step {step.name} connects to the database in {database_region}, not {region}")
    ctx = RunContext(run=run, topology=topology, aws=aws, journal=_Passed(aws, run))
    return {"record": run_step(dataclasses.replace(ctx, invocation_deadline=deadline), step).model_dump(mode="json")}


def _child_ended(event: dict[str, Any], ctx: RunContext, scratch: Path) -> dict[str, Any]:
    """Journal a child step from the child's own journal; a child that failed (or never journaled: its preflight
    refused) fails the step with why."""
    step = _runbook(ctx.run.runbook)[1].step(event["step"])
    child_id = ctx.run.params["legs"][step.name]
    region = region_of_run(child_id)
    now = time.time()
    try:
        child = Journal(ctx.aws, region, ctx.topology.in_region(region).runbook_table, scratch / "runs").load(child_id)
    except JournalNotFound:
        record = StepRecord(name=step.name, status="failed", started_at=now, ended_at=now,
                            error=f"run {child_id} never started: {_caught(event.get('child')) or 'no journal'}")
    else:
        try:
            record = StepRecord(name=step.name, status="succeeded", started_at=child.started_at,
                                ended_at=child.ended_at or now, outputs=child_summary(child))
        except ChildRunFailed as failed:
            record = StepRecord(name=step.name, status="failed", started_at=child.started_at,
                                ended_at=child.ended_at or now, error=str(failed))
    ctx.journal.record_step(ctx.run.run_id, record)
    if record.status != "succeeded":
        raise StepFailed(f"step {step.name} failed: {record.error}")
    return {"step": step.name, "status": record.status}


def _finish(event: dict[str, Any], ctx: RunContext, scratch: Path) -> dict[str, Any]:
    entry, plan = _runbook(ctx.run.runbook)
    failed = [name for name, record in ctx.run.steps.items() if record.status != "succeeded"]
    error = _caught(event.get("error")) or (f"steps not succeeded: {', '.join(sorted(failed))}" if failed else None)
    if entry.after is not None:
        entry.after(ctx)
    ctx.journal.finish(ctx.run.run_id, "failed" if error else "succeeded", error)
    if plan.locks:
        driver.lock_of(ctx, ORCHESTRATED_LEASE_SECONDS).release(ctx.run.run_id)
    sandbox = bool(ctx.aws.endpoint_url)
    evidence = driver.write_evidence(ctx, sandbox, scratch / "evidence", entry.evidence(ctx.run, ctx.topology, sandbox))
    outcome = "FAILED" if error else "succeeded"
    ctx.client("sns").publish(
        TopicArn=ctx.target.oncall_topic_arn,
        Subject=f"ehr-dr {ctx.topology.env_name}: {ctx.run.runbook} to {ctx.run.target_region} {outcome}"[:100],
        Message=json.dumps({"run_id": ctx.run.run_id, "outcome": outcome, "error": error,
                            "evidence": f"s3://{ctx.target.evidence_bucket}/{evidence.environment}/"
                                        f"{evidence.sequence:08d}-{evidence.run_id}.json"}),
    )
    return {"run_id": ctx.run.run_id, "status": ctx.run.status}


def _caught(error: dict[str, Any] | None) -> str | None:
    """The error Step Functions caught (`{"Error", "Cause"}`; a Lambda's Cause is its exception as JSON)."""
    if not error or "Error" not in error:
        return None
    cause = error.get("Cause") or ""
    with contextlib.suppress(ValueError, AttributeError):
        cause = json.loads(cause).get("errorMessage", cause)
    return f"{error.get('Error', 'Error')}: {cause}".strip(": ")
