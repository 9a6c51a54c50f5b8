"""Starting, dry-running and resuming a runbook run, and turning its journal into an evidence record.

This is the glue the commands call; it owns no policy of its own beyond the order: preflight (refusals change
nothing), then the environment's lock (in every region that answers) and the journal in the target region, then the
plan, then the evidence. A resumed run first proves the estate is still where it left it (`moved_on`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import LOCAL_RUNS, Journal, RunRecord, new_run_id, region_of_run
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.engine.plan import Plan
from dr_runbooks.engine.runner import Listener, execute
from dr_runbooks.evidence.record import AwsCall, DnsOutcome, EvidenceRecord, Identity, Objective, RunError, Verification
from dr_runbooks.evidence.record import Step as EvidenceStep
from dr_runbooks.evidence.store import (
    DEFAULT_EVIDENCE_DIR,
    EvidenceLog,
    LocalEvidenceDir,
    S3EvidenceBucket,
)
from dr_runbooks.observe import probes
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.runbooks.plans import PLANS
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology


def new_context(
    aws: AwsSession, topology: Topology, runbook: str, target: str, params: dict[str, Any], operator: str,
    local_dir: Path = LOCAL_RUNS,
) -> RunContext:
    plan = PLANS[runbook]()
    run = RunRecord(
        run_id=new_run_id(runbook, target),
        runbook=runbook,
        env_name=topology.env_name,
        target_region=target,
        params={**params, "changing_steps": [step.name for step in plan.steps if step.changes]},
        operator=operator,
        mfa=aws.mfa,
    )
    resources = topology.in_region(target)
    return RunContext(run=run, topology=topology, aws=aws,
                      journal=Journal(aws, target, resources.runbook_table, local_dir))


def resume_context(aws: AwsSession, topology: Topology, run_id: str, local_dir: Path = LOCAL_RUNS) -> RunContext:
    region = region_of_run(run_id)
    journal = Journal(aws, region, topology.in_region(region).runbook_table, local_dir)
    return RunContext(run=journal.load(run_id), topology=topology, aws=aws, journal=journal)


def lock_of(ctx: RunContext, lease_seconds: float | None = None) -> RunLock:
    """The environment's one lock, which the run's target region must grant (and the other region too, unless dark)."""
    return RunLock.of_environment(ctx.aws, ctx.topology, ctx.run.target_region, lease_seconds)


#: The step of each runbook that moves the writer: once it started, a writer in the target region is the run's doing.
WRITER_STEPS = {"switchover": "aurora-switchover", "failover": "aurora-failover"}


def moved_writer(run: RunRecord) -> bool:
    """Whether the run's own steps may have moved the writer (its writer step started, whatever became of it)."""
    return WRITER_STEPS.get(run.runbook) in run.steps


def moved_on(ctx: RunContext) -> str | None:
    """What changed in the estate since the run began that its own steps do not explain, or None. Read in the target
    region only (a failover's source may be dark): the writer the global cluster reports against the one the run's
    preflight saw."""
    then = ctx.run.params.get("writer_region")
    if then is None:
        return None  # a run whose preflight observed no writer (a drill): nothing to compare
    try:
        cluster = probes.global_cluster(ctx.client("rds"), ctx.topology.global_cluster_id)
    except (ClientError, BotoCoreError) as error:
        raise Refused(f"cannot observe the database in {ctx.run.target_region}: {str(error).splitlines()[0]}") from None
    writer, target = cluster.writer(), cluster.member_in(ctx.run.target_region)
    now = writer.region if writer else None
    if now == then:
        return None
    # The run's own move: done (the target writes), or still in flight (moving to the target, or nobody writes yet).
    in_flight = now is None or (target is not None and cluster.moving_to == target.cluster_arn)
    if moved_writer(ctx.run) and (now == ctx.run.target_region or in_flight):
        return None
    return (f"the estate moved on since run {ctx.run.run_id} began: the writer is {now or 'nobody'}, not {then} as "
            f"the run saw at its start, and the run's own steps did not move it")


def describe(plan: Plan, ctx: RunContext) -> list[dict[str, Any]]:
    """The plan with the exact calls each step would make, for --dry-run and the confirmation screen."""
    names = ctx.template_vars()
    return [
        {
            "step": step.name,
            "description": step.description,
            "depends_on": list(step.depends_on),
            "changes": step.changes,
            "timeout_seconds": step.timeout_seconds,
            "calls": [template.format(**names) for template in step.calls],
        }
        for step in plan.steps
    ]


