"""Run the backup plan's rule now: back up the records cluster and the chart archive in the primary region's vault,
and copy both recovery points to the DR region's vault. Nothing is recorded beside them: a restore drill validates
what it restores against the live database as of the restore's own moment (`records_check`), as it must on AWS,
where scheduled jobs record nothing else either.

On AWS the deployed backup plan does this on its schedule; the sandbox has no scheduler, so a sandbox drill (and the
tests) call this first. It goes through the AWS Backup APIs only, like the plan would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

DONE = ("COMPLETED", "FAILED", "ABORTED", "EXPIRED")


@dataclass(frozen=True)
class BackedUp:
    """The DR vault's copies of one backup run: what a restore drill in the DR region restores."""

    database: str
    archive: str
    seconds: float


def cluster_arn(topology: Topology, region: str) -> str:
    return f"arn:aws:rds:{region}:{topology.account}:cluster:{topology.in_region(region).db_cluster_id}"


def bucket_arn(topology: Topology, region: str) -> str:
    return f"arn:aws:s3:::{topology.in_region(region).chart_bucket}"


def _until_done(describe: Any, state_of: Any, timeout: float) -> dict[str, Any]:
    retrying = Retrying(retry=retry_if_result(lambda found: state_of(found) not in DONE),
                        wait=wait_exponential(multiplier=0.05, max=1), stop=stop_after_delay(timeout), reraise=True)
    return retrying(describe)


def take_backups(aws: AwsSession, topology: Topology, timeout: float = 120) -> BackedUp:
    """Back up both data sets in the primary region, copy them to the DR vault; the DR copies' ARNs."""
    started = time.monotonic()
    primary, dr = topology.primary_region, topology.dr_region
    here, there = topology.in_region(primary), topology.in_region(dr)
    backup = aws.client("backup", primary)
    jobs = [backup.start_backup_job(BackupVaultName=here.backup_vault, ResourceArn=arn, IamRoleArn=here.backup_role_arn)
            for arn in (cluster_arn(topology, primary), bucket_arn(topology, primary))]
    copies = []
    for job in jobs:
        done = _until_done(lambda job=job: backup.describe_backup_job(BackupJobId=job["BackupJobId"]),
                           lambda found: found["State"], timeout)
        if done["State"] != "COMPLETED":
            raise RuntimeError(f"backup job {job['BackupJobId']} ended {done['State']}: {done.get('StatusMessage')}")
        copies.append(backup.start_copy_job(
            RecoveryPointArn=job["RecoveryPointArn"], SourceBackupVaultName=here.backup_vault,
            DestinationBackupVaultArn=f"arn:aws:backup:{dr}:{topology.account}:backup-vault:{there.backup_vault}",
            IamRoleArn=here.backup_role_arn))
    arns = []
    for copy in copies:
        done = _until_done(lambda copy=copy: backup.describe_copy_job(CopyJobId=copy["CopyJobId"])["CopyJob"],
                           lambda found: found["State"], timeout)
        if done["State"] != "COMPLETED":
            raise RuntimeError(f"copy job {copy['CopyJobId']} ended {done['State']}: {done.get('StatusMessage')}")
        arns.append(done["DestinationRecoveryPointArn"])
    return BackedUp(database=arns[0], archive=arns[1], seconds=round(time.monotonic() - started, 3))
