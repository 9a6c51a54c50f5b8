"""AWS Backup jobs emulation through the sandbox endpoint, as a restore drill calls it with boto3.

AWS's documented behaviour: jobs are asynchronous (polled with Describe*), a recovery point holds the resource as of
the backup, a restore returns that data and not later data, a copy job puts a recovery point in the other region's
vault, and bad input is refused with AWS Backup's errors. One sandbox (with its PostgreSQL pair) per module.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from ehr_dr_sandbox.api import Sandbox

from .records_db_sandbox import pair_of, records_db_sandbox

__all__ = ["records_db_sandbox"]

ROLE = "arn:aws:iam::123456789012:role/backup-service"


@pytest.fixture
def sandbox(records_db_sandbox: Sandbox) -> Sandbox:
    pair_of(records_db_sandbox).restore_home_layout()
    return records_db_sandbox


@pytest.fixture
def estate(sandbox: Sandbox) -> dict[str, Any]:
    topology = sandbox.topology
    primary, dr = topology.regions[topology.primary_region], topology.regions[topology.dr_region]
    rds = sandbox.client("rds", primary.region)
    cluster = rds.describe_db_clusters(DBClusterIdentifier=primary.db_cluster_id)["DBClusters"][0]
    return {"primary": primary, "dr": dr, "cluster_arn": cluster["DBClusterArn"],
            "backup": {region: sandbox.client("backup", region) for region in topology.regions},
            "database": topology.database_name}


def wait_for(describe: Callable[[], dict[str, Any]], field: str, timeout: float = 60) -> dict[str, Any]:
    """Poll a Describe* call until the job's `field` is final, as a runbook does; the last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = describe()
        if answer[field] in ("COMPLETED", "FAILED", "ABORTED"):
            return answer
        time.sleep(0.05)
    raise AssertionError(f"job still {answer[field]} after {timeout}s")


