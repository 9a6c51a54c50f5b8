"""Run the backup plan's rule now: back up the records cluster and the chart archive in one region's vault (the
writer's: `drctl backup` observes it) and copy both recovery points to the partner region's vault. Nothing is recorded
beside them: a restore drill validates what it restores against the live database as of the restore's own moment
(`records_check`), as it must on AWS, where scheduled jobs record nothing else either.

On AWS the deployed backup plan does this on its schedule (the sandbox runs that plan too, `backup_jobs.py`); a drill
that needs a backup of this moment, and `drctl backup`, call this. It goes through the AWS Backup APIs only, like the
plan would: StartBackupJob, then StartCopyJob once the backup completed (AWS Backup Developer Guide, "Creating a
backup copy across AWS Regions"), each followed with Describe* until it ends, within `timeout`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

DONE = ("COMPLETED", "FAILED", "ABORTED", "EXPIRED")
#: The two data sets, by the name their jobs carry in progress lines and evidence.
DATA_SETS = ("database", "archive")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """One backup or copy job as it ended (or as far as it got): what evidence shows of it."""

    name: str
    operation: str
    region: str
    job_id: str
    started_at: datetime
    ended_at: datetime
    state: str
    recovery_point: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class BackedUp:
    """One backup run: the copies in the partner vault (what a restore drill there restores), where it was taken,
    and every job."""

    database: str
    archive: str
    seconds: float
    region: str = ""
    copied_to: str = ""
    jobs: tuple[Job, ...] = field(default=())


class BackupFailed(RuntimeError):
    """A job ended other than COMPLETED, or did not end within the timeout; `jobs` holds every job so far."""

    def __init__(self, message: str, jobs: list[Job]):
        super().__init__(message)
        self.jobs = tuple(jobs)


def cluster_arn(topology: Topology, region: str) -> str:
    return f"arn:aws:rds:{region}:{topology.account}:cluster:{topology.in_region(region).db_cluster_id}"


def bucket_arn(topology: Topology, region: str) -> str:
    return f"arn:aws:s3:::{topology.in_region(region).chart_bucket}"


def vault_arn(topology: Topology, region: str) -> str:
    return f"arn:aws:backup:{region}:{topology.account}:backup-vault:{topology.in_region(region).backup_vault}"


def _until_done(describe: Callable[[], dict[str, Any]], state_of: Callable[[dict[str, Any]], str], timeout: float,
                progress: Progress | None = None, what: str = "") -> dict[str, Any]:
    """Describe until the job's state is final; each new state goes to `progress`. Raises tenacity's RetryError when
    `timeout` runs out first."""
    seen: list[str] = []
    started = time.monotonic()

    def poll() -> dict[str, Any]:
        found = describe()
        if progress is not None and (not seen or seen[-1] != state_of(found)):
            seen.append(state_of(found))
            progress(f"{what}: {state_of(found)} ({time.monotonic() - started:.0f} s)")
        return found

    retrying = Retrying(retry=retry_if_result(lambda found: state_of(found) not in DONE),
                        wait=wait_exponential(multiplier=0.05, max=1), stop=stop_after_delay(timeout), reraise=True)
    return retrying(poll)


def take_backups(aws: AwsSession, topology: Topology, timeout: float = 120, region: str | None = None,
                 progress: Progress | None = None) -> BackedUp:
    """Back up both data sets in `region`'s vault (default: the primary's), copy them to the partner region's vault;
    the copies' ARNs. Raises `BackupFailed` (with the jobs so far) when a job fails or outlasts `timeout`."""
    started = time.monotonic()
    region = region or topology.primary_region
    partner = topology.partner(region)
    here = topology.in_region(region)
    backup = aws.client("backup", region)
    jobs: list[Job] = []

    def follow(name: str, operation: str, job_id: str, since: datetime, describe: Callable[[], dict[str, Any]],
               state_key: str, point_key: str) -> Job:
        try:
            done = _until_done(describe, lambda found: found[state_key], timeout, progress,
                               f"{operation} {name} {job_id}")
        except RetryError as error:
            last = error.last_attempt.result()
            job = Job(name, operation, region, job_id, since, datetime.now(UTC), last[state_key],
                      last.get(point_key), f"not done after {timeout:.0f} s")
            jobs.append(job)
            raise BackupFailed(f"{operation} {job_id} ({name}) still {last[state_key]} after {timeout:.0f} s",
                               jobs) from None
        job = Job(name, operation, region, job_id, since, datetime.now(UTC), done[state_key], done.get(point_key),
                  done.get("StatusMessage"))
        jobs.append(job)
        if job.state != "COMPLETED":
            raise BackupFailed(f"{operation} {job_id} ({name}) ended {job.state}: {job.message}", jobs)
        return job

    resources = {"database": cluster_arn(topology, region), "archive": bucket_arn(topology, region)}
    started_backups = {name: (datetime.now(UTC), backup.start_backup_job(
        BackupVaultName=here.backup_vault, ResourceArn=arn, IamRoleArn=here.backup_role_arn))
        for name, arn in resources.items()}
    started_copies = {}
    for name, (since, job) in started_backups.items():
        follow(name, "StartBackupJob", job["BackupJobId"], since,
               lambda job=job: backup.describe_backup_job(BackupJobId=job["BackupJobId"]), "State",
               "RecoveryPointArn")
        started_copies[name] = (datetime.now(UTC), backup.start_copy_job(
            RecoveryPointArn=job["RecoveryPointArn"], SourceBackupVaultName=here.backup_vault,
            DestinationBackupVaultArn=vault_arn(topology, partner), IamRoleArn=here.backup_role_arn))
    copies = {name: follow(name, "StartCopyJob", copy["CopyJobId"], since,
                           lambda copy=copy: backup.describe_copy_job(CopyJobId=copy["CopyJobId"])["CopyJob"], "State",
                           "DestinationRecoveryPointArn")
              for name, (since, copy) in started_copies.items()}
    database, archive = (str(copies[name].recovery_point) for name in DATA_SETS)
    return BackedUp(database=database, archive=archive, seconds=round(time.monotonic() - started, 3), region=region,
                    copied_to=partner, jobs=tuple(jobs))
