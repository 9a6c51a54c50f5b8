"""Running a restore drill on the engine, and turning its journal into evidence.

The plan runs like any runbook (the environment's lock, the journal in the DR region). If it stops before its own
teardown (a restore job failed), teardown runs here anyway; a killed process leaves scratch resources, which `drctl
resume RUN_ID` (the same plan from where it stopped, then the same teardown and evidence) or else the next drill
removes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dr_runbooks.drills.plans import DEFAULT_SAMPLE, RESTORE_DRILL, RESTORE_LABEL, restore_drill
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import LOCAL_RUNS, Journal, RunRecord, new_run_id
from dr_runbooks.engine.runner import Listener, execute, run_step
from dr_runbooks.evidence.record import EvidenceRecord, Objective, RunError, Verification
from dr_runbooks.evidence.store import EvidenceLog, LocalEvidenceDir, S3EvidenceBucket
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology


def new_restore_context(aws: AwsSession, topology: Topology, params: dict[str, Any], operator: str,
                        local_dir: Path = LOCAL_RUNS) -> RunContext:
    region = topology.dr_region
    run = RunRecord(run_id=new_run_id(RESTORE_LABEL, region), runbook=RESTORE_DRILL, env_name=topology.env_name,
                    target_region=region, params=params, operator=operator, mfa=aws.mfa)
    journal = Journal(aws, region, topology.in_region(region).runbook_table, local_dir)
    return RunContext(run=run, topology=topology, aws=aws, journal=journal)


def run_restore_drill(ctx: RunContext, listener: Listener | None = None) -> RunRecord:
    """Run (or resume: `ctx` rebuilt from the journal) the drill's plan, then make sure its scratch is gone."""
    run = execute(restore_drill(), ctx, driver.lock_of(ctx), listener)
    ensure_torn_down(ctx)
    return run


def restore_preflight(_aws: AwsSession, topology: Topology, region: str) -> dict[str, Any]:
    """A restore drill nobody configured by hand (a scheduled one): the latest recovery points of the DR vault and the
    default sample of charts; refused (nothing changed) outside the DR region, whose vault holds the copies."""
    if region != topology.dr_region:
        raise Refused(f"a restore drill runs in the DR region {topology.dr_region}, not {region}")
    return {"recovery_points": [], "random": False, "sample": DEFAULT_SAMPLE}


def ensure_torn_down(ctx: RunContext) -> None:
    """The teardown-always rule: when the plan's own teardown did not succeed (a restore failed, so it never ran; or
    it failed), run it once more. Also what a Step Functions run of the drill calls when it ends. It runs as the
    plan's step, journaled, and never raises: a teardown that fails again is in the journal and the evidence
    (scratch resources left, and why), which are written whatever happened."""
    torn_down = ctx.run.steps.get("teardown")
    if torn_down is None or torn_down.status != "succeeded":
        run_step(ctx, restore_drill().step("teardown"))


def _outputs(run: RunRecord, step: str) -> dict[str, Any]:
    record = run.steps.get(step)
    return record.outputs if record is not None and record.status == "succeeded" else {}


def _verifications(run: RunRecord) -> tuple[Verification, ...]:
    records, charts = _outputs(run, "validate-records"), _outputs(run, "validate-charts")
    found: list[Verification] = []
    if records:
        found.append(Verification(
            what="records database restored from its recovery point",
            how=f"against the live DR database as of the restore's own moment ({records['as_of_from']}): the "
                "append-only tables' rows up to a minute before it (count and order-independent md5), every restored "
                "patient and user known to the live database",
            result=records["result"], checked=records["rows"], mismatched=len(records["problems"]),
            detail="; ".join(records["problems"]) or None))
    if charts:
        how = "GetObject of each chart file named by a restored scan row, SHA-256 of its bytes vs the row's"
        found.append(Verification(
            what="chart archive restored from its recovery point",
            how=f"{how} ({'a random sample' if charts['sampled'] else 'all of them'})",
            result=charts["result"], checked=charts["checked"],
            mismatched=charts["missing_count"] + charts["changed_count"],
            detail=(f"missing: {charts['missing_count']}, SHA-256 mismatch: {charts['changed_count']}"
                    + (f", e.g. {(charts['changed'] + charts['missing'])[0]}"
                       if charts["changed"] or charts["missing"] else ""))))
    torn, teardown = _outputs(run, "teardown"), run.steps.get("teardown")
    left = (f"scratch resources left ({teardown.error}); the next drill removes them first"
            if teardown is not None and teardown.error else "teardown did not run (run again to clean up)")
    found.append(Verification(
        what="scratch resources torn down",
        how="DeleteDBInstance, DeleteDBCluster, and every version of the scratch bucket then DeleteBucket",
        result="passed" if torn else "failed", checked=len(torn.get("removed", [])),
        detail=", ".join(torn.get("removed", [])) or left))
    leftovers = _outputs(run, "clean-leftovers").get("removed", [])
    if leftovers:
        found.append(Verification(what="leftovers of an interrupted drill removed", how="found by tag and name prefix",
                                  result="passed", checked=len(leftovers), detail=", ".join(leftovers)))
    return tuple(found)


def restore_seconds(run: RunRecord) -> float | None:
    """From the first restore job's start until the last data set can be read (the restored cluster's instance
    available): the time to get the data back."""
    steps = [run.steps.get(name) for name in ("restore-database", "restore-archive", "add-instance")]
    done = [step for step in steps if step is not None and step.status == "succeeded" and step.ended_at]
    if len(done) != len(steps):
        return None
    return max(step.ended_at or 0.0 for step in done) - min(step.started_at for step in done)


def restore_evidence(run: RunRecord, topology: Topology, sandbox: bool) -> EvidenceRecord:
    base = driver.evidence_record(run, topology, sandbox)
    records = _outputs(run, "validate-records")
    points = _outputs(run, "pick-recovery-points")
    errors = list(base.errors)
    rpo = records.get("rpo_seconds")
    if rpo:
        errors.append(RunError(
            message=f"the restored data is {rpo:.1f} s older than the newest canary in the live database "
                    f"(recovery point {points.get('database', {}).get('arn')})", step="validate-records"))
    return base.model_copy(update={
        "from_region": topology.primary_region,
        "rto": Objective(measured_seconds=restore_seconds(run), target_seconds=topology.rto_minutes * 60,
                         how="start of the first restore job until both data sets are readable (restore jobs "
                             "completed, the restored cluster's DB instance available)"),
        "rpo": Objective(measured_seconds=rpo, target_seconds=topology.rpo_minutes * 60,
                         how="newest canary row of the live DR database minus the newest one in the restored "
                             "database (or the recovery point's creation time)"),
        "verifications": _verifications(run),
        "errors": tuple(errors),
    })


def append_evidence(aws: AwsSession, topology: Topology, record: EvidenceRecord, evidence_dir: Path) -> EvidenceRecord:
    """To the DR region's Object Lock evidence bucket (the authority) and the local chain `drctl report` reads."""
    region = record.to_region or topology.dr_region
    bucket = S3EvidenceBucket(aws.client("s3", region), topology.in_region(region).evidence_bucket)
    sealed = EvidenceLog(topology.env_name, [bucket]).append(record)
    EvidenceLog(topology.env_name, [LocalEvidenceDir(evidence_dir)]).append(record)
    return sealed