def run(ctx: RunContext, listener: Listener | None = None) -> RunRecord:
    return execute(PLANS[ctx.run.runbook](), ctx, lock_of(ctx), listener)


def evidence_record(run: RunRecord, topology: Topology, sandbox: bool) -> EvidenceRecord:
    def when(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    timeline = tuple(
        EvidenceStep(
            name=step.name,
            started_at=when(step.started_at),
            ended_at=when(step.ended_at or step.started_at),
            outcome="succeeded" if step.status == "succeeded" else "failed",
            detail=step.error,
            aws_calls=tuple(
                AwsCall(service=call.service, operation=call.operation, region=call.region, error=call.error)
                for call in step.calls
            ),
        )
        for step in sorted(run.steps.values(), key=lambda record: record.started_at)
    )
    objectives = run.steps.get("record-objectives")
    measured = objectives.outputs if objectives and objectives.status == "succeeded" else {}
    source = topology.partner(run.target_region)
    dns = run.steps.get("confirm-dns")
    dns_seen = dns.outputs if dns and dns.status == "succeeded" and "how" in dns.outputs else None
    return EvidenceRecord(
        run_id=run.run_id,
        kind=run.runbook,  # type: ignore[arg-type]
        environment=run.env_name,
        from_region=source,
        to_region=run.target_region,
        identity=Identity(caller_arn=run.operator, account=topology.account, mfa_used=run.mfa),
        started_at=when(run.started_at),
        ended_at=when(run.ended_at or run.started_at),
        outcome="succeeded" if run.status == "succeeded" else "failed",
        timeline=timeline,
        rto=Objective(measured_seconds=measured.get("rto_seconds"), target_seconds=topology.rto_minutes * 60,
                      how=measured.get("rto_how", "journal: first changing step's start to the last step's end"))
        if run.runbook != "failback" else None,
        rpo=Objective(measured_seconds=measured.get("rpo_seconds"), target_seconds=topology.rpo_minutes * 60,
                      how=measured.get("rpo_how", "not measured"))
        if run.runbook != "failback" else None,
        dns=DnsOutcome(answer_region=dns_seen["answer_region"], confirmed=dns_seen["confirmed"], how=dns_seen["how"],
                       effective_at=when(dns_seen["effective_at"])) if dns_seen else None,
        verifications=_kept_lost_writes(run),
        errors=(RunError(message=run.error),) if run.error else (),
        sandbox=sandbox,
    )


def _kept_lost_writes(run: RunRecord) -> tuple[Verification, ...]:
    """A failback's copy of AWS's unplanned-global-failover snapshot (the writes the failover lost): where it is, or
    why there was none to keep, so the auditor and whoever reconciles the lost writes find it in the evidence."""
    step = run.steps.get("keep-lost-writes")
    if step is None or step.status != "succeeded":
        return ()
    kept = step.outputs.get("kept")
    detail = (f"{kept['identifier']} in {kept['region']} ({kept['arn']}), copied from {step.outputs.get('from')}"
              if kept else step.outputs.get("why"))
    return (Verification(what="the writes an unplanned failover lost are kept",
                         how="CopyDBClusterSnapshot of AWS's unplanned-global-failover snapshot of the old writer to "
                             "a manual snapshot (it would expire with the backup retention)",
                         result="passed", checked=1 if kept else 0, detail=detail),)


def write_evidence(ctx: RunContext, sandbox: bool, local_dir: Path = DEFAULT_EVIDENCE_DIR,
                   record: EvidenceRecord | None = None) -> EvidenceRecord:
    """Append the run's record to the chain in the target region's Object Lock evidence bucket (the authority, which
    survives the laptop), and to the operator's local chain, where `drctl report` renders it. Two chains, each intact:
    a region's bucket holds the runs that targeted it, the local dir the runs made from this machine."""
    record = record or evidence_record(ctx.run, ctx.topology, sandbox)
    bucket = S3EvidenceBucket(ctx.client("s3"), ctx.target.evidence_bucket)
    sealed = EvidenceLog(ctx.topology.env_name, [bucket]).append(record)
    EvidenceLog(ctx.topology.env_name, [LocalEvidenceDir(local_dir)]).append(record)
    return sealed
