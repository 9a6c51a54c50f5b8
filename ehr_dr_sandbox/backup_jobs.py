"""AWS Backup jobs emulation: backups, recovery points, copies and restores of the database and the chart archive.

moto 5.2.5 has backup vaults and plans but none of the job APIs. These follow AWS's request and response shapes
(serialized by moto's serializer against botocore's model) and AWS's lifecycle: a Start* call returns at once, the
job runs in a background thread (`CREATED` -> `RUNNING` -> `COMPLETED` or `FAILED`, restores `PENDING` ->
`RUNNING` -> ...), and the caller polls Describe*. Jobs and recovery points are regional: each lives in the region
of its vault, and a Describe in another region does not find it.

What a recovery point holds, so a restore drill restores real data:
- **Aurora cluster** (`arn:aws:rds:<region>:<account>:cluster:<id>`): a custom-format `pg_dump` of the cluster's
  database taken from the node writing at that moment (one snapshot: later writes are not in it), in
  `<state dir>/backups/`. Restoring it (`Metadata.DBClusterIdentifier`) creates a new PostgreSQL database on the
  writer, `pg_restore`s the dump into it and creates a moto cluster of that id whose endpoint, port and
  DatabaseName lead to it, in `Metadata.DBSubnetGroupName` and `Metadata.VpcSecurityGroupIds` (a JSON list) when
  given, both checked to exist. Like AWS, the restored cluster has **no DB instance**: nothing answers on its
  endpoint (its database refuses connections, `ALLOW_CONNECTIONS false`) until an instance added with
  CreateDBInstance(DBClusterIdentifier=...) has gone `creating` -> `available` (`INSTANCE_CREATE_SECONDS` here,
  about ten minutes on AWS); once its last instance is deleted it refuses them again. Deleting the cluster while an
  instance of it is not `deleting` fails with InvalidDBClusterStateFault: moto 5.2.5 already does that (measured).
- **S3 bucket** (`arn:aws:s3:::<bucket>`): a point-in-time manifest, the version id of every current object (delete
  markers excluded) at that moment, not a copy: versioning plus Object Lock keep those versions. Restoring it
  (`Metadata.DestinationBucketName`, `NewBucket=true` to create it) copies exactly those versions into the bucket.
- A **copy job** copies a recovery point (the dump file, or the manifest) into a vault of the other region, where it
  is a recovery point of its own (`SourceBackupVaultArn` set).

- **GetRecoveryPointRestoreMetadata** answers the resource's configuration as it was at backup time (AWS Backup API
  reference, GetRecoveryPointRestoreMetadata; for Aurora, the parameters of RestoreDBClusterFromSnapshot that "Restore
  an Amazon Aurora cluster" in the AWS Backup guide lists: DBClusterIdentifier, Engine, EngineVersion, Port,
  DBSubnetGroupName, VpcSecurityGroupIds, KmsKeyId, DatabaseName, ...; for S3, the source bucket and its encryption).
  StartRestoreJob of an Aurora point needs `Engine`, which RestoreDBClusterFromSnapshot requires, so a caller that
  builds metadata from scratch instead of starting from that answer fails as it would on AWS.
- **A restored cluster keeps the master password of backup time** (FACTS; "Restoring from a DB cluster snapshot":
  the restored cluster has the snapshot's master user). PostgreSQL roles are server-wide, so each restored cluster
  gets its own master role (its DescribeDBClusters `MasterUsername`) whose password is the live secret's at backup
  time; ModifyDBCluster(MasterUserPassword) sets it, as on AWS. After the live secret rotates, only a new password
  set through ModifyDBCluster lets anyone in.
- **Lists are paginated** (ListRecoveryPointsByBackupVault, ListBackupJobs, ListCopyJobs): `MaxResults` (1-1000)
  per page and a `NextToken` for the rest; without MaxResults the sandbox answers `DEFAULT_PAGE_SIZE` items, so a
  caller that reads one page misses the rest here as it would on AWS (which caps pages at its own size).

Simplifications, on purpose: IdempotencyToken, windows and lifecycles are accepted and ignored; recovery point ARNs
use AWS Backup's generic form for both resource types.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto.s3.models import FakeDeleteMarker
from psycopg import sql

from dr_runbooks.topology import Topology
from ehr_dr_sandbox.aurora_global import bind_cluster
from ehr_dr_sandbox.dispatch import Call, Forward, Registry, Reply
from ehr_dr_sandbox.emulated_api import ApiError, answer
from ehr_dr_sandbox.postgres_pair import Node, PostgresError, PostgresPair

log = logging.getLogger(__name__)

AURORA, S3 = "Aurora", "S3"
#: The owner of restored databases: the cluster master user of the sandbox's records database.
RESTORE_OWNER = "ehr_admin"
#: Items of a list answer without MaxResults (small, so one-page readers fail here, not first on AWS).
DEFAULT_PAGE_SIZE = 10
#: How long a DB instance added to a restored cluster stays `creating` before it is `available`.
INSTANCE_CREATE_SECONDS = 0.5
_CLUSTER_ARN = re.compile(r"^arn:aws:rds:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):cluster:(?P<id>[A-Za-z0-9-]+)$")
_BUCKET_ARN = re.compile(r"^arn:aws:s3:::(?P<bucket>[a-z0-9.-]{3,63})$")
_VAULT_ARN = re.compile(r"^arn:aws:backup:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):backup-vault:(?P<name>[\w.-]+)$")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RecoveryPoint:
    """AWS's RecoveryPointByBackupVault / DescribeRecoveryPoint fields, plus what the sandbox restores from."""

    recovery_point_arn: str
    backup_vault_name: str
    backup_vault_arn: str
    resource_arn: str
    resource_type: str
    iam_role_arn: str
    encryption_key_arn: str | None
    creation_date: datetime = field(default_factory=_now)
    completion_date: datetime | None = None
    status: str = "CREATING"
    backup_size_in_bytes: int = 0
    source_backup_vault_arn: str | None = None
    is_encrypted: bool = True
    dump: Path | None = None
    manifest: list[tuple[str, str]] | None = None
    source_bucket: str | None = None
    #: The resource's configuration at backup time (GetRecoveryPointRestoreMetadata); copies carry it along.
    restore_metadata: dict[str, str] = field(default_factory=dict)
    #: An Aurora point's master password at backup time (what a cluster restored from it keeps).
    master_password: str | None = None


