"""A step that runs a whole other runbook as its own run (`Step.child`): the legs of a game day.

The child's run id is chosen before the parent starts and sits in the parent's params (`params["legs"][step name]`),
so a leg is idempotent: with no journal the child starts under that id, an unfinished one is resumed, a finished one
is only read. Either way the step's outputs are `child_summary` of the child's journal. On Step Functions the leg is
a nested execution of the child's state machine, and a Lambda task after it calls `record_leg`, which reads the same
journal into the same outputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import JournalNotFound, RunRecord, region_of_run
from dr_runbooks.evidence.store import DEFAULT_EVIDENCE_DIR, S3EvidenceBucket
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.preflight import PREFLIGHTS


class ChildRunFailed(RuntimeError):
    """The child run did not succeed; the message names it and says why."""


def child_summary(child: RunRecord) -> dict[str, Any]:
    """The step outputs that stand for a finished child run: its id, outcome, measured RTO and RPO, error. Raises
    `ChildRunFailed` when the child did not succeed (the step fails, as the child did)."""
    objectives = child.steps.get("record-objectives")
    measured = objectives.outputs if objectives is not None and objectives.status == "succeeded" else {}
    if child.status != "succeeded":
        raise ChildRunFailed(f"{child.runbook} {child.run_id} to {child.target_region} {child.status}: "
                             f"{child.error or 'not finished'}")
    return {"run_id": child.run_id, "runbook": child.runbook, "target_region": child.target_region,
            "status": child.status, "started_at": child.started_at, "ended_at": child.ended_at,
            "rto_seconds": measured.get("rto_seconds"), "rpo_seconds": measured.get("rpo_seconds"),
            "error": child.error}


def leg_run_id(ctx: RunContext) -> str:
    """The run id the parent's preflight chose for the current step's child run."""
    assert ctx.step is not None and ctx.step.child is not None, "a leg action runs only in a step with a child"
    return str(ctx.params["legs"][ctx.step.name])


def record_leg(ctx: RunContext) -> dict[str, Any]:
    """The leg's outputs from the child's journal (in the region its run id names), without running anything."""
    run_id = leg_run_id(ctx)
    return child_summary(driver.resume_context(ctx.aws, ctx.topology, run_id, ctx.journal.local_dir).run)


def _child_context(ctx: RunContext) -> RunContext:
    run_id = leg_run_id(ctx)
    try:
        return driver.resume_context(ctx.aws, ctx.topology, run_id, ctx.journal.local_dir)
    except JournalNotFound:
        runbook, region = ctx.step.child.runbook, region_of_run(run_id)  # type: ignore[union-attr]
        seen = PREFLIGHTS[runbook](ctx.aws, ctx.topology, region)
        fresh = driver.new_context(ctx.aws, ctx.topology, runbook, region, seen, ctx.run.operator,
                                   ctx.journal.local_dir)
        return dataclasses.replace(fresh, run=fresh.run.model_copy(update={"run_id": run_id}))


def _sealed(child: RunContext) -> bool:
    """Whether the child's record is already in its region's evidence chain (a re-run leg writes it once)."""
    names = S3EvidenceBucket(child.client("s3"), child.target.evidence_bucket).names(child.topology.env_name)
    return any(name.endswith(f"-{child.run.run_id}.json") for name in names)


def switchover_leg(ctx: RunContext) -> dict[str, Any]:
    """Run the child runbook under the leg's run id (start, resume, or only read it), seal its evidence once in its
    region's evidence bucket and in the local chain (`params["evidence_dir"]`), and return `child_summary`."""
    child = _child_context(ctx)
    if child.run.status != "succeeded":
        driver.run(child)
    if not _sealed(child):
        local = Path(ctx.params.get("evidence_dir") or DEFAULT_EVIDENCE_DIR)
        driver.write_evidence(child, bool(ctx.aws.endpoint_url), local)
    return child_summary(child.run)
