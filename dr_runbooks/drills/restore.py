"""The restore drill's step actions. They run in the DR region (`ctx.target`): its vault, its scratch resources.

Validation steps never fail on bad data: they record what they found, teardown runs after them, and the last step
(`verdict`) fails the run when a check failed. So scratch resources go away whatever the data looked like.
"""

from __future__ import annotations

import contextvars
import json
import random
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from dr_runbooks.drills import records_check, scratch
from dr_runbooks.drills.backups import DONE, bucket_arn, cluster_arn
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.waits import wait_until
from dr_runbooks.runbooks.canary import DbEndpoint, PostgresCanary, connect, db_endpoint
from dr_runbooks.topology import RECORDS_DB_INSTANCE_CLASS, drill_scratch_instance_name, drill_scratch_name
from dr_runbooks.verify.digest import object_sha256

#: The data sets a drill restores: (name in outputs, resource type of AWS Backup).
DATA_SETS = {"database": "Aurora", "archive": "S3"}
#: DB instance states from which an instance being created never becomes available by itself.
INSTANCE_FAILED = frozenset({"failed", "incompatible-network", "incompatible-parameters", "incompatible-restore",
                             "inaccessible-encryption-credentials", "storage-full", "deleting"})


def _scratch(ctx: RunContext) -> str:
    return drill_scratch_name(ctx.topology.env_name, ctx.run.run_id)


def clean_leftovers(ctx: RunContext) -> dict[str, Any]:
    """Remove scratch resources an earlier drill left (it was killed before its teardown)."""
    removed = scratch.remove(ctx.client("rds"), ctx.client("s3"), ctx.topology.env_name)
    return {"removed": removed}


def _points(ctx: RunContext, resource_arn: str) -> list[dict[str, Any]]:
    """Every completed recovery point of `resource_arn` in the DR vault, oldest first (all pages: AWS Backup answers
    a page at a time)."""
    pages = ctx.client("backup").get_paginator("list_recovery_points_by_backup_vault").paginate(
        BackupVaultName=ctx.target.backup_vault, ByResourceArn=resource_arn)
    points = [point for page in pages for point in page["RecoveryPoints"]]
    return sorted((point for point in points if point["Status"] == "COMPLETED"), key=lambda p: p["CreationDate"])


def pick_recovery_points(ctx: RunContext) -> dict[str, Any]:
    """The latest completed recovery point of each data set (or the named ones, or random ones) in the DR vault."""
    primary = ctx.topology.primary_region
    resources = {"database": cluster_arn(ctx.topology, primary), "archive": bucket_arn(ctx.topology, primary)}
    named = set(ctx.params.get("recovery_points") or ())
    rng = random.Random(ctx.run.run_id)
    picked: dict[str, Any] = {}
    for data_set, resource_arn in resources.items():
        points = _points(ctx, resource_arn)
        if named:
            points = [point for point in points if point["RecoveryPointArn"] in named]
        if not points:
            which = "the named recovery point" if named else "no completed recovery point"
            raise RuntimeError(f"backup missing: {which} of {resource_arn} in vault {ctx.target.backup_vault} "
                               f"({ctx.target.region})")
        point = rng.choice(points) if ctx.params.get("random") else points[-1]
        picked[data_set] = {"arn": point["RecoveryPointArn"], "created_at": point["CreationDate"].isoformat(),
                            "resource_arn": resource_arn}
    unknown = named - {point["arn"] for point in picked.values()}
    if unknown:
        raise RuntimeError(f"backup missing: no recovery point {sorted(unknown)[0]} in vault {ctx.target.backup_vault}")
    return picked


