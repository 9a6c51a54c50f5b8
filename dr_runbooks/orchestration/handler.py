"""The Lambda handler every task of every runbook state machine calls: the same code `drctl` runs, one step at a time.

Three actions, each rebuilding its run context from the journal (nothing survives between invocations, as nothing
survives a crashed laptop run):
- `start`: the preflight (unless the caller already ran it and passed what it saw), the lock, the run record;
- `step`: one plan step through `engine.runner.run_step` (journaled, calls recorded); a step already succeeded in
  the journal is not run again (a retried task is a resume); a failed step raises `StepFailed`, which the state
  machine does not retry;
- `finish`: the run's outcome in the journal, the lock released, the evidence appended in this region's evidence
  bucket, a line to the on-call topic.

A state machine runs its runbook in the region it is deployed in, which is the region the run targets, so every
journal, lock and evidence write stays in the surviving region.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import new_run_id, region_of_run
from dr_runbooks.engine.runner import run_step
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.estate import load_topology
from dr_runbooks.runbooks.plans import PLANS
from dr_runbooks.runbooks.preflight import PREFLIGHTS
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

#: The environment the function serves; set by the orchestration stack.
ENV_VARIABLE = "EHR_DR_ENV"


class StepFailed(Exception):
    """A step ran and failed (the journal has why); the state machine stops starting steps, as the engine does."""


def handler(event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
    """Lambda's entry point: the function's own region and credentials; `AWS_ENDPOINT_URL` points it at a sandbox."""
    aws = AwsSession.from_options(endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    return handle(event, aws, os.environ[ENV_VARIABLE], os.environ["AWS_REGION"])


def handle(event: dict[str, Any], aws: AwsSession, env_name: str, region: str,
           scratch: Path | None = None) -> dict[str, Any]:
    """One task of a state machine in `region`; `scratch` is where the local journal and evidence copies go (Lambda
    can write only below /tmp, and they are copies: the table and the bucket are the record)."""
    scratch = scratch or Path(tempfile.gettempdir()) / "ehr-dr"
    topology = load_topology(aws, env_name, region)
    action = event.get("action")
    if action == "start":
        return _start(event, aws, topology, region, scratch)
    if action == "step":
        return _step(event, aws, topology, scratch)
    if action == "finish":
        return _finish(event, aws, topology, scratch)
    raise ValueError(f"unknown action {action!r}: expected start, step or finish")


def _start(event: dict[str, Any], aws: AwsSession, topology: Topology, region: str, scratch: Path) -> dict[str, Any]:
    runbook, given = event["runbook"], event.get("input") or {}
    target = given.get("target_region", region)
    if target != region:
        raise ValueError(f"this state machine runs in {region}; a run to {target} starts the one deployed there")
    run_id = given.get("run_id") or new_run_id(runbook, region)
    if region_of_run(run_id) != region:
        raise ValueError(f"run id {run_id} names another region than {region}")
    params = given.get("params") or PREFLIGHTS[runbook](aws, topology, region)
    operator = given.get("operator") or aws.identity(region).arn
    ctx = driver.new_context(aws, topology, runbook, region, params, operator, scratch / "runs")
    # The caller chose the run id (it is the execution's name) and proved MFA when it started the execution.
    run = ctx.run.model_copy(update={"run_id": run_id, "mfa": bool(given.get("mfa"))})
    ctx = RunContext(run=run, topology=topology, aws=aws, journal=ctx.journal)
    PLANS[runbook]().verify_actions()
    driver.lock_of(ctx).acquire(run_id, operator)
    ctx.journal.start(run)
    return {"run_id": run_id}


def _step(event: dict[str, Any], aws: AwsSession, topology: Topology, scratch: Path) -> dict[str, Any]:
    ctx = driver.resume_context(aws, topology, event["run_id"], scratch / "runs")
    step = PLANS[ctx.run.runbook]().step(event["step"])
    before = ctx.run.steps.get(step.name)
    if before is not None and before.status == "succeeded":
        return {"step": step.name, "status": "succeeded", "rerun": False}
    record = run_step(ctx, step)
    driver.lock_of(ctx).refresh(ctx.run.run_id)
    if record.status != "succeeded":
        raise StepFailed(f"step {step.name} failed: {record.error}")
    return {"step": step.name, "status": record.status, "rerun": before is not None}


def _finish(event: dict[str, Any], aws: AwsSession, topology: Topology, scratch: Path) -> dict[str, Any]:
    ctx = driver.resume_context(aws, topology, event["run_id"], scratch / "runs")
    failed = [name for name, record in ctx.run.steps.items() if record.status != "succeeded"]
    error = _caught(event.get("error")) or (f"steps not succeeded: {', '.join(sorted(failed))}" if failed else None)
    ctx.journal.finish(ctx.run.run_id, "failed" if error else "succeeded", error)
    driver.lock_of(ctx).release(ctx.run.run_id)
    evidence = driver.write_evidence(ctx, sandbox=bool(aws.endpoint_url), local_dir=scratch / "evidence")
    outcome = "FAILED" if error else "succeeded"
    ctx.client("sns").publish(
        TopicArn=ctx.target.oncall_topic_arn,
        Subject=f"ehr-dr {topology.env_name}: {ctx.run.runbook} to {ctx.run.target_region} {outcome}"[:100],
        Message=json.dumps({"run_id": ctx.run.run_id, "outcome": outcome, "error": error,
                            "evidence": f"s3://{ctx.target.evidence_bucket}/{evidence.environment}/"
                                        f"{evidence.sequence:08d}-{evidence.run_id}.json"}),
    )
    return {"run_id": ctx.run.run_id, "status": ctx.run.status}


def _caught(error: dict[str, Any] | None) -> str | None:
    """The error Step Functions caught (`{"Error", "Cause"}`; a Lambda's Cause is its exception as JSON)."""
    if not error:
        return None
    cause = error.get("Cause") or ""
    with contextlib.suppress(ValueError, AttributeError):
        cause = json.loads(cause).get("errorMessage", cause)
    return f"{error.get('Error', 'Error')}: {cause}".strip(": ")
