"""The on-call runbooks as plans: data the engine runs here and a later issue turns into Step Functions.

Reading the dependencies is reading the runbook: in a switchover the canaries are written first (in parallel), then
the Aurora switchover and the S3 canary's arrival proceed side by side; traffic moves once the database writes in the
target; the RTO/RPO step reads the journal at the end. A failover never names a step that calls the source region.
"""

from __future__ import annotations

from typing import Literal

from dr_runbooks.engine.plan import Plan, PollPolicy, Step

_STEPS = "dr_runbooks.runbooks.steps"
#: Aurora global switchover/failover takes minutes on AWS; poll every few seconds, at most every 15.
_AURORA_POLL = PollPolicy(initial_seconds=0.2, maximum_seconds=15)
_FAST_POLL = PollPolicy(initial_seconds=0.1, maximum_seconds=5)
#: After a managed failover Aurora rebuilds the old primary in "a few minutes to several hours" (Aurora User Guide):
#: failback waits that long, polling at most every minute (in Step Functions: a Wait state between invocations).
_REBUILD_TIMEOUT = 8 * 3600
_REBUILD_POLL = PollPolicy(initial_seconds=0.5, maximum_seconds=60)


def _step(name: str, action: str, description: str, *depends_on: str, changes: bool = False,
          calls: tuple[str, ...] = (), timeout: float = 120, poll: PollPolicy = _FAST_POLL,
          database: Literal["target", "source"] | None = None) -> Step:
    return Step(name=name, action=f"{_STEPS}:{action}", description=description, depends_on=depends_on,
                changes=changes, calls=calls, timeout_seconds=timeout, poll=poll, database=database)


def _objectives(*depends_on: str) -> Step:
    return _step("record-objectives", "record_objectives", "measure RTO from the journal and RPO from the canaries",
                 *depends_on)


_ARCHIVE_WRITABLE = ("s3.GetBucketReplication({target_bucket})", "s3.PutObject({target_bucket}/dr-probe/{run_id})")
#: The gate rule (`dr_runbooks.observe.traffic.desired_gates`) for the writer the run leaves, applied to the gates the
#: run reaches, then DNS confirmed (Route 53's API answers in us-east-1) or only expected; the RTO ends when resolvers
#: follow (the answer plus the record TTL).
_RECORD_GATES = "dynamodb.PutItem(runbook table of each region reached: traffic-gate#{env} <region> = <state>)"
_CONFIRM_DNS = ("route53.TestDNSAnswer(us-east-1, only when the run reaches it: until DNS answers the writer; "
                "else expected from the gates)",)


def _traffic(*depends_on: str, calls: tuple[str, ...]) -> tuple[Step, Step]:
    return (
        _step("shift-traffic", "shift_traffic", "set the traffic gates to the gate rule for the new writer",
              *depends_on, changes=True, timeout=300, calls=(*calls, _RECORD_GATES)),
        _step("confirm-dns", "confirm_dns", "DNS answers the writer: confirmed by Route 53, or expected",
              "shift-traffic", timeout=300, calls=_CONFIRM_DNS),
    )


def switchover() -> Plan:
    return Plan(
        runbook="switchover",
        description="planned move of the writer and traffic to the target region, no data loss",
        steps=(
            _step("canary-row", "write_source_canary_row", "write a canary row on the current writer", changes=True,
                  calls=("rds.DescribeDBClusters({source_region}: {source_cluster_id})",
                         "secretsmanager.GetSecretValue({source_region}: {db_secret_name})",
                         "postgres INSERT INTO dr_canary (run_id={run_id})"), database="source"),
            _step("canary-object", "write_source_canary_object", "write a canary object in the source bucket",
                  changes=True, calls=("s3.PutObject({source_bucket}/dr-canary/{run_id})",)),
            _step("aurora-switchover", "aurora_switchover", "switch the global cluster's writer to the target",
                  "canary-row", changes=True, timeout=900, poll=_AURORA_POLL,
                  calls=("rds.SwitchoverGlobalCluster({source_region}: {global_cluster_id} -> {target_cluster_id})",
                         "rds.DescribeGlobalClusters({target_region}: until FailoverState is empty, the target "
                         "writing)")),
            _step("canary-object-arrived", "verify_canary_object", "the canary object replicated to the target",
                  "canary-object", timeout=900, calls=("s3.HeadObject({target_bucket}/dr-canary/{run_id})",)),
            _step("canary-row-arrived", "verify_canary_row", "the canary row is in the new writer", "aurora-switchover",
                  calls=("postgres SELECT dr_canary (run_id={run_id}) on {target_cluster_id}",), database="target"),
            _step("archive-writable", "archive_writable", "target bucket takes writes and replicates back",
                  "canary-object-arrived", changes=True,
                  calls=_ARCHIVE_WRITABLE),
            *_traffic("aurora-switchover", calls=(
                "cloudwatch.PutMetricData({source_region}: EhrDr/Traffic Evacuate=0 Region={target_region})",
                "cloudwatch.PutMetricData({target_region}: Evacuate=1 Region={source_region} if it is the primary, "
                "else 0)", "cloudwatch.DescribeAlarms(each gate's region: until its alarm follows)")),
            _objectives("canary-row-arrived", "archive-writable", "confirm-dns"),
        ),
    )


