"""The scratch resources a restore drill restores into: named from the run id, tagged with it, found and removed.

Teardown runs at the end of every drill, also a failed one; a drill killed before its teardown leaves scratch
resources behind, and the next drill removes them first. They are found by tag (`DRILL_TAG_KEY`) or, for one
restored but not yet tagged when the run died, by the scratch name prefix. A scratch cluster's instances (the one
the drill adds) go first: AWS refuses to delete a cluster that still has an instance not being deleted.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from dr_runbooks.topology import DRILL_TAG_KEY, drill_scratch_name, drill_scratch_prefix


def drill_tags(run_id: str) -> list[dict[str, str]]:
    return [{"Key": DRILL_TAG_KEY, "Value": run_id}]


def tag_cluster(rds: Any, arn: str, run_id: str) -> None:
    rds.add_tags_to_resource(ResourceName=arn, Tags=drill_tags(run_id))


def tag_bucket(s3: Any, bucket: str, run_id: str) -> None:
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": DRILL_TAG_KEY, "Value": run_id}]})


def _tags(items: list[dict[str, str]]) -> dict[str, str]:
    return {item["Key"]: item["Value"] for item in items}


def _ours(name: str, tags: dict[str, str], env_name: str, run_id: str | None) -> bool:
    if run_id is not None:
        return name == drill_scratch_name(env_name, run_id)
    return DRILL_TAG_KEY in tags or name.startswith(drill_scratch_prefix(env_name))


def scratch_clusters(rds: Any, env_name: str, run_id: str | None = None) -> list[str]:
    """Scratch cluster ids in the region (of `run_id` only, when given)."""
    return [cluster["DBClusterIdentifier"] for page in rds.get_paginator("describe_db_clusters").paginate()
            for cluster in page["DBClusters"]
            if _ours(cluster["DBClusterIdentifier"], _tags(cluster.get("TagList", [])), env_name, run_id)]


def scratch_buckets(s3: Any, env_name: str, run_id: str | None = None) -> list[str]:
    """Scratch buckets (by name: tags cost one call per bucket of the account)."""
    return [bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])
            if _ours(bucket["Name"], {}, env_name, run_id)]


def cluster_instances(rds: Any, cluster_id: str) -> list[dict[str, Any]]:
    """The DB instances of a cluster (DescribeDBInstances, filtered by cluster)."""
    return [instance for page in rds.get_paginator("describe_db_instances").paginate(
        Filters=[{"Name": "db-cluster-id", "Values": [cluster_id]}]) for instance in page["DBInstances"]]


def delete_instance(rds: Any, instance: dict[str, Any]) -> None:
    """Delete without a final snapshot; one already deleting or gone is fine."""
    if instance["DBInstanceStatus"] == "deleting":
        return
    try:
        rds.delete_db_instance(DBInstanceIdentifier=instance["DBInstanceIdentifier"], SkipFinalSnapshot=True)
    except ClientError as error:
        if error.response["Error"]["Code"] != "DBInstanceNotFound":
            raise


def delete_cluster(rds: Any, cluster_id: str) -> None:
    try:
        rds.delete_db_cluster(DBClusterIdentifier=cluster_id, SkipFinalSnapshot=True)
    except ClientError as error:
        if error.response["Error"]["Code"] != "DBClusterNotFoundFault":
            raise


def delete_bucket(s3: Any, bucket: str) -> None:
    """Every version and delete marker, then the bucket (a scratch bucket has no Object Lock)."""
    try:
        empty_bucket(s3, bucket)
        s3.delete_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchBucket":
            raise


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every version and delete marker of `bucket`, of any size; the number deleted.

    Always the first page again, never a page marker: deleting the versions a marker names and then asking for the
    page after it is not a listing AWS defines an order for (and moto ends it early), while "list the first 1,000,
    delete them, until none are left" needs nothing but the listing and DeleteObjects (1,000 keys a call). A version
    DeleteObjects reports it could not delete (its `Errors`, returned even in quiet mode) fails the call with the key
    and AWS's code, rather than looping on it."""
    deleted = 0
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=1000)
        doomed = [{"Key": item["Key"], "VersionId": item["VersionId"]}
                  for item in page.get("Versions", []) + page.get("DeleteMarkers", [])][:1000]
        if not doomed:
            return deleted
        errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True}).get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(f"{len(errors)} versions of {bucket} could not be deleted, e.g. {first.get('Key')} "
                               f"({first.get('VersionId')}): {first.get('Code')} {first.get('Message', '')}".rstrip())
        deleted += len(doomed)


def remove(rds: Any, s3: Any, env_name: str, run_id: str | None = None) -> list[str]:
    """Delete the scratch resources (of `run_id`, or all of them): each cluster's instances, the cluster (AWS
    accepts it once its instances are deleting), the buckets. The names removed, instances before their cluster."""
    removed: list[str] = []
    for cluster in scratch_clusters(rds, env_name, run_id):
        for instance in cluster_instances(rds, cluster):
            delete_instance(rds, instance)
            removed.append(instance["DBInstanceIdentifier"])
        delete_cluster(rds, cluster)
        removed.append(cluster)
    buckets = scratch_buckets(s3, env_name, run_id)
    for bucket in buckets:
        delete_bucket(s3, bucket)
    return removed + buckets
