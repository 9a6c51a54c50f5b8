"""Verification checks as evidence, HIPAA 164.308(a)(7)(ii)(A): a replication check (kind `verify-replication`: the
backup copy exists) and a chart check (kind `verify-charts`: both copies are exact copies of what was scanned).

The check only builds the record; whoever runs it as part of a drill appends it to the environment's evidence chain,
so that one place decides where the chain lives.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dr_runbooks.evidence.record import AwsCall, EvidenceRecord, Identity, RunError, Step, Verification
from dr_runbooks.verify.charts import FAILING, ChartsReport
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


def charts_evidence(
    report: ChartsReport,
    *,
    environment: str,
    from_region: str,
    to_region: str,
    identity: Identity,
    started_at: datetime,
    sandbox: bool,
) -> EvidenceRecord:
    """The record of one `verify charts` run (kind `verify-charts`): per region what was checked, how, how many, and
    the findings as counts plus a digest of their list. Object keys name practices and patients, so none is sealed
    here; the run's `--output json` lists them, and the digest ties that list to this record."""
    ended_at = started_at + timedelta(seconds=report.seconds)
    chosen = (f"a random sample of {report.checked:,} of {report.scan_rows:,} scan rows (seed {report.sample_seed}: "
              "the same seed chooses the same rows)" if report.sampled else f"every scan row ({report.checked:,})")
    how = (f"{chosen} of the records database in {report.database_region}; each chart's current version in the "
           + ("region's bucket read (GetObject) and its bytes hashed with SHA-256"
              if report.method == "bytes" else "region's bucket: the full-object SHA-256 S3 stored with it "
              "(HeadObject ChecksumMode), the bytes hashed where none is stored")
           + ", compared with the row's SHA-256")
    failing = {region.region: sum(count for kind, count in region.counts.items() if kind in FAILING)
               for region in report.regions}
    digest = f"findings digest sha256:{report.findings_digest()}" if report.findings else None
    verifications = tuple(Verification(
        what=f"chart archive s3://{region.bucket} ({region.region}) against the SHA-256 of each chart's scan row",
        how=how,
        result="failed" if failing[region.region] or not region.checked else "passed",
        checked=region.checked,
        mismatched=failing[region.region],
        detail="; ".join(part for part in (
            ", ".join(f"{kind}: {count:,}" for kind, count in sorted(region.counts.items())),
            f"{region.read:,} read in full" if region.read else "", digest or "") if part) or None,
    ) for region in report.regions)
    errors = tuple(RunError(message=f"{count:,} charts {kind} in {region.region}", step="check-charts")
                   for region in report.regions for kind, count in sorted(region.counts.items()) if kind in FAILING)
    return EvidenceRecord(
        run_id=report.run_id,
        kind="verify-charts",
        environment=environment,
        from_region=from_region,
        to_region=to_region,
        identity=identity,
        started_at=started_at,
        ended_at=ended_at,
        outcome="succeeded" if report.passed else "failed",
        timeline=(Step(
            name="check-charts", started_at=started_at, ended_at=ended_at,
            outcome="succeeded" if report.passed else "failed",
            detail=f"{report.checked:,} scan rows, {len(report.regions)} regions, {report.requests:,} requests",
            aws_calls=tuple(AwsCall(service="s3", operation=operation, region=region.region, target=region.bucket)
                            for region in report.regions
                            for operation in ("HeadObject", "GetObject")[:2 if region.read else 1]),
        ),),
        verifications=verifications,
        errors=errors,
        sandbox=sandbox,
    )