def failover() -> Plan:
    return Plan(
        runbook="failover",
        description="unplanned: the source region is gone; promote the target, accepting the data loss shown",
        steps=(
            _step("find-last-canaries", "find_last_canaries",
                  "newest canary/heartbeat row and object the target holds",
                  calls=("postgres SELECT max(written_at) FROM dr_canary, dr_heartbeat on {target_cluster_id} "
                         "(reader)", "s3.ListObjectsV2({target_bucket}/dr-canary/, dr-heartbeat/)"),
                  database="target"),
            _step("aurora-failover", "aurora_failover", "promote the target cluster (AllowDataLoss)",
                  "find-last-canaries", changes=True, timeout=900, poll=_AURORA_POLL,
                  calls=("rds.FailoverGlobalCluster({target_region}: {global_cluster_id} -> {target_cluster_id}, "
                         "AllowDataLoss)",
                         "rds.DescribeGlobalClusters({target_region}: until FailoverState is empty, the target "
                         "writing)")),
            _step("archive-writable", "archive_writable", "target bucket takes writes and replicates back",
                  changes=True,
                  calls=_ARCHIVE_WRITABLE),
            *_traffic("aurora-failover", calls=(
                "cloudwatch.PutMetricData({target_region}: EhrDr/Traffic Evacuate=1 Region={source_region})",
                "cloudwatch.DescribeAlarms({target_region}: until the gate of {source_region} is in ALARM)")),
            _step("writer-canary", "write_target_canary_row", "a canary row proves the new writer takes writes",
                  "aurora-failover", changes=True, calls=("postgres INSERT INTO dr_canary on {target_cluster_id}",),
                  database="target"),
            _objectives("archive-writable", "confirm-dns", "writer-canary"),
        ),
    )


def failback() -> Plan:
    """Re-protect: the returning region (the target) is a connected secondary again (Aurora's rebuild done), the writes
    a failover lost are kept (AWS's snapshot of the old writer, copied), and replication flows to it."""
    return Plan(
        runbook="failback",
        description="re-protect: the returned region is an up-to-date secondary and replication flows to it",
        steps=(
            _step("reattached", "reattached_secondary", "the returned cluster is a connected secondary again",
                  timeout=_REBUILD_TIMEOUT, poll=_REBUILD_POLL,
                  calls=("rds.DescribeGlobalClusters({target_region}: until {target_cluster_id} is a secondary, "
                         "SynchronizationStatus connected)",
                         "cloudwatch.GetMetricStatistics({target_region}: AuroraGlobalDBReplicationLag)")),
            _step("keep-lost-writes", "keep_failover_snapshot",
                  "keep AWS's unplanned-global-failover snapshot of the returned cluster as a manual snapshot",
                  changes=True, timeout=_REBUILD_TIMEOUT, poll=_REBUILD_POLL,
                  calls=("rds.DescribeDBClusterSnapshots({target_region}: {target_cluster_id}, automated and manual)",
                         "rds.CopyDBClusterSnapshot({target_region}: rds:unplanned-global-failover-{target_cluster_id}"
                         "-... -> ehr-dr-{env}-lost-writes-<run id, lowercase>, KmsKeyId alias/ehr-dr-{env}-data)")),
            _step("canary-row", "write_source_canary_row", "a canary row on the writer", "reattached", changes=True,
                  calls=("postgres INSERT INTO dr_canary on {source_cluster_id}",), database="source"),
            _step("canary-object", "write_source_canary_object", "a canary object in the writer's bucket",
                  changes=True, calls=("s3.PutObject({source_bucket}/dr-canary/{run_id})",)),
            _step("canary-row-arrived", "verify_replica_canary_row", "the row reached the returned region",
                  "canary-row", timeout=300, calls=("postgres SELECT dr_canary on {target_cluster_id} (reader)",),
                  database="target"),
            _step("canary-object-arrived", "verify_canary_object", "the object reached the returned region",
                  "canary-object", timeout=900, calls=("s3.HeadObject({target_bucket}/dr-canary/{run_id})",)),
            # The returned region answers again: the gate rule opens the gates a failover left closed, writer's first.
            *_traffic("reattached", calls=(
                "cloudwatch.PutMetricData(each gate's region: EhrDr/Traffic Evacuate=0|1 per the gate rule for "
                "the writer {source_region})",
                "cloudwatch.DescribeAlarms(each gate's region: until its alarm follows)")),
        ),
    )


PLANS = {"switchover": switchover, "failover": failover, "failback": failback}