def _restore(ctx: RunContext, data_set: str, metadata: Callable[[], dict[str, str]]) -> dict[str, Any]:
    """Start the restore job once (its id checkpointed: a step invoked again after `StepPending`, or resumed after a
    crash, polls that job rather than starting another), then wait for it. `metadata` is read only to start one."""
    point = ctx.output("pick-recovery-points")[data_set]
    backup = ctx.client("backup")
    job_id = ctx.checkpointed("job")
    if job_id is None:
        job_id = backup.start_restore_job(RecoveryPointArn=point["arn"], IamRoleArn=ctx.target.backup_role_arn,
                                          Metadata=metadata(), ResourceType=DATA_SETS[data_set])["RestoreJobId"]
        ctx.checkpoint(job=job_id, job_started_at=time.time())
    found = wait_until(ctx, lambda: backup.describe_restore_job(RestoreJobId=job_id),
                       lambda found: found["Status"] in DONE, f"restore job {job_id}")
    if found["Status"] != "COMPLETED":
        raise RuntimeError(f"restore of {point['arn']} ended {found['Status']}: {found.get('StatusMessage')}")
    return {"job": job_id, "resource_arn": found["CreatedResourceArn"],
            "restore_seconds": round(time.time() - ctx.checkpointed("job_started_at"), 3)}


#: Restore metadata that names places of the backed-up resource's region, meaningless (or invalid) in the DR region.
_OTHER_REGION_KEYS = ("AvailabilityZones",)


def _metadata(ctx: RunContext, data_set: str, overrides: dict[str, str]) -> dict[str, str]:
    """What the recovery point says the resource was (GetRecoveryPointRestoreMetadata, which AWS documents as the
    starting set), less what names the other region, plus the scratch resource's own values."""
    point = ctx.output("pick-recovery-points")[data_set]
    kept = ctx.client("backup").get_recovery_point_restore_metadata(
        BackupVaultName=ctx.target.backup_vault, RecoveryPointArn=point["arn"])["RestoreMetadata"]
    return {**{key: value for key, value in kept.items() if key not in _OTHER_REGION_KEYS}, **overrides}


def _key_arn(ctx: RunContext) -> str:
    """The DR region's data key (by alias ARN): the copy in the DR vault is encrypted under it, not the primary's."""
    return f"arn:aws:kms:{ctx.target.region}:{ctx.topology.account}:{ctx.target.kms_key_alias}"


def _network(ctx: RunContext) -> dict[str, str]:
    """The live DR cluster's DB subnet group and VPC security groups, as restore metadata: without them AWS Backup
    puts the scratch cluster in the default VPC (the recovery point names the primary region's, which do not exist
    here), where neither the drill nor the records VPC's functions reach it."""
    live = ctx.client("rds").describe_db_clusters(DBClusterIdentifier=ctx.target.db_cluster_id)["DBClusters"][0]
    groups = [group["VpcSecurityGroupId"] for group in live.get("VpcSecurityGroups", [])]
    return {"DBSubnetGroupName": live["DBSubnetGroup"], "VpcSecurityGroupIds": json.dumps(groups)}


def restore_database(ctx: RunContext) -> dict[str, Any]:
    """Restore the database recovery point as a scratch cluster in the live DR cluster's network, tagged with the
    run id. A job is started only when none is checkpointed and the scratch cluster does not exist yet."""
    name = _scratch(ctx)
    rds = ctx.client("rds")
    if ctx.checkpointed("job") is None and name in scratch.scratch_clusters(rds, ctx.topology.env_name,
                                                                             ctx.run.run_id):
        return {"cluster_id": name, "resumed": True}  # restored by an attempt that died before checkpointing
    done = _restore(ctx, "database", lambda: _metadata(ctx, "database", {
        "DBClusterIdentifier": name, "KmsKeyId": _key_arn(ctx), **_network(ctx)}))
    scratch.tag_cluster(rds, done["resource_arn"], ctx.run.run_id)
    return {**done, "cluster_id": name}