@dataclass
class BackupJob:
    account_id: str
    backup_job_id: str
    backup_vault_name: str
    backup_vault_arn: str
    recovery_point_arn: str
    resource_arn: str
    resource_type: str
    iam_role_arn: str
    creation_date: datetime = field(default_factory=_now)
    completion_date: datetime | None = None
    state: str = "CREATED"
    status_message: str | None = None
    percent_done: str = "0.0"
    backup_size_in_bytes: int = 0
    is_parent: bool = False


@dataclass
class CopyJob:
    account_id: str
    copy_job_id: str
    source_backup_vault_arn: str
    source_recovery_point_arn: str
    destination_backup_vault_arn: str
    destination_recovery_point_arn: str
    resource_arn: str
    resource_type: str
    iam_role_arn: str
    creation_date: datetime = field(default_factory=_now)
    completion_date: datetime | None = None
    state: str = "CREATED"
    status_message: str | None = None
    backup_size_in_bytes: int = 0
    is_parent: bool = False


@dataclass
class RestoreJob:
    account_id: str
    restore_job_id: str
    recovery_point_arn: str
    iam_role_arn: str
    resource_type: str
    creation_date: datetime = field(default_factory=_now)
    completion_date: datetime | None = None
    status: str = "PENDING"
    status_message: str | None = None
    percent_done: str = "0.0"
    backup_size_in_bytes: int = 0
    created_resource_arn: str | None = None


