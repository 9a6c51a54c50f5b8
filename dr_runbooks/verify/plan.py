"""Replication verification as an engine plan: compare the writer's chart archive with its replica, then judge.

The comparison step records what it found (counts by kind, a bounded sample of the differences) and does not fail on
differences; `verdict`, last, fails the run naming them. So the journal always holds the counts an auditor needs, and
a scheduled run is a FAILED execution exactly when the archives differ. The plan reads only (listings), so it takes no
lock: a check must not be refused because a switchover is under way, and it cannot disturb one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.drills.plans import VERIFY_LABEL, VERIFY_REPLICATION, verify_replication
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import LOCAL_RUNS, Journal, RunRecord, new_run_id
from dr_runbooks.engine.runner import Listener, execute
from dr_runbooks.evidence.record import EvidenceRecord, Identity
from dr_runbooks.observe import probes
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology
from dr_runbooks.verify.compare import ReplicationComparison, chart_archives
from dr_runbooks.verify.evidence import replication_evidence
from dr_runbooks.verify.model import ReplicationSummary

#: Differences kept in the journal beside the counts (the CLI's `--output json` lists them all).
SAMPLE = 20


def writer_region(aws: AwsSession, topology: Topology, region: str) -> str | None:
    """The region whose cluster writes, as `region` sees the global cluster; None when it cannot tell."""
    try:
        writer = probes.global_cluster(aws.client("rds", region), topology.global_cluster_id).writer()
    except (ClientError, BotoCoreError):
        return None
    return writer.region if writer else None


def verify_preflight(aws: AwsSession, topology: Topology, region: str) -> dict[str, Any]:
    """What the run compares: the current writer's archive (the primary's when no writer is seen) with its replica.
    Raises `Refused` (nothing changed) for a region the estate does not have."""
    try:
        topology.in_region(region)
    except ValueError as error:
        raise Refused(str(error)) from None
    writer = writer_region(aws, topology, region)
    source = writer or topology.primary_region
    replica = topology.partner(source)
    return {"writer_region": source, "writer_observed": writer is not None, "replica_region": replica,
            "writer_bucket": topology.in_region(source).chart_bucket,
            "replica_bucket": topology.in_region(replica).chart_bucket, "sample": SAMPLE}


def compare_archives(ctx: RunContext) -> dict[str, Any]:
    """Compare the two archives (ListObjectsV2, partitioned); the outputs are the summary, differences or not."""
    source, replica = chart_archives(ctx.aws, ctx.topology, ctx.params["writer_region"])
    report = ReplicationComparison(source, replica).run()
    return report.summary(int(ctx.params.get("sample", SAMPLE))).model_dump(mode="json")


def verdict(ctx: RunContext) -> dict[str, Any]:
    """Fail the run when the comparison found differences, naming their kinds and a first key."""
    summary = ReplicationSummary.model_validate(ctx.output("compare-archives"))
    if not summary.in_sync:
        counts = ", ".join(f"{kind}: {count:,}" for kind, count in sorted(summary.counts().items()))
        example = f" (e.g. {summary.sample[0].kind} {summary.sample[0].key})" if summary.sample else ""
        raise RuntimeError(f"{summary.replica} differs from {summary.source}: {counts}{example}")
    return {"in_sync": True, "compared": summary.compared}


def verify_evidence(run: RunRecord, topology: Topology, sandbox: bool) -> EvidenceRecord:
    """The run's record (kind verify-replication) from its journal: the comparison's counts and method when it ran,
    else the run's error."""
    compared = run.steps.get("compare-archives")
    if compared is None or compared.status != "succeeded":
        base = driver.evidence_record(run, topology, sandbox)
        return base.model_copy(update={"rto": None, "rpo": None, "outcome": "failed"})
    record = replication_evidence(
        ReplicationSummary.model_validate(compared.outputs), run_id=run.run_id, environment=run.env_name,
        source_region=run.params["writer_region"], replica_region=run.params["replica_region"],
        identity=Identity(caller_arn=run.operator, account=topology.account, mfa_used=run.mfa),
        started_at=datetime.fromtimestamp(compared.started_at, UTC), sandbox=sandbox)
    return record if run.status == "succeeded" else record.model_copy(update={"outcome": "failed"})


def new_verify_context(aws: AwsSession, topology: Topology, region: str, operator: str,
                       local_dir: Path = LOCAL_RUNS) -> RunContext:
    """Preflight, then a fresh run in `region` (its journal in that region's runbook table)."""
    params = verify_preflight(aws, topology, region)
    run = RunRecord(run_id=new_run_id(VERIFY_LABEL, region), runbook=VERIFY_REPLICATION, env_name=topology.env_name,
                    target_region=region, params=params, operator=operator, mfa=aws.mfa)
    journal = Journal(aws, region, topology.in_region(region).runbook_table, local_dir)
    return RunContext(run=run, topology=topology, aws=aws, journal=journal)


def run_verify_replication(ctx: RunContext, listener: Listener | None = None) -> RunRecord:
    return execute(verify_replication(), ctx, None, listener)
