"""A replication check as evidence (kind `verify-replication`, HIPAA 164.308(a)(7)(ii)(A): the backup copy exists).

The check only builds the record; whoever runs it as part of a drill appends it to the environment's evidence chain,
so that one place decides where the chain lives.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dr_runbooks.evidence.record import AwsCall, EvidenceRecord, Identity, RunError, Step, Verification
from dr_runbooks.verify.model import ReplicationReport, ReplicationSummary


def _method(report: ReplicationReport | ReplicationSummary) -> str:
    if report.mode == "inventory":
        return ("S3 Inventory reports of both buckets compared key by key: presence, size and delete markers of "
                "every current version")
    listing = "ListObjectsV2" if report.listing == "current" else "ListObjectVersions"
    checks = "size and SHA-256 checksum (HeadObject ChecksumMode)" if report.deep else "size"
    return f"{listing} listings of both buckets merged key by key: presence, {checks}, delete markers"


def replication_evidence(
    report: ReplicationReport | ReplicationSummary,
    *,
    run_id: str,
    environment: str,
    source_region: str,
    replica_region: str,
    identity: Identity,
    started_at: datetime,
    sandbox: bool,
) -> EvidenceRecord:
    """The record of one `verify replication` run (with its re-drives, if any) that started at `started_at`: from the
    full report, or from the summary a plan run journaled (the counts are whole either way)."""
    differences = sum(report.counts().values())
    compared_until = started_at + timedelta(seconds=report.seconds)
    operation = "ListObjectsV2" if report.listing == "current" else "ListObjectVersions"
    steps = [Step(
        name="compare-archives", started_at=started_at, ended_at=compared_until,
        outcome="succeeded" if report.in_sync else "failed",
        detail=f"{report.compared:,} keys, {differences:,} differences, {report.requests:,} requests",
        aws_calls=(AwsCall(service="s3", operation=operation, region=source_region, target=report.source),
                   AwsCall(service="s3", operation=operation, region=replica_region, target=report.replica)),
    )]
    errors = [RunError(message=f"{count:,} keys {kind}", step="compare-archives")
              for kind, count in sorted(report.counts().items())]
    if report.repairs:
        failed = [repair for repair in report.repairs if repair.error]
        steps.append(Step(
            name="redrive-replication", started_at=compared_until, ended_at=compared_until,
            outcome="failed" if failed else "succeeded",
            detail=f"{len(report.repairs) - len(failed):,} versions copied in place on the source",
            aws_calls=(AwsCall(service="s3", operation="CopyObject", region=source_region, target=report.source),),
        ))
        errors += [RunError(message=f"re-drive of {repair.key} failed: {repair.error}", step="redrive-replication")
                   for repair in failed]
    return EvidenceRecord(
        run_id=run_id,
        kind="verify-replication",
        environment=environment,
        from_region=source_region,
        to_region=replica_region,
        identity=identity,
        started_at=started_at,
        ended_at=steps[-1].ended_at,
        outcome="succeeded" if report.in_sync else "failed",
        timeline=tuple(steps),
        verifications=(Verification(
            what=f"chart archive replica {report.replica} of {report.source}",
            how=_method(report),
            result="passed" if report.in_sync else "failed",
            checked=report.compared,
            mismatched=differences,
            detail=", ".join(f"{kind}: {count:,}" for kind, count in sorted(report.counts().items())) or None,
        ),),
        errors=tuple(errors),
        sandbox=sandbox,
    )
