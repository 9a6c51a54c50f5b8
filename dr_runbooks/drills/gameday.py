"""The failover game day's budget gate, its checks in DR (as step actions) and its evidence, read from the journal.

Each leg is the on-call `switchover` runbook itself (same plan, preflight, lock, journal and evidence), so the game
day tests what on-call would run (the plan is `drills.gameday_plan`, the legs `drills.legs`). Before anything moves,
the availability budget decides: the month's remaining budget (from the evidence chain) must absorb the expected
downtime, the RTO target (the config already refuses an RTO target larger than a whole month's budget). The downtime
measured (both legs' RTO) is charged to the budget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import RunRecord, StepRecord, region_of_run
from dr_runbooks.evidence.budget import AvailabilityBudget, availability_budget
from dr_runbooks.evidence.chain import EvidenceError
from dr_runbooks.evidence.record import EvidenceRecord, Objective, RunError, Verification
from dr_runbooks.evidence.store import EvidenceLog, LocalEvidenceDir, S3EvidenceBucket
from dr_runbooks.runbooks import canary, driver
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology
from dr_runbooks.verify.compare import ReplicationComparison, chart_archives

LEGS = ("switchover-to-dr", "switchover-to-primary")
CHECKS = ("verify-replication", "serve-from-dr")


def evidence_in_buckets(aws: AwsSession, topology: Topology) -> list[EvidenceRecord]:
    """Every record in the evidence buckets of both regions (each holds the runs that targeted it), oldest first;
    a region whose bucket does not answer is skipped, since the budget must be readable while a region is dark."""
    found: dict[str, EvidenceRecord] = {}
    for region in topology.regions:
        bucket = S3EvidenceBucket(aws.client("s3", region), topology.in_region(region).evidence_bucket)
        try:
            chain = EvidenceLog(topology.env_name, [bucket]).load_chain()
        except (ClientError, BotoCoreError, EvidenceError):
            continue
        found.update((record.run_id, record) for record in chain)
    return sorted(found.values(), key=lambda record: record.ended_at)


def check_budget(topology: Topology, evidence: Path | Iterable[EvidenceRecord],
                 as_of: datetime | None = None) -> AvailabilityBudget:
    """The month's budget from `evidence` (a local chain dir, or records), or a refusal when what is left cannot
    absorb a game day's expected downtime."""
    chain = (EvidenceLog(topology.env_name, [LocalEvidenceDir(evidence)]).load_chain()
             if isinstance(evidence, Path) else list(evidence))
    budget = availability_budget(chain, topology.availability_target, as_of or datetime.now(UTC))
    if budget.month.left_minutes < topology.rto_minutes:
        raise Refused(
            f"availability budget: {max(budget.month.left_minutes, 0):.1f} min of downtime left in "
            f"{budget.month.label}, a game day may take the RTO target of {topology.rto_minutes} min: "
            "nothing changed")
    return budget


def verify_archives(aws: AwsSession, topology: Topology, writer_region: str) -> Verification:
    """The writer's chart archive and its replica hold the same current versions (listing comparison)."""
    source, replica = chart_archives(aws, topology, writer_region)
    report = ReplicationComparison(source, replica).run()
    return Verification(
        what=f"chart archive {replica} replicates {source}", how="ListObjectsV2 of both buckets merged key by key",
        result="passed" if report.in_sync else "failed", checked=report.compared,
        mismatched=len(report.differences),
        detail=", ".join(f"{kind}: {count}" for kind, count in sorted(report.counts().items())) or None)


def serve(aws: AwsSession, topology: Topology, region: str, run_id: str) -> Verification:
    """The region serves: a chart is read and checked against its scan row, and a write lands on its writer."""
    here = topology.in_region(region)
    endpoint = canary.db_endpoint(aws.client("rds", region), aws.client("secretsmanager", region),
                                  here.db_cluster_id, topology.db_secret_name, topology.database_name)
    with canary.connect(endpoint) as connection:
        row = connection.execute("SELECT object_key, sha256 FROM scans ORDER BY scan_id LIMIT 1").fetchone()
    canary.PostgresCanary().write(endpoint, f"{run_id}-serve", region)
    checked = 0
    if row is not None:
        body = aws.client("s3", region).get_object(Bucket=here.chart_bucket, Key=row[0])["Body"].read()
        if hashlib.sha256(body).hexdigest() != row[1]:
            raise RuntimeError(f"chart {row[0]} read in {region} does not match its scan row's SHA-256")
        checked = 1
    return Verification(what=f"{region} serves reads and writes",
                        how="a chart file read and checked against its scan row; a canary row written on the writer",
                        result="passed", checked=checked + 1)


