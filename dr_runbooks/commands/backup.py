"""`drctl backup`: an on-demand backup of both data sets, where the writer is, copied to the other region's vault.

What the backup plan does on its schedule, now (say, before a risky change): StartBackupJob of the records cluster and
the chart bucket in the writer region's vault, StartCopyJob of each recovery point to the partner region's vault once
it completed, both waited for (progress on stderr, bounded by `--timeout`), and an evidence record (kind `backup`,
HIPAA 164.308(a)(7)(ii)(A), data backup plan). It only adds recovery points, so it needs no MFA, and it takes no
runbook lock: a backup neither disturbs a switchover nor must wait for one.

Which region writes is observed (DescribeGlobalClusters, asked in both regions at once), never configured: after a
switchover or failover the backup follows the writer. Exit codes as every drctl command: 0 both copies completed;
1 a job failed or outlasted the timeout (the evidence says which); 2 refused before starting anything (no topology, no
writer, the writer's or the copy's region does not answer).
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.commands.common import EXIT_DONE, EXIT_FAILED, Options, aws_options, refusals
from dr_runbooks.commands.oncall import DEFAULT_REGIONS
from dr_runbooks.commands.render import err, out
from dr_runbooks.drills.backups import BackedUp, BackupFailed, Job, take_backups
from dr_runbooks.drills.running import append_evidence
from dr_runbooks.engine.journal import new_run_id
from dr_runbooks.evidence.record import AwsCall, EvidenceRecord, Identity, RunError, Step, Verification
from dr_runbooks.evidence.store import DEFAULT_EVIDENCE_DIR
from dr_runbooks.observe import probes, race
from dr_runbooks.runbooks.estate import Refused, load_topology_anywhere
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

#: Seconds the preflight waits for both regions to answer (probe clients): a dark region is a refusal in seconds.
PREFLIGHT_BUDGET_SECONDS = 6.0
#: Default bound on the whole wait (backups, then copies); an Aurora snapshot of a large cluster takes longer on AWS.
DEFAULT_TIMEOUT_SECONDS = 3600


def _one_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def observed_writer(aws: AwsSession, topology: Topology, budget: float = PREFLIGHT_BUDGET_SECONDS) -> str:
    """The region that writes, as DescribeGlobalClusters answers in either region, once both its vault and the
    partner's vault answer; `Refused` (nothing started) otherwise."""
    started = time.monotonic()
    answers = race.start({region: lambda region=region: probes.global_cluster(
        aws.client("rds", region, probe=True), topology.global_cluster_id) for region in topology.regions})
    wait(answers.values(), timeout=budget)
    seen = [future.result().writer() for future in answers.values() if future.done() and future.exception() is None]
    writers = {member.region for member in seen if member is not None}
    if len(writers) != 1:
        said = "both regions name a writer" if writers else "no region reports a writer of the global cluster"
        raise Refused(f"{said}: a backup is taken where the writer is (drctl status says why)")
    writer = writers.pop()
    vaults = race.start({region: lambda region=region: aws.client("backup", region, probe=True).describe_backup_vault(
        BackupVaultName=topology.in_region(region).backup_vault) for region in topology.regions})
    wait(vaults.values(), timeout=max(budget - (time.monotonic() - started), 1.0))
    for region in (writer, topology.partner(writer)):
        role = "the writer's region" if region == writer else "the region its copy goes to"
        future = vaults[region]
        if not future.done():
            raise Refused(f"{role} {region} does not answer within {budget:.0f} s (AWS Backup): nothing started")
        if isinstance(future.exception(), (BotoCoreError, ClientError)):
            raise Refused(f"{role} {region} does not answer (AWS Backup: {_one_line(future.exception())}): "
                          "nothing started")
        future.result()
    return writer


def _step(job: Job, topology: Topology) -> Step:
    target = topology.in_region(job.region).backup_vault
    return Step(name=f"{'backup' if job.operation == 'StartBackupJob' else 'copy'}-{job.name}",
                started_at=job.started_at, ended_at=job.ended_at,
                outcome="succeeded" if job.state == "COMPLETED" else "failed",
                detail=f"{job.job_id} {job.state}" + (f": {job.message}" if job.message else "")
                + (f", recovery point {job.recovery_point}" if job.recovery_point else ""),
                aws_calls=(AwsCall(service="backup", operation=job.operation, region=job.region, target=target),))