def restore_archive(ctx: RunContext) -> dict[str, Any]:
    """Restore the chart archive recovery point into a new scratch bucket, tagged with the run id (a job started
    only when none is checkpointed and the scratch bucket does not exist yet)."""
    name = _scratch(ctx)
    s3 = ctx.client("s3")
    if ctx.checkpointed("job") is None and name in scratch.scratch_buckets(s3, ctx.topology.env_name, ctx.run.run_id):
        return {"bucket": name, "resumed": True}
    done = _restore(ctx, "archive", lambda: _metadata(ctx, "archive", {
        "DestinationBucketName": name, "NewBucket": "true", "Encrypted": "true", "EncryptionType": "SSE-KMS",
        "KMSKey": _key_arn(ctx)}))
    scratch.tag_bucket(s3, name, ctx.run.run_id)
    return {**done, "bucket": name}


def _instance_class(ctx: RunContext) -> str:
    """The live DR cluster's instance class (so the drill reads at the speed the live database would), or the
    deployed default when that cluster runs headless."""
    live = scratch.cluster_instances(ctx.client("rds"), ctx.target.db_cluster_id)
    return live[0]["DBInstanceClass"] if live else RECORDS_DB_INSTANCE_CLASS


def add_instance(ctx: RunContext) -> dict[str, Any]:
    """Add the scratch cluster's one DB instance and wait until it is available: AWS Backup restores an Aurora
    cluster without any, and nothing answers on its endpoint until one is (about ten minutes). The instance id is
    derived from the cluster's, so an invocation after `StepPending`, or a resumed one after a crash between the
    create and its checkpoint, polls the instance already there (RDS refuses a second one of that id)."""
    cluster_id = ctx.output("restore-database")["cluster_id"]
    instance_id = drill_scratch_instance_name(cluster_id)
    rds = ctx.client("rds")
    if ctx.checkpointed("instance") is None:
        if instance_id not in [found["DBInstanceIdentifier"] for found in scratch.cluster_instances(rds, cluster_id)]:
            engine = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]["Engine"]
            rds.create_db_instance(DBInstanceIdentifier=instance_id, DBClusterIdentifier=cluster_id, Engine=engine,
                                   DBInstanceClass=_instance_class(ctx), PubliclyAccessible=False,
                                   Tags=scratch.drill_tags(ctx.run.run_id))
        ctx.checkpoint(instance=instance_id, instance_started_at=time.time())
    found = wait_until(ctx, lambda: rds.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0],
                       lambda found: found["DBInstanceStatus"] == "available"
                       or found["DBInstanceStatus"] in INSTANCE_FAILED, f"DB instance {instance_id}")
    if found["DBInstanceStatus"] != "available":
        raise RuntimeError(f"DB instance {instance_id} of scratch cluster {cluster_id} is "
                           f"{found['DBInstanceStatus']}, it will not become available")
    return {"instance_id": instance_id, "instance_class": found["DBInstanceClass"],
            "instance_seconds": round(time.time() - ctx.checkpointed("instance_started_at"), 3)}


def _restored_endpoint(ctx: RunContext) -> DbEndpoint:
    """Where the scratch cluster answers, and a way in; a clear error when no instance of it is available.

    A restored cluster keeps the master password of backup time, which the live secret's rotation (every 30 days)
    has long replaced. So the step gives the scratch cluster a fresh random master password (ModifyDBCluster,
    applied immediately), held only in this process's memory: never journaled, never in a secret, gone with the
    cluster. Each step that reads the scratch cluster sets its own; the live secret is never read or touched."""
    cluster_id = ctx.output("restore-database")["cluster_id"]
    rds = ctx.client("rds")
    if not any(instance["DBInstanceStatus"] == "available" for instance in scratch.cluster_instances(rds, cluster_id)):
        raise RuntimeError(f"scratch cluster {cluster_id} has no available DB instance, so nothing answers on its "
                           "endpoint (AWS Backup restores a cluster without one; step add-instance adds it)")
    password = secrets.token_urlsafe(24)
    rds.modify_db_cluster(DBClusterIdentifier=cluster_id, MasterUserPassword=password, ApplyImmediately=True)
    cluster = wait_until(ctx, lambda: rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0],
                         lambda found: found["Status"] == "available", f"{cluster_id} available with its password")
    return DbEndpoint(host=cluster["Endpoint"], port=int(cluster["Port"]), database=cluster["DatabaseName"],
                      username=cluster["MasterUsername"], password=password)