class BackupJobs:
    """The job APIs of every region of the sandbox; `backend(service, region)` gives moto's backends."""

    def __init__(self, pair: PostgresPair, topology: Topology, backend: Callable[[str, str], Any], store: Path,
                 workers: int = 2):
        self.pair = pair
        self.topology = topology
        self.backend = backend
        self.store = store
        self.recovery_points: dict[str, RecoveryPoint] = {}
        self.backup_jobs: dict[str, BackupJob] = {}
        self.copy_jobs: dict[str, CopyJob] = {}
        self.restore_jobs: dict[str, RestoreJob] = {}
        self._regions: dict[str, str] = {}  # job or recovery point id -> its region
        self._databases = {resources.db_cluster_id: topology.database_name for resources in topology.regions.values()}
        self._restored: dict[tuple[str, str], str] = {}  # (region, restored cluster id) -> its database
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backup-job")
        self._futures: list[Future[None]] = []

    # --- lookups, each an AWS error when missing ------------------------------------------------------------------

    def vault(self, region: str, name: str | None) -> Any:
        vault = self.backend("backup", region).vaults.get(name or "")
        if vault is None:
            raise ApiError("ResourceNotFoundException", f"Backup vault {name} does not exist in {region}")
        return vault

    def recovery_point(self, region: str, vault_name: str | None, arn: str | None) -> RecoveryPoint:
        self.vault(region, vault_name)
        point = self.recovery_points.get(arn or "")
        if point is None or point.backup_vault_name != vault_name or self._regions.get(arn or "") != region:
            raise ApiError("ResourceNotFoundException", f"Recovery point {arn} not found in vault {vault_name}")
        return point

    def find_job(self, jobs: dict[str, Any], region: str, job_id: str | None, kind: str) -> Any:
        job = jobs.get(job_id or "")
        if job is None or self._regions.get(job_id or "") != region:
            raise ApiError("ResourceNotFoundException", f"{kind} {job_id} not found in {region}")
        return job

    def in_region(self, jobs: dict[str, Any], region: str) -> list[Any]:
        return [job for job_id, job in jobs.items() if self._regions.get(job_id) == region]

    def _writer(self) -> Node:
        try:
            return self.pair.writer()
        except PostgresError:
            return next(iter(self.pair.nodes.values()))

    # --- backups -------------------------------------------------------------------------------------------------

    def start_backup_job(self, region: str, request: dict[str, Any]) -> dict[str, Any]:
        vault = self.vault(region, request.get("BackupVaultName"))
        resource_arn = _required(request, "ResourceArn")
        iam_role_arn = _required(request, "IamRoleArn")
        resource_type, source = self._resource(resource_arn, region)
        job_id = str(uuid.uuid4()).upper()
        point = RecoveryPoint(
            recovery_point_arn=f"arn:aws:backup:{region}:{self.topology.account}:recovery-point:{uuid.uuid4()}",
            backup_vault_name=vault.backup_vault_name, backup_vault_arn=vault.backup_vault_arn,
            resource_arn=resource_arn, resource_type=resource_type, iam_role_arn=iam_role_arn,
            encryption_key_arn=vault.encryption_key_arn)
        job = BackupJob(account_id=self.topology.account, backup_job_id=job_id,
                        backup_vault_name=vault.backup_vault_name, backup_vault_arn=vault.backup_vault_arn,
                        recovery_point_arn=point.recovery_point_arn, resource_arn=resource_arn,
                        resource_type=resource_type, iam_role_arn=iam_role_arn)
        with self._lock:
            self.recovery_points[point.recovery_point_arn] = point
            self.backup_jobs[job_id] = job
            self._regions[job_id] = self._regions[point.recovery_point_arn] = region
        self._submit(self._run_backup, job, point, source)
        return {"BackupJobId": job_id, "RecoveryPointArn": point.recovery_point_arn,
                "CreationDate": job.creation_date, "IsParent": False}

    def _resource(self, arn: str, region: str) -> tuple[str, str]:
        """(resource type, cluster id or bucket name) of a resource AWS Backup can protect from `region`: a backup
        job backs up a resource of its own region into a vault of that region (a copy job is what crosses regions;
        AWS Backup Developer Guide, "Creating a backup copy across AWS Regions")."""
        if cluster := _CLUSTER_ARN.match(arn):
            if cluster["region"] != region or cluster["id"] not in self.backend("rds", region).clusters:
                raise ApiError("ResourceNotFoundException", f"DB cluster {cluster['id']} not found in {region}")
            return AURORA, cluster["id"]
        if bucket := _BUCKET_ARN.match(arn):
            found = self.backend("s3", region).buckets.get(bucket["bucket"])
            if found is None or found.region_name != region:
                raise ApiError("ResourceNotFoundException", f"Bucket {bucket['bucket']} not found in {region}")
            return S3, bucket["bucket"]
        raise ApiError("InvalidParameterValueException",
                       f"ResourceArn {arn} is neither an Aurora cluster nor an S3 bucket ARN")

    def _run_backup(self, job: BackupJob, point: RecoveryPoint, source: str) -> None:
        job.state = "RUNNING"
        point.restore_metadata = self._configuration(point.resource_type, source)
        if point.resource_type == AURORA:
            point.master_password = self._live_password(self._regions[point.recovery_point_arn])
        try:
            if point.resource_type == AURORA:
                point.dump = self.store / f"{uuid.uuid4()}.dump"
                size = self._writer().dump(self._databases.get(source, self.topology.database_name), point.dump)
            else:
                point.source_bucket = source
                point.manifest = self._current_versions(source)
                bucket = self.backend("s3", self.topology.primary_region).get_bucket(source)
                size = sum(bucket.keys.getlist(key)[-1].size for key, _ in point.manifest)
        except (PostgresError, OSError) as error:
            job.state, job.status_message, point.status = "FAILED", str(error), "EXPIRED"
        else:
            point.backup_size_in_bytes = job.backup_size_in_bytes = size
            point.status, job.state, job.percent_done = "COMPLETED", "COMPLETED", "100.0"
            point.completion_date = _now()
        job.completion_date = _now()

    def _configuration(self, resource_type: str, source: str) -> dict[str, str]:
        """What GetRecoveryPointRestoreMetadata answers for a point of `source`: its configuration now (at backup)."""
        if resource_type == S3:
            return {"DestinationBucketName": source, "NewBucket": "false", "Encrypted": "true",
                    "EncryptionType": "SSE-KMS"}
        region = next(region for region, here in self.topology.regions.items() if here.db_cluster_id == source)
        cluster = self.backend("rds", region).clusters[source]
        return {"DBClusterIdentifier": source, "Engine": str(cluster.engine),
                "EngineVersion": str(cluster.engine_version), "Port": str(cluster.port),
                "DatabaseName": str(cluster.database_name or self.topology.database_name),
                "DBSubnetGroupName": str(cluster.db_subnet_group_name or "default"),
                "VpcSecurityGroupIds": json.dumps(list(cluster.vpc_security_group_ids or [])),
                "KmsKeyId": str(cluster.kms_key_id or ""), "StorageEncrypted": "true",
                "CopyTagsToSnapshot": "true"}

    def _live_password(self, region: str) -> str:
        """The records database's master password now (the live secret's), what a snapshot taken now keeps."""
        secret = self.backend("secretsmanager", region).get_secret_value(self.topology.db_secret_name, None, None)
        return str(json.loads(secret["SecretString"])["password"])

    def restore_metadata(self, region: str, vault_name: str | None, arn: str | None) -> dict[str, Any]:
        point = self.recovery_point(region, vault_name, arn)
        return {"BackupVaultArn": point.backup_vault_arn, "RecoveryPointArn": point.recovery_point_arn,
                "ResourceType": point.resource_type, "RestoreMetadata": point.restore_metadata}

    def _current_versions(self, bucket_name: str) -> list[tuple[str, str]]:
        """(key, version id) of every object's current version now; a key whose current version is a delete
        marker is not part of the bucket at this moment."""
        bucket = self.backend("s3", self.topology.primary_region).get_bucket(bucket_name)
        return sorted((key, str(versions[-1].version_id)) for key, versions in bucket.keys.iterlists()
                      if versions and not isinstance(versions[-1], FakeDeleteMarker))

    # --- copies --------------------------------------------------------------------------------------------------

    def start_copy_job(self, region: str, request: dict[str, Any]) -> dict[str, Any]:
        point = self.recovery_point(region, request.get("SourceBackupVaultName"), request.get("RecoveryPointArn"))
        if point.status != "COMPLETED":
            raise ApiError("InvalidRequestException", f"Recovery point {point.recovery_point_arn} is {point.status}")
        destination_arn = _required(request, "DestinationBackupVaultArn")
        destination = _VAULT_ARN.match(destination_arn)
        if destination is None:
            raise ApiError("InvalidParameterValueException", f"{destination_arn} is not a backup vault ARN")
        vault = self.vault(destination["region"], destination["name"])
        copy = RecoveryPoint(
            recovery_point_arn=f"arn:aws:backup:{destination['region']}:{self.topology.account}:recovery-point:"
                               f"{uuid.uuid4()}",
            backup_vault_name=vault.backup_vault_name, backup_vault_arn=vault.backup_vault_arn,
            resource_arn=point.resource_arn, resource_type=point.resource_type,
            iam_role_arn=_required(request, "IamRoleArn"), encryption_key_arn=vault.encryption_key_arn,
            source_backup_vault_arn=point.backup_vault_arn, source_bucket=point.source_bucket,
            restore_metadata=dict(point.restore_metadata))
        job_id = str(uuid.uuid4()).upper()
        job = CopyJob(account_id=self.topology.account, copy_job_id=job_id,
                      source_backup_vault_arn=point.backup_vault_arn,
                      source_recovery_point_arn=point.recovery_point_arn,
                      destination_backup_vault_arn=vault.backup_vault_arn,
                      destination_recovery_point_arn=copy.recovery_point_arn, resource_arn=point.resource_arn,
                      resource_type=point.resource_type, iam_role_arn=copy.iam_role_arn)
        with self._lock:
            self.recovery_points[copy.recovery_point_arn] = copy
            self.copy_jobs[job_id] = job
            self._regions[job_id] = region
            self._regions[copy.recovery_point_arn] = destination["region"]
        self._submit(self._run_copy, job, point, copy)
        return {"CopyJobId": job_id, "CreationDate": job.creation_date, "IsParent": False}

    def _run_copy(self, job: CopyJob, point: RecoveryPoint, copy: RecoveryPoint) -> None:
        job.state = "RUNNING"
        try:
            if point.dump is not None:
                copy.dump = self.store / f"{uuid.uuid4()}.dump"
                shutil.copyfile(point.dump, copy.dump)
            copy.manifest = list(point.manifest) if point.manifest is not None else None
            copy.master_password = point.master_password
        except OSError as error:
            job.state, job.status_message, copy.status = "FAILED", str(error), "EXPIRED"
        else:
            copy.backup_size_in_bytes = job.backup_size_in_bytes = point.backup_size_in_bytes
            copy.status, job.state, copy.completion_date = "COMPLETED", "COMPLETED", _now()
        job.completion_date = _now()

    # --- restores ------------------------------------------------------------------------------------------------

    def start_restore_job(self, region: str, request: dict[str, Any]) -> dict[str, Any]:
        arn = _required(request, "RecoveryPointArn")
        point = self.recovery_points.get(arn)
        if point is None or self._regions.get(arn) != region:
            raise ApiError("ResourceNotFoundException", f"Recovery point {arn} not found in {region}")
        if point.status != "COMPLETED":
            raise ApiError("InvalidRequestException", f"Recovery point {arn} is {point.status}")
        metadata = request.get("Metadata") or {}
        wanted = ("DBClusterIdentifier", "Engine") if point.resource_type == AURORA else ("DestinationBucketName",)
        for name in wanted:
            if not metadata.get(name):
                raise ApiError("MissingParameterValueException", f"Metadata.{name} is required to restore a "
                               f"{point.resource_type} recovery point")
        job_id = str(uuid.uuid4()).upper()
        job = RestoreJob(account_id=self.topology.account, restore_job_id=job_id, recovery_point_arn=arn,
                         iam_role_arn=_required(request, "IamRoleArn"), resource_type=point.resource_type,
                         backup_size_in_bytes=point.backup_size_in_bytes)
        with self._lock:
            self.restore_jobs[job_id] = job
            self._regions[job_id] = region
        self._submit(self._run_restore, job, point, region, dict(metadata))
        return {"RestoreJobId": job_id}

    def _run_restore(self, job: RestoreJob, point: RecoveryPoint, region: str, metadata: dict[str, str]) -> None:
        job.status = "RUNNING"
        try:
            if point.resource_type == AURORA:
                job.created_resource_arn = self._restore_cluster(point, region, metadata)
            else:
                job.created_resource_arn = self._restore_bucket(point, region, metadata)
        except (PostgresError, OSError, ApiError, KeyError) as error:
            job.status, job.status_message = "FAILED", str(error)
        else:
            job.status, job.percent_done = "COMPLETED", "100.0"
        job.completion_date = _now()

    def _restore_cluster(self, point: RecoveryPoint, region: str, metadata: dict[str, str]) -> str:
        rds = self.backend("rds", region)
        cluster_id = metadata["DBClusterIdentifier"]
        if cluster_id in rds.clusters:
            raise ApiError("DBClusterAlreadyExistsFault", f"DB cluster {cluster_id} already exists in {region}")
        subnet_group, security_groups = self._cluster_network(region, metadata)
        assert point.dump is not None
        database = "restored_" + re.sub(r"\W", "_", cluster_id.lower())
        master = self._master_role(database, point.master_password or "")
        self._writer().restore_dump(point.dump, database, master)
        self._accept_connections(database, False)  # no instance yet
        cluster = rds.create_db_cluster({
            "db_cluster_identifier": cluster_id, "engine": metadata["Engine"], "engine_version": "16.4",
            "database_name": database, "master_username": master,
            "master_user_password": point.master_password or "restored", "storage_encrypted": True,
            "db_subnet_group_name": subnet_group, "vpc_security_group_ids": security_groups})
        bind_cluster(cluster, self._writer)
        self._databases[cluster_id] = database
        self._restored[(region, cluster_id)] = database
        return str(cluster.db_cluster_arn)

    def _master_role(self, database: str, password: str) -> str:
        """The restored cluster's master role: its own (PostgreSQL roles are server-wide), with the password of
        backup time, checked on login (see the module docstring)."""
        role = f"{database}_master"
        writer = self._writer()
        with writer.connect() as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                             sql.Literal(password)))
        for node in self.pair.nodes.values():
            node.require_password(role, database)
        return role

    def set_master_password(self, region: str, cluster_id: str | None, password: str | None) -> None:
        """ModifyDBCluster(MasterUserPassword) of a restored cluster: its master role's new password."""
        cluster = self.backend("rds", region).clusters.get(cluster_id or "")
        if password and cluster is not None and (region, cluster_id) in self._restored:
            with self._writer().connect() as admin:
                admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(cluster.master_username),
                                                                          sql.Literal(password)))

    def _cluster_network(self, region: str, metadata: dict[str, str]) -> tuple[str | None, list[str]]:
        """`DBSubnetGroupName` and `VpcSecurityGroupIds` (a JSON list of ids, as AWS Backup's restore metadata
        carries lists), checked as RDS checks them; without them AWS puts the cluster in the default VPC ("default")."""
        subnet_group = metadata.get("DBSubnetGroupName")
        if subnet_group not in (None, "default") and subnet_group not in self.backend("rds", region).subnet_groups:
            raise ApiError("DBSubnetGroupNotFoundFault", f"DB subnet group {subnet_group} not found in {region}")
        try:
            security_groups = json.loads(metadata.get("VpcSecurityGroupIds") or "[]")
        except ValueError:
            security_groups = None
        if not isinstance(security_groups, list) or not all(isinstance(group, str) for group in security_groups):
            raise ApiError("InvalidParameterValueException", "Metadata.VpcSecurityGroupIds must be a JSON list of "
                           f"security group ids, not {metadata['VpcSecurityGroupIds']!r}")
        ec2 = self.backend("ec2", region)
        unknown = [group for group in security_groups if ec2.get_security_group_from_id(group) is None]
        if unknown:
            raise ApiError("InvalidParameterValueException", f"security groups not found in {region}: "
                           f"{', '.join(unknown)}")
        return subnet_group, security_groups

    def _restore_bucket(self, point: RecoveryPoint, region: str, metadata: dict[str, str]) -> str:
        s3 = self.backend("s3", region)
        target = metadata["DestinationBucketName"]
        if metadata.get("NewBucket", "").lower() == "true" and target not in s3.buckets:
            s3.create_bucket(target, region)
        s3.get_bucket(target)
        assert point.manifest is not None and point.source_bucket is not None
        for key, version_id in point.manifest:
            s3.copy_object(s3.get_object(point.source_bucket, key, version_id=version_id), target, key)
        return f"arn:aws:s3:::{target}"

    # --- restored clusters' instances ----------------------------------------------------------------------------

    def instance_created(self, region: str, instance_id: str) -> Any:
        """moto's new instance; one of a restored cluster is `creating` for a while, then `available`."""
        instance = self.backend("rds", region).databases[instance_id]
        if (region, instance.db_cluster_identifier) in self._restored:
            instance.status = "creating"
            self._submit(self._bring_up, instance, region)
        return instance

    def _bring_up(self, instance: Any, region: str) -> None:
        time.sleep(INSTANCE_CREATE_SECONDS)
        if self.backend("rds", region).databases.get(instance.db_instance_identifier) is instance:
            instance.status = "available"
            self.sync_connections(region, instance.db_cluster_identifier)

    def sync_connections(self, region: str, cluster_id: str | None) -> None:
        """A restored cluster's database accepts connections exactly while an instance of it is available."""
        database = self._restored.get((region, cluster_id or ""))
        if database is not None:
            self._accept_connections(database, any(
                instance.status == "available" for instance in self.backend("rds", region).databases.values()
                if instance.db_cluster_identifier == cluster_id))

    def _accept_connections(self, database: str, accept: bool) -> None:
        with self._writer().connect() as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(database), sql.Literal(accept)))

    # --- running -------------------------------------------------------------------------------------------------

    def _submit(self, work: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                work(*args)
            except Exception:
                log.exception("backup job %s failed unexpectedly", args[0])
                args[0].completion_date = _now()
                for attribute in ("state", "status"):
                    if hasattr(args[0], attribute):
                        setattr(args[0], attribute, "FAILED")

        self._futures.append(self._pool.submit(run))

    def wait_idle(self) -> None:
        """Wait for every job started so far to end (tests, and before the pair goes away)."""
        for future in list(self._futures):
            future.result()


def _required(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not value:
        raise ApiError("MissingParameterValueException", f"{name} is required")
    return str(value)


def _query(call: Call, name: str) -> str | None:
    values = call.query.get(name)
    return values[0] if values else None


def _page(call: Call, key: str, items: list[Any]) -> dict[str, Any]:
    """One page of a list answer: `MaxResults` items (1-1000; `DEFAULT_PAGE_SIZE` without it) from the offset the
    previous page's `NextToken` names, and a `NextToken` while any are left (AWS Backup API reference, e.g.
    ListRecoveryPointsByBackupVault: "MaxResults ... NextToken")."""
    size = int(_query(call, "maxResults") or DEFAULT_PAGE_SIZE)
    if not 1 <= size <= 1000:
        raise ApiError("InvalidParameterValueException", f"MaxResults must be 1-1000, not {size}")
    token = _query(call, "nextToken")
    try:
        start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
    except ValueError:
        raise ApiError("InvalidParameterValueException", f"NextToken {token!r} is not valid") from None
    answer: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        answer["NextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return answer


def _matches(item: Any, call: Call, filters: dict[str, str]) -> bool:
    """The list filters AWS documents (`?state=`, `?resourceArn=`, ...), each an exact match on one field."""
    return all(getattr(item, attribute) == value for parameter, attribute in filters.items()
               if (value := _query(call, parameter)) is not None)


def register(registry: Registry, jobs: BackupJobs) -> None:
    """The seam's handlers for the AWS Backup job APIs moto lacks."""

    def handle(operation: str, handler: Callable[[Call], Any]) -> None:
        def intercept(call: Call, forward: Forward) -> Reply:
            return answer(call, lambda: handler(call))

        registry.intercept("backup", operation)(intercept)

    handle("StartBackupJob", lambda call: jobs.start_backup_job(call.region, call.json()))
    handle("DescribeBackupJob", lambda call: jobs.find_job(jobs.backup_jobs, call.region,
                                                       call.uri_params.get("backupJobId"), "Backup job"))
    handle("ListBackupJobs", lambda call: _page(call, "BackupJobs", [
        job for job in jobs.in_region(jobs.backup_jobs, call.region)
        if _matches(job, call, {"state": "state", "resourceArn": "resource_arn", "resourceType": "resource_type",
                                "backupVaultName": "backup_vault_name"})]))
    handle("ListRecoveryPointsByBackupVault", lambda call: _page(call, "RecoveryPoints", [
        point for point in jobs.in_region(jobs.recovery_points, call.region)
        if point.backup_vault_name == jobs.vault(call.region, call.uri_params.get("backupVaultName")).backup_vault_name
        and _matches(point, call, {"resourceArn": "resource_arn", "resourceType": "resource_type"})]))
    handle("DescribeRecoveryPoint", lambda call: jobs.recovery_point(
        call.region, call.uri_params.get("backupVaultName"), call.uri_params.get("recoveryPointArn")))
    handle("GetRecoveryPointRestoreMetadata", lambda call: jobs.restore_metadata(
        call.region, call.uri_params.get("backupVaultName"), call.uri_params.get("recoveryPointArn")))
    handle("StartCopyJob", lambda call: jobs.start_copy_job(call.region, call.json()))
    handle("DescribeCopyJob", lambda call: {"CopyJob": jobs.find_job(jobs.copy_jobs, call.region,
                                                                 call.uri_params.get("copyJobId"), "Copy job")})
    handle("ListCopyJobs", lambda call: _page(call, "CopyJobs", [
        job for job in jobs.in_region(jobs.copy_jobs, call.region)
        if _matches(job, call, {"state": "state", "resourceArn": "resource_arn",
                                "destinationVaultArn": "destination_backup_vault_arn"})]))
    handle("StartRestoreJob", lambda call: jobs.start_restore_job(call.region, call.json()))
    handle("DescribeRestoreJob", lambda call: jobs.find_job(jobs.restore_jobs, call.region,
                                                        call.uri_params.get("restoreJobId"), "Restore job"))

    @registry.intercept("rds", "CreateDBInstance")
    def create_instance(call: Call, forward: Forward) -> Reply:
        """moto creates it (and validates the request); answered again, as AWS answers it, `creating`."""
        reply = forward()
        if not reply.ok:
            return reply
        return answer(call, lambda: {"DBInstance": jobs.instance_created(call.region,
                                                                         call.param("DBInstanceIdentifier") or "")})

    @registry.intercept("rds", "ModifyDBCluster")
    def modify_cluster(call: Call, forward: Forward) -> Reply:
        """A new master password of a restored cluster becomes its master role's (moto only stores it)."""
        reply = forward()
        if reply.ok:
            jobs.set_master_password(call.region, call.param("DBClusterIdentifier"), call.param("MasterUserPassword"))
        return reply

    @registry.intercept("rds", "DeleteDBInstance")
    def delete_instance(call: Call, forward: Forward) -> Reply:
        doomed = jobs.backend("rds", call.region).databases.get(call.param("DBInstanceIdentifier") or "")
        reply = forward()
        if reply.ok and doomed is not None:
            jobs.sync_connections(call.region, doomed.db_cluster_identifier)
        return reply