def with_instance(sandbox: Sandbox, region: str, cluster_id: str, timeout: float = 30) -> None:
    """AWS Backup restores an Aurora cluster without instances; nothing answers until one is available."""
    rds = sandbox.client("rds", region)
    rds.create_db_instance(DBInstanceIdentifier=f"{cluster_id}-1", DBClusterIdentifier=cluster_id,
                           Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    deadline = time.monotonic() + timeout
    while rds.describe_db_instances(DBInstanceIdentifier=f"{cluster_id}-1")["DBInstances"][0][
            "DBInstanceStatus"] != "available":
        assert time.monotonic() < deadline, f"{cluster_id}-1 not available after {timeout}s"
        time.sleep(0.05)


def connect(sandbox: Sandbox, region: str, cluster_id: str) -> psycopg.Connection[Any]:
    """A live cluster as its master user; a restored one as its own master user, with a password set now (it keeps
    the one of backup time otherwise)."""
    rds = sandbox.client("rds", region)
    if cluster_id in {here.db_cluster_id for here in sandbox.topology.regions.values()}:
        cluster = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
        return psycopg.connect(host=cluster["Endpoint"], port=cluster["Port"], dbname=cluster["DatabaseName"],
                               user="ehr_admin", autocommit=True, connect_timeout=3)
    rds.modify_db_cluster(DBClusterIdentifier=cluster_id, MasterUserPassword="set-by-the-test", ApplyImmediately=True)
    cluster = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    return psycopg.connect(host=cluster["Endpoint"], port=cluster["Port"], dbname=cluster["DatabaseName"],
                           user=cluster["MasterUsername"], password="set-by-the-test", autocommit=True,
                           connect_timeout=3)


def write_canary(sandbox: Sandbox, estate: dict[str, Any], run_id: str) -> None:
    with connect(sandbox, estate["primary"].region, estate["primary"].db_cluster_id) as conn:
        conn.execute("INSERT INTO dr_canary (run_id, region) VALUES (%s, %s)", (run_id, estate["primary"].region))


def back_up(estate: dict[str, Any], resource_arn: str) -> dict[str, Any]:
    backup = estate["backup"][estate["primary"].region]
    started = backup.start_backup_job(BackupVaultName=estate["primary"].backup_vault, ResourceArn=resource_arn,
                                      IamRoleArn=ROLE)
    return wait_for(lambda: backup.describe_backup_job(BackupJobId=started["BackupJobId"]), "State")


def restore(estate: dict[str, Any], region: str, recovery_point_arn: str, metadata: dict[str, str]) -> dict[str, Any]:
    """Restore with the point's own restore metadata (GetRecoveryPointRestoreMetadata) overridden by `metadata`, as
    AWS documents a caller should."""
    backup = estate["backup"][region]
    vault = next(here.backup_vault for here in (estate["primary"], estate["dr"]) if here.region == region)
    kept = backup.get_recovery_point_restore_metadata(BackupVaultName=vault,
                                                      RecoveryPointArn=recovery_point_arn)["RestoreMetadata"]
    started = backup.start_restore_job(RecoveryPointArn=recovery_point_arn, Metadata={**kept, **metadata},
                                       IamRoleArn=ROLE)
    return wait_for(lambda: backup.describe_restore_job(RestoreJobId=started["RestoreJobId"]), "Status")


def canaries(conn: psycopg.Connection[Any]) -> set[str]:
    return {row[0] for row in conn.execute("SELECT run_id FROM dr_canary")}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- the database ---------------------------------------------------------------------------------------------------


def test_a_database_backup_job_completes_into_a_recovery_point_of_the_vault(sandbox: Sandbox,
                                                                            estate: dict[str, Any]) -> None:
    backup = estate["backup"][estate["primary"].region]
    started = backup.start_backup_job(BackupVaultName=estate["primary"].backup_vault,
                                      ResourceArn=estate["cluster_arn"], IamRoleArn=ROLE)
    assert backup.describe_backup_job(BackupJobId=started["BackupJobId"])["State"] in ("CREATED", "RUNNING",
                                                                                        "COMPLETED")
    job = wait_for(lambda: backup.describe_backup_job(BackupJobId=started["BackupJobId"]), "State")
    assert (job["State"], job["ResourceType"], job["RecoveryPointArn"]) == (
        "COMPLETED", "Aurora", started["RecoveryPointArn"])
    point = backup.describe_recovery_point(BackupVaultName=estate["primary"].backup_vault,
                                           RecoveryPointArn=started["RecoveryPointArn"])
    assert point["Status"] == "COMPLETED" and point["BackupSizeInBytes"] > 0
    listed = backup.list_recovery_points_by_backup_vault(BackupVaultName=estate["primary"].backup_vault,
                                                         ByResourceArn=estate["cluster_arn"])["RecoveryPoints"]
    assert started["RecoveryPointArn"] in {listed_point["RecoveryPointArn"] for listed_point in listed}


def test_restoring_the_database_returns_the_recovery_points_data_not_later_data(sandbox: Sandbox,
                                                                               estate: dict[str, Any]) -> None:
    before, after = new_id("before-backup"), new_id("after-backup")
    write_canary(sandbox, estate, before)
    job = back_up(estate, estate["cluster_arn"])
    write_canary(sandbox, estate, after)
    restored_id = new_id("restored")
    restored = restore(estate, estate["primary"].region, job["RecoveryPointArn"],
                       {"DBClusterIdentifier": restored_id})
    assert restored["Status"] == "COMPLETED"
    assert restored["CreatedResourceArn"].endswith(f":cluster:{restored_id}")
    with_instance(sandbox, estate["primary"].region, restored_id)
    with connect(sandbox, estate["primary"].region, restored_id) as conn:
        found = canaries(conn)
    assert before in found and after not in found


def test_a_copy_job_lands_the_recovery_point_in_the_dr_vault_and_restores_there(sandbox: Sandbox,
                                                                              estate: dict[str, Any]) -> None:
    marker = new_id("copied")
    write_canary(sandbox, estate, marker)
    job = back_up(estate, estate["cluster_arn"])
    primary, dr = estate["primary"], estate["dr"]
    dr_vault_arn = estate["backup"][dr.region].describe_backup_vault(BackupVaultName=dr.backup_vault)["BackupVaultArn"]
    started = estate["backup"][primary.region].start_copy_job(
        RecoveryPointArn=job["RecoveryPointArn"], SourceBackupVaultName=primary.backup_vault,
        DestinationBackupVaultArn=dr_vault_arn, IamRoleArn=ROLE)
    copy = wait_for(lambda: estate["backup"][primary.region].describe_copy_job(
        CopyJobId=started["CopyJobId"])["CopyJob"], "State")
    assert copy["State"] == "COMPLETED"
    in_dr = estate["backup"][dr.region].list_recovery_points_by_backup_vault(
        BackupVaultName=dr.backup_vault)["RecoveryPoints"]
    landed = next(point for point in in_dr if point["RecoveryPointArn"] == copy["DestinationRecoveryPointArn"])
    assert landed["SourceBackupVaultArn"].endswith(f":backup-vault:{primary.backup_vault}")
    listed = estate["backup"][primary.region].list_copy_jobs(ByDestinationVaultArn=dr_vault_arn)["CopyJobs"]
    assert started["CopyJobId"] in {listed_job["CopyJobId"] for listed_job in listed}
    restored_id = new_id("restored-in-dr")
    assert restore(estate, dr.region, landed["RecoveryPointArn"], {"DBClusterIdentifier": restored_id})[
        "Status"] == "COMPLETED"
    with_instance(sandbox, dr.region, restored_id)
    with connect(sandbox, dr.region, restored_id) as conn:
        assert marker in canaries(conn)


def test_list_backup_jobs_filters_by_state_and_resource(sandbox: Sandbox, estate: dict[str, Any]) -> None:
    job = back_up(estate, estate["cluster_arn"])
    backup = estate["backup"][estate["primary"].region]
    completed = backup.list_backup_jobs(ByState="COMPLETED", ByResourceArn=estate["cluster_arn"])["BackupJobs"]
    assert job["BackupJobId"] in {listed["BackupJobId"] for listed in completed}
    assert backup.list_backup_jobs(ByState="FAILED", ByResourceArn=estate["cluster_arn"])["BackupJobs"] == []


# --- the chart archive ----------------------------------------------------------------------------------------------


def put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                  ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode())