def validate_records(ctx: RunContext) -> dict[str, Any]:
    """The restored database is the live DR replica's history as of the restore's own moment (`records_check`: no
    fingerprint from backup time, which AWS never keeps); and the RPO: how much older the restored data is than the
    newest canary or heartbeat the live DR database holds."""
    point = ctx.output("pick-recovery-points")["database"]
    restored_endpoint = _restored_endpoint(ctx)
    live_endpoint = db_endpoint(ctx.client("rds"), ctx.client("secretsmanager"), ctx.target.db_cluster_id,
                                ctx.topology.db_secret_name, ctx.topology.database_name, reader=True)
    compared = records_check.compare(restored_endpoint, live_endpoint, datetime.fromisoformat(point["created_at"]))
    problems = compared["problems"]
    live = PostgresCanary().newest(live_endpoint)
    restored_canary = PostgresCanary().newest(restored_endpoint)
    data_until = restored_canary or datetime.fromisoformat(point["created_at"])
    rpo = max((live - data_until).total_seconds(), 0.0) if live else 0.0
    return {"result": "failed" if problems else "passed", "problems": problems, "tables": compared["tables"],
            "as_of": compared["as_of"], "as_of_from": compared["as_of_from"], "cut": compared.get("cut"),
            "rows": sum(table["rows"] for table in compared["tables"].values()),
            "rpo_seconds": round(rpo, 3), "newest_live_canary": live.isoformat() if live else None,
            "newest_restored_canary": restored_canary.isoformat() if restored_canary else None}


def validate_charts(ctx: RunContext) -> dict[str, Any]:
    """The chart files named by restored scan rows exist in the restored archive and match their SHA-256."""
    bucket = ctx.output("restore-archive")["bucket"]
    with connect(_restored_endpoint(ctx)) as connection:
        scans = connection.execute("SELECT object_key, sha256 FROM scans ORDER BY object_key").fetchall()
    sample = ctx.params.get("sample")
    sampled = sample is not None and sample < len(scans)
    if sampled:
        scans = random.Random(ctx.run.run_id).sample(scans, sample)
    s3 = ctx.client("s3")
    step_context = contextvars.copy_context()
    with ThreadPoolExecutor(8, thread_name_prefix="drill-sha") as pool:
        # Each read in a copy of this step's context, so the journal records the GetObject calls too.
        digests = list(pool.map(lambda scan: step_context.copy().run(object_sha256, s3, bucket, scan[0]), scans))
    missing = [key for (key, _), digest in zip(scans, digests, strict=True) if digest is None]
    changed = [key for (key, want), digest in zip(scans, digests, strict=True) if digest not in (None, want)]
    return {"result": "failed" if missing or changed or not scans else "passed", "checked": len(scans),
            "missing": missing[:20], "missing_count": len(missing), "changed": changed[:20],
            "changed_count": len(changed), "sampled": sampled}


def teardown(ctx: RunContext) -> dict[str, Any]:
    """Delete this run's scratch instance, cluster and bucket (idempotent: what is gone stays gone)."""
    return {"removed": scratch.remove(ctx.client("rds"), ctx.client("s3"), ctx.topology.env_name, ctx.run.run_id)}


def verdict(ctx: RunContext) -> dict[str, Any]:
    """Fail the run (after teardown) when a validation failed, naming what."""
    records, charts = ctx.output("validate-records"), ctx.output("validate-charts")
    reasons = list(records["problems"])
    if charts["missing_count"]:
        reasons.append(f"{charts['missing_count']} chart files missing from the restored archive, "
                       f"e.g. {charts['missing'][0]}")
    if charts["changed_count"]:
        reasons.append(f"{charts['changed_count']} chart files do not match the SHA-256 their scan row stores "
                       f"(corrupted), e.g. {charts['changed'][0]}")
    if not charts["checked"]:
        reasons.append("the restored database names no chart files")
    if reasons:
        raise RuntimeError("; ".join(reasons))
    return {"passed": True}