def _check(work: Callable[[], Verification]) -> dict[str, Any]:
    """A check's outcome as step outputs. It never raises: the switch back must happen whatever it found, and
    `verdict` fails the run afterwards."""
    try:
        check = work()
    except Exception as error:  # a failed check is a result of the game day, recorded, not a crash
        return {"result": "failed", "detail": f"{type(error).__name__}: {error}", "verification": None}
    if check.result == "failed":
        return {"result": "failed", "detail": f"{check.what}: {check.detail}",
                "verification": check.model_dump(mode="json")}
    return {"result": "passed", "detail": f"{check.what}: {check.checked} checked",
            "verification": check.model_dump(mode="json")}


def verify_replication(ctx: RunContext) -> dict[str, Any]:
    """Step `verify-replication`: the DR archive (the writer now) against its replica in the primary region."""
    return _check(lambda: verify_archives(ctx.aws, ctx.topology, ctx.target.region))


def serve_from_dr(ctx: RunContext) -> dict[str, Any]:
    """Step `serve-from-dr`: DR serves a chart read and takes a canary row (in DR's records VPC on AWS)."""
    return _check(lambda: serve(ctx.aws, ctx.topology, ctx.target.region, ctx.run.run_id))


def verdict(ctx: RunContext) -> dict[str, Any]:
    """Fail the game day (after the switch back) when a check in DR failed, naming it."""
    failed = [f"{name}: {outputs['detail']}" for name in CHECKS
              if (outputs := ctx.output(name))["result"] != "passed"]
    if failed:
        raise RuntimeError("; ".join(failed))
    return {"passed": True}


def _succeeded(run: RunRecord, name: str) -> dict[str, Any] | None:
    record = run.steps.get(name)
    return record.outputs if record is not None and record.status == "succeeded" else None


def _leg_check(topology: Topology, number: int, run_id: str, record: StepRecord) -> Verification:
    leg = record.outputs if record.status == "succeeded" else {}
    rto, rpo = leg.get("rto_seconds"), leg.get("rpo_seconds")
    met = (rto is not None and rto <= topology.rto_minutes * 60 and rpo is not None
           and rpo <= topology.rpo_minutes * 60)
    return Verification(
        what=f"leg {number}: switchover to {region_of_run(run_id)} ({run_id})",
        how="RTO from the leg's journal, RPO from its canary row and object",
        result="passed" if record.status == "succeeded" and met else "failed", checked=1,
        detail=f"RTO {rto} s, RPO {rpo} s" + (f": {record.error}" if record.error else ""))


def _worst(legs: list[dict[str, Any]], which: str, target: float, how: str) -> Objective:
    known = [leg[which] for leg in legs if leg.get(which) is not None]
    return Objective(measured_seconds=max(known) if len(known) == len(LEGS) else None, target_seconds=target, how=how)


def _detail(run: RunRecord, record: StepRecord) -> str | None:
    if record.name in LEGS:
        return f"run {run.params['legs'][record.name]}" + (f": {record.error}" if record.error else "")
    if record.name in CHECKS and record.status == "succeeded":
        return str(record.outputs["detail"])
    return record.error


def game_day_evidence(run: RunRecord, topology: Topology, sandbox: bool) -> EvidenceRecord:
    """The game day's record (kind failover-drill) from its journal alone: a verification per leg that ran, the
    checks in DR, RTO and RPO of the worse leg, the downtime of both (charged to the availability budget)."""
    # The runbook's generic record (timeline with AWS calls, identity, times) under the evidence kind of a game day.
    base = driver.evidence_record(run.model_copy(update={"runbook": "failover-drill"}), topology, sandbox)
    ran = [(number, name) for number, name in enumerate(LEGS, start=1) if name in run.steps]
    legs = [_leg_check(topology, number, run.params["legs"][name], run.steps[name]) for number, name in ran]
    measured = [outputs for name in LEGS if (outputs := _succeeded(run, name)) is not None]
    checks = [outputs for name in CHECKS if (outputs := _succeeded(run, name)) is not None]
    errors = [RunError(message=record.error or "failed", step=record.name) for record in run.steps.values()
              if record.status != "succeeded" and record.name != "verdict"]
    errors += [RunError(message=str(outputs["detail"]), step=name) for name in CHECKS
               if (outputs := _succeeded(run, name)) is not None and outputs["result"] != "passed"]
    return base.model_copy(update={
        "from_region": topology.primary_region, "to_region": topology.dr_region,
        "timeline": tuple(step.model_copy(update={"detail": _detail(run, run.steps[step.name])})
                          for step in base.timeline),
        "rto": _worst(measured, "rto_seconds", topology.rto_minutes * 60, "the slower leg's RTO (each leg's journal)"),
        "rpo": _worst(measured, "rpo_seconds", topology.rpo_minutes * 60, "the larger leg's RPO (canaries)"),
        "downtime_seconds": sum(leg.get("rto_seconds") or 0.0 for leg in measured),
        "verifications": tuple(legs + [Verification.model_validate(check["verification"]) for check in checks
                                       if check["verification"] is not None]),
        "errors": tuple(errors),
    })