def test_restoring_the_archive_returns_the_versions_of_the_backup_moment_not_later_ones(
        sandbox: Sandbox, estate: dict[str, Any]) -> None:
    bucket = estate["primary"].chart_bucket
    s3 = sandbox.client("s3", estate["primary"].region)
    prefix = f"charts/{new_id('practice')}/pt-1"
    put(s3, bucket, f"{prefix}/kept.pdf", b"%PDF first version")
    put(s3, bucket, f"{prefix}/deleted-later.pdf", b"%PDF deleted after the backup")
    job = back_up(estate, f"arn:aws:s3:::{bucket}")
    assert job["State"] == "COMPLETED"
    put(s3, bucket, f"{prefix}/kept.pdf", b"%PDF second version, after the backup")
    s3.delete_object(Bucket=bucket, Key=f"{prefix}/deleted-later.pdf")
    put(s3, bucket, f"{prefix}/added-later.pdf", b"%PDF added after the backup")
    target = new_id("restored-charts")
    restored = restore(estate, estate["primary"].region, job["RecoveryPointArn"],
                       {"DestinationBucketName": target, "NewBucket": "true"})
    assert (restored["Status"], restored["CreatedResourceArn"]) == ("COMPLETED", f"arn:aws:s3:::{target}")
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=target, Prefix=prefix).get("Contents", [])}
    assert keys == {f"{prefix}/kept.pdf", f"{prefix}/deleted-later.pdf"}
    assert s3.get_object(Bucket=target, Key=f"{prefix}/kept.pdf")["Body"].read() == b"%PDF first version"
    head = s3.head_object(Bucket=target, Key=f"{prefix}/kept.pdf", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"%PDF first version").digest()).decode()


# --- bad input: AWS Backup's errors, nothing made -------------------------------------------------------------------