def backup_evidence(topology: Topology, writer: str, identity: Identity, started_at: datetime, jobs: tuple[Job, ...],
                    error: str | None, sandbox: bool) -> EvidenceRecord:
    """The run as evidence: one step per job, one verification per data set (its copy completed in the partner
    vault)."""
    partner = topology.partner(writer)
    here, there = topology.in_region(writer), topology.in_region(partner)
    what = {"database": f"records cluster {here.db_cluster_id}", "archive": f"chart archive {here.chart_bucket}"}
    verifications = []
    for name, label in what.items():
        copy = next((job for job in jobs if job.name == name and job.operation == "StartCopyJob"), None)
        ok = copy is not None and copy.state == "COMPLETED"
        verifications.append(Verification(
            what=f"{label} backed up in {here.backup_vault} ({writer}) and copied to {there.backup_vault} ({partner})",
            how="StartBackupJob in the writer region's vault, StartCopyJob of its recovery point to the partner "
                "vault, DescribeBackupJob / DescribeCopyJob until COMPLETED",
            result="passed" if ok else "failed", checked=1, mismatched=0 if ok else 1,
            detail=copy.recovery_point if ok and copy else None))
    return EvidenceRecord(
        run_id=new_run_id("backup", writer),
        kind="backup", environment=topology.env_name, from_region=writer, to_region=partner, identity=identity,
        started_at=started_at, ended_at=max([datetime.now(UTC), *(job.ended_at for job in jobs)]),
        outcome="failed" if error else "succeeded",
        timeline=tuple(_step(job, topology) for job in jobs), verifications=tuple(verifications),
        errors=(RunError(message=error),) if error else (), sandbox=sandbox)


def _summary(record: EvidenceRecord, backed_up: BackedUp | None) -> dict[str, Any]:
    return {"run_id": record.run_id, "passed": record.passed, "region": record.from_region,
            "copied_to": record.to_region,
            "copies": {"database": backed_up.database, "archive": backed_up.archive} if backed_up else None,
            "seconds": record.duration_seconds, "errors": [error.message for error in record.errors]}


@click.command("backup")
@click.option("--timeout", type=click.FloatRange(min=1), default=DEFAULT_TIMEOUT_SECONDS, show_default=True,
              help="seconds to wait for the backups and their copies before giving up (the jobs go on in AWS)")
@click.option("--evidence-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_EVIDENCE_DIR,
              show_default=True, help="the local evidence chain (drctl report reads it)")
@aws_options
@refusals
def backup(options: Options, timeout: float, evidence_dir: Path) -> None:
    """Back up the records database and the chart archive now, in the writer's region, copied to the other region's
    vault; waits for both copies and records evidence. No MFA: it only adds recovery points."""
    aws = options.session()
    topology = load_topology_anywhere(aws, options.env_name, DEFAULT_REGIONS)
    writer = observed_writer(aws, topology)
    identity = aws.identity(writer)
    started_at = datetime.now(UTC)
    quiet = options.as_json
    if not quiet:
        err.print(f"backing up in {writer} ({topology.in_region(writer).backup_vault}), copying to "
                  f"{topology.partner(writer)}")
    backed_up, error, jobs = None, None, ()
    try:
        backed_up = take_backups(aws, topology, timeout=timeout, region=writer,
                                 progress=None if quiet else lambda line: err.print(f"  {line}"))
        jobs = backed_up.jobs
    except BackupFailed as failed:
        error, jobs = str(failed), failed.jobs
    except Exception as failed:  # an API or database error mid-way: the run still leaves its evidence
        error = f"{type(failed).__name__}: {_one_line(failed)}"
    record = backup_evidence(topology, writer, Identity(caller_arn=identity.arn, account=topology.account,
                                                        mfa_used=identity.mfa),
                             started_at, jobs, error, bool(options.endpoint_url))
    sealed = append_evidence(aws, topology, record, evidence_dir)
    summary = _summary(sealed, backed_up)
    if options.as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        verdict = "[green]backed up[/]" if sealed.passed else "[red]FAILED[/]"
        out.print(f"{verdict} {sealed.run_id} in {summary['seconds']:.1f} s: {writer} -> {sealed.to_region}")
        for check in sealed.verifications:
            out.print(f"  {check.result}: {check.what}" + (f" ({check.detail})" if check.detail else ""))
        for problem in sealed.errors:
            out.print(f"  [red]error:[/] {problem.message}")
    sys.exit(EXIT_DONE if sealed.passed else EXIT_FAILED)
