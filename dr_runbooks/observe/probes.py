"""The reads that tell the state of the estate, each one AWS API of one region.

Every function takes the clients it needs and returns plain values; callers decide the region, the timeouts (probe
clients for `drctl status`, runbook clients inside steps) and what an error means. The runbooks' preconditions and
`drctl status` use the same probes, so what status says is what a failover checks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from dr_runbooks.topology import TRAFFIC_GATE_DIMENSION, TRAFFIC_GATE_METRIC, TRAFFIC_GATE_NAMESPACE, TrafficGate

#: How far back the metrics probes look: S3 and Aurora publish every minute; older than this is "no data".
METRIC_WINDOW = timedelta(minutes=10)


class GlobalMember(BaseModel):
    cluster_id: str
    cluster_arn: str
    region: str
    is_writer: bool
    #: `SynchronizationStatus` (RDS API Reference, GlobalClusterMember): `connected`, or `pending-resync` while
    #: Aurora rebuilds an old primary after a managed failover (minutes to hours); None if AWS does not say.
    synchronization_status: str | None = None

    @property
    def connected(self) -> bool:
        return self.synchronization_status in (None, "connected")


class GlobalCluster(BaseModel):
    status: str
    members: list[GlobalMember]
    #: `FailoverState.Status` (RDS API Reference, FailoverState): `pending`, `switching-over`, `failing-over` or
    #: `cancelling` while a switchover or failover is scheduled or in progress; None (AWS leaves it empty) otherwise.
    failover_status: str | None = None
    #: The cluster an in-flight switchover or failover moves the writer to (`FailoverState.ToDbClusterArn`).
    moving_to: str | None = None

    @property
    def moving(self) -> bool:
        """A switchover or failover is scheduled or in flight (cancelling included: it has not ended yet)."""
        return self.failover_status is not None

    def writer(self) -> GlobalMember | None:
        return next((member for member in self.members if member.is_writer), None)

    def member_in(self, region: str) -> GlobalMember | None:
        return next((member for member in self.members if member.region == region), None)


class Replication(BaseModel):
    """S3 replication of one rule, from the source bucket's region's metrics."""

    rule_id: str
    destination_bucket: str
    status: str
    #: S3 Replication Time Control on (`Destination.ReplicationTime.Status`): the 15-minute promise and its metrics.
    time_control: bool = False
    latency_seconds: float | None
    pending_operations: float | None
    failed_operations: float | None


def global_cluster(rds: Any, global_cluster_id: str) -> GlobalCluster:
    found = rds.describe_global_clusters(GlobalClusterIdentifier=global_cluster_id)["GlobalClusters"][0]
    members = [
        GlobalMember(
            cluster_id=member["DBClusterArn"].rpartition(":")[2],
            cluster_arn=member["DBClusterArn"],
            region=member["DBClusterArn"].split(":")[3],
            is_writer=bool(member.get("IsWriter")),
            synchronization_status=member.get("SynchronizationStatus"),
        )
        for member in found.get("GlobalClusterMembers", [])
    ]
    failover = found.get("FailoverState") or {}
    return GlobalCluster(status=found.get("Status", "unknown"), members=members,
                         failover_status=failover.get("Status"), moving_to=failover.get("ToDbClusterArn"))


def db_cluster(rds: Any, cluster_id: str) -> dict[str, Any]:
    return rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]


def _newest(cloudwatch: Any, namespace: str, metric: str, dimensions: dict[str, str], statistic: str) -> float | None:
    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": name, "Value": value} for name, value in dimensions.items()],
        StartTime=now - METRIC_WINDOW,
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=[statistic],
    )["Datapoints"]
    if not points:
        return None
    return float(max(points, key=lambda point: point["Timestamp"])[statistic])


def aurora_lag_seconds(cloudwatch: Any, secondary_cluster_id: str) -> float | None:
    """`AuroraGlobalDBReplicationLag` of a secondary cluster (milliseconds, published in the secondary's region)."""
    lag = _newest(cloudwatch, "AWS/RDS", "AuroraGlobalDBReplicationLag", {"DBClusterIdentifier": secondary_cluster_id},
                  "Maximum")
    return None if lag is None else lag / 1000


def s3_replication(s3: Any, cloudwatch: Any, source_bucket: str) -> list[Replication]:
    """Each replication rule of `source_bucket` with its RTC metrics (S3 publishes them in the source region)."""
    rules = s3.get_bucket_replication(Bucket=source_bucket)["ReplicationConfiguration"]["Rules"]
    found = []
    for rule in rules:
        destination = rule["Destination"]["Bucket"].removeprefix("arn:aws:s3:::")
        dimensions = {"SourceBucket": source_bucket, "DestinationBucket": destination, "RuleId": rule["ID"]}
        found.append(
            Replication(
                rule_id=rule["ID"],
                destination_bucket=destination,
                status=rule["Status"],
                time_control=rule["Destination"].get("ReplicationTime", {}).get("Status") == "Enabled",
                latency_seconds=_newest(cloudwatch, "AWS/S3", "ReplicationLatency", dimensions, "Maximum"),
                pending_operations=_newest(cloudwatch, "AWS/S3", "OperationsPendingReplication", dimensions, "Maximum"),
                failed_operations=_newest(cloudwatch, "AWS/S3", "OperationsFailedReplication", dimensions, "Sum"),
            )
        )
    return found


def newest_recovery_points(backup: Any, vault: str, partner_vault_arn_suffix: str) -> dict[str, str | None]:
    """The newest completed backup made in `vault` and the newest copy that arrived in it from the partner vault."""
    points: list[dict[str, Any]] = []
    for page in backup.get_paginator("list_recovery_points_by_backup_vault").paginate(BackupVaultName=vault):
        points.extend(point for point in page["RecoveryPoints"] if point.get("Status") == "COMPLETED")
    copies = [point for point in points
              if str(point.get("SourceBackupVaultArn", "")).endswith(partner_vault_arn_suffix)]
    backups = [point for point in points if point not in copies]

    def newest(found: list[dict[str, Any]]) -> str | None:
        return max(point["CreationDate"] for point in found).isoformat() if found else None

    return {"last_backup": newest(backups), "last_copy": newest(copies)}


def alarm_states(cloudwatch: Any, names: list[str]) -> dict[str, str]:
    alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"] if names else []
    return {alarm["AlarmName"]: alarm["StateValue"] for alarm in alarms}


def put_gate(cloudwatch: Any, gate: TrafficGate, evacuate: bool) -> None:
    """Evacuate (1) or restore (0) `gate.region`: one data point in the gate's metric in its alarm region."""
    cloudwatch.put_metric_data(
        Namespace=TRAFFIC_GATE_NAMESPACE,
        MetricData=[
            {
                "MetricName": TRAFFIC_GATE_METRIC,
                "Dimensions": [{"Name": TRAFFIC_GATE_DIMENSION, "Value": gate.dimension_value}],
                "Value": 1.0 if evacuate else 0.0,
                "Unit": "Count",
            }
        ],
    )