def error_code(call: Callable[..., Any], **arguments: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call(**arguments)
    return str(raised.value.response["Error"]["Code"])


def test_a_backup_into_an_unknown_vault_is_refused_and_starts_no_job(sandbox: Sandbox, estate: dict[str, Any]) -> None:
    backup = estate["backup"][estate["primary"].region]
    jobs_before = len(backup.list_backup_jobs()["BackupJobs"])
    assert error_code(backup.start_backup_job, BackupVaultName="no-such-vault", ResourceArn=estate["cluster_arn"],
                      IamRoleArn=ROLE) == "ResourceNotFoundException"
    assert len(backup.list_backup_jobs()["BackupJobs"]) == jobs_before


def test_a_backup_of_an_unknown_cluster_is_refused(sandbox: Sandbox, estate: dict[str, Any]) -> None:
    backup = estate["backup"][estate["primary"].region]
    assert error_code(backup.start_backup_job, BackupVaultName=estate["primary"].backup_vault,
                      ResourceArn="arn:aws:rds:us-east-1:123456789012:cluster:nope",
                      IamRoleArn=ROLE) == "ResourceNotFoundException"


def test_a_backup_of_another_regions_resource_is_refused(sandbox: Sandbox, estate: dict[str, Any]) -> None:
    """A backup job backs up its own region's resources; only a copy job crosses regions."""
    backup = estate["backup"][estate["dr"].region]
    for resource in (estate["cluster_arn"], f"arn:aws:s3:::{estate['primary'].chart_bucket}"):
        assert error_code(backup.start_backup_job, BackupVaultName=estate["dr"].backup_vault, ResourceArn=resource,
                          IamRoleArn=ROLE) == "ResourceNotFoundException"


def test_a_backup_of_an_unsupported_resource_is_an_invalid_parameter(sandbox: Sandbox,
                                                                     estate: dict[str, Any]) -> None:
    backup = estate["backup"][estate["primary"].region]
    assert error_code(backup.start_backup_job, BackupVaultName=estate["primary"].backup_vault,
                      ResourceArn="arn:aws:dynamodb:us-east-1:123456789012:table/t",
                      IamRoleArn=ROLE) == "InvalidParameterValueException"


def test_a_database_restore_without_a_cluster_id_is_a_missing_parameter(sandbox: Sandbox,
                                                                        estate: dict[str, Any]) -> None:
    job = back_up(estate, estate["cluster_arn"])
    backup = estate["backup"][estate["primary"].region]
    assert error_code(backup.start_restore_job, RecoveryPointArn=job["RecoveryPointArn"], Metadata={},
                      IamRoleArn=ROLE) == "MissingParameterValueException"


def test_a_restore_onto_an_existing_cluster_id_fails_and_leaves_that_cluster_alone(
        sandbox: Sandbox, estate: dict[str, Any]) -> None:
    job = back_up(estate, estate["cluster_arn"])
    restored = restore(estate, estate["primary"].region, job["RecoveryPointArn"],
                       {"DBClusterIdentifier": estate["primary"].db_cluster_id})
    assert restored["Status"] == "FAILED" and "already exists" in restored["StatusMessage"]
    with connect(sandbox, estate["primary"].region, estate["primary"].db_cluster_id) as conn:
        assert conn.info.dbname == estate["database"]


def test_an_aurora_restore_without_the_engine_is_refused_as_restore_db_cluster_from_snapshot_refuses_it(
        sandbox: Sandbox, estate: dict[str, Any]) -> None:
    job = back_up(estate, estate["cluster_arn"])
    backup = estate["backup"][estate["primary"].region]
    assert error_code(backup.start_restore_job, RecoveryPointArn=job["RecoveryPointArn"],
                      Metadata={"DBClusterIdentifier": new_id("no-engine")}, IamRoleArn=ROLE) == \
        "MissingParameterValueException"


def test_the_restore_metadata_is_the_clusters_configuration_at_backup_time(sandbox: Sandbox,
                                                                          estate: dict[str, Any]) -> None:
    job = back_up(estate, estate["cluster_arn"])
    answer = estate["backup"][estate["primary"].region].get_recovery_point_restore_metadata(
        BackupVaultName=estate["primary"].backup_vault, RecoveryPointArn=job["RecoveryPointArn"])
    metadata = answer["RestoreMetadata"]
    assert answer["ResourceType"] == "Aurora"
    assert metadata["DBClusterIdentifier"] == estate["primary"].db_cluster_id
    assert metadata["Engine"] == "aurora-postgresql" and metadata["DatabaseName"] == estate["database"]


def test_recovery_points_are_listed_a_page_at_a_time(sandbox: Sandbox, estate: dict[str, Any]) -> None:
    vault = estate["primary"].backup_vault
    backup = estate["backup"][estate["primary"].region]
    for _ in range(3):
        back_up(estate, estate["cluster_arn"])
    first = backup.list_recovery_points_by_backup_vault(BackupVaultName=vault, MaxResults=2)
    assert len(first["RecoveryPoints"]) == 2 and first["NextToken"]
    every = [point["RecoveryPointArn"] for page in backup.get_paginator("list_recovery_points_by_backup_vault")
             .paginate(BackupVaultName=vault, PaginationConfig={"PageSize": 2}) for point in page["RecoveryPoints"]]
    assert len(every) == len(set(every)) >= 3


def test_jobs_and_recovery_points_are_regional(sandbox: Sandbox, estate: dict[str, Any]) -> None:
    job = back_up(estate, estate["cluster_arn"])
    elsewhere = estate["backup"][estate["dr"].region]
    assert error_code(elsewhere.describe_backup_job, BackupJobId=job["BackupJobId"]) == "ResourceNotFoundException"
    assert error_code(elsewhere.start_restore_job, RecoveryPointArn=job["RecoveryPointArn"],
                      Metadata={"DBClusterIdentifier": new_id("x")}, IamRoleArn=ROLE) == "ResourceNotFoundException"


def test_an_unknown_copy_job_is_not_found(sandbox: Sandbox, estate: dict[str, Any]) -> None:
    backup = estate["backup"][estate["primary"].region]
    assert error_code(backup.describe_copy_job, CopyJobId="nope") == "ResourceNotFoundException"


def test_the_backup_plans_do_not_run_unless_the_sandbox_is_told_to(sandbox: Sandbox) -> None:
    """Tests start sandboxes without the plans' schedule (they stay fast); `drctl sandbox up` turns it on."""
    assert sandbox.status()["backup_plans"]["interval_seconds"] is None
    assert sandbox.status()["backup_plans"]["hours_played"] == 0
