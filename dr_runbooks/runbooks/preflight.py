"""Checks made before a runbook takes the lock: a refusal here (exit 2) has changed nothing, not even the journal.

They return what they observed, which becomes part of the run's parameters: the journal and the evidence say what
the operator was shown before agreeing. A failover's reads the target region only (its source may be dark) and never
refuses for a metric AWS may not publish then: `AuroraGlobalDBReplicationLag` is shown when there is one, but the
expected loss comes from the newest heartbeat (or canary) the target holds. A planned switchover reads both regions
(it needs both anyway) and refuses a target that lags, in the database or in the archive.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pg8000.dbapi
from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.observe import probes, traffic
from dr_runbooks.runbooks import canary, steps
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

#: An object (a pending operation, the source's newest heartbeat) waiting this long for replication is a backlog, not
#: one in flight (S3 replicates most objects within seconds; RTC promises 99.99% within 15 min).
S3_IN_FLIGHT = timedelta(seconds=60)


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def observe_database(aws: AwsSession, topology: Topology, region: str) -> dict[str, Any]:
    here = topology.in_region(region)
    try:
        cluster = probes.global_cluster(aws.client("rds", region), topology.global_cluster_id)
        status = probes.db_cluster(aws.client("rds", region), here.db_cluster_id)["Status"]
        lag = probes.aurora_lag_seconds(aws.client("cloudwatch", region), here.db_cluster_id)
    except (ClientError, BotoCoreError) as error:
        raise Refused(f"cannot observe the database in {region}: {_first_line(error)}") from None
    member = cluster.member_in(region)
    if member is None:
        raise Refused(f"{here.db_cluster_id} is not a member of global cluster {topology.global_cluster_id}")
    writer = cluster.writer()
    return {"writer_region": writer.region if writer else None, "target_is_writer": member.is_writer,
            "target_cluster_status": status, "observed_lag_seconds": lag,
            "target_synchronization": member.synchronization_status, "failover_state": cluster.failover_status}


def healthy_secondary(topology: Topology, region: str, seen: dict[str, Any]) -> None:
    if seen["target_is_writer"]:
        raise Refused(f"{region} already writes: nothing to move")
    if seen["target_cluster_status"] != "available":
        raise Refused(f"the cluster in {region} is {seen['target_cluster_status']}, not available")
    if seen["failover_state"]:
        raise Refused(f"Aurora is already moving the writer (FailoverState {seen['failover_state']}): wait for it, "
                      "then look again with drctl status")
    if seen["target_synchronization"] == "pending-resync":
        raise Refused(f"Aurora is still rebuilding the cluster in {region} after a failover (SynchronizationStatus "
                      "pending-resync): it holds nothing to promote yet; wait for it to be connected (drctl failback "
                      "waits for that)")


def lag_within_rpo(topology: Topology, region: str, seen: dict[str, Any]) -> None:
    lag, rpo = seen["observed_lag_seconds"], topology.rpo_minutes * 60
    if lag is None:
        raise Refused(f"no AuroraGlobalDBReplicationLag reported in {region} for 10 min: cannot bound the data loss")
    if lag > rpo:
        raise Refused(f"{region} lags {lag:.0f} s behind, beyond the RPO of {rpo} s: it is not a safe target")


def _s3_backlog(aws: AwsSession, topology: Topology, target: str) -> dict[str, Any]:
    """The source bucket's replication toward the target, refused when it lags: the rule is not enabled, operations
    failed, the oldest pending operation waits longer than `S3_IN_FLIGHT` (RTC metrics, in the source region; a busy
    archive always has a few in flight), or the source's newest heartbeat object is missing from the target although it
    was written more than `S3_IN_FLIGHT` ago."""
    source, here = topology.in_region(topology.partner(target)), topology.in_region(target)
    s3_source, s3_target = aws.client("s3", source.region), aws.client("s3", target)
    try:
        rules = [rule for rule in probes.s3_replication(s3_source, aws.client("cloudwatch", source.region),
                                                        source.chart_bucket)
                 if rule.destination_bucket == here.chart_bucket]
        source_beat = canary.newest_heartbeat_object(s3_source, source.chart_bucket)
        target_beat = canary.newest_heartbeat_object(s3_target, here.chart_bucket)
    except (ClientError, BotoCoreError) as error:
        raise Refused(f"cannot observe S3 replication to {target}: {_first_line(error)}") from None
    problem = replication_problem(rules[0] if rules else None, source.chart_bucket, here.chart_bucket, target)
    if problem:
        raise Refused(problem)
    rule = rules[0]
    stale = source_beat is not None and (target_beat is None or target_beat < source_beat) and \
        datetime.now(UTC) - source_beat > S3_IN_FLIGHT
    if stale:
        raise Refused(f"{target} lacks the heartbeat object {source.region} wrote at {source_beat.isoformat()} "
                      f"(its newest: {target_beat.isoformat() if target_beat else 'none'}): S3 replication lags")
    return {"s3_rule": rule.rule_id, "s3_pending_operations": rule.pending_operations,
            "source_heartbeat_object_at": source_beat.isoformat() if source_beat else None,
            "target_heartbeat_object_at": target_beat.isoformat() if target_beat else None}


def replication_problem(rule: probes.Replication | None, source_bucket: str, target_bucket: str,
                        target: str) -> str | None:
    """Why S3 replication from `source_bucket` to `target_bucket` (in `target`) would leave it short, or None: the
    rule is missing or not enabled, operations failed, or the oldest pending operation waits longer than
    `S3_IN_FLIGHT`."""
    towards = f"{source_bucket} -> {target_bucket}"
    if rule is None or rule.status != "Enabled":
        return f"S3 replication {towards} is not enabled: {target} would miss charts"
    if rule.failed_operations:
        return (f"S3 replication {towards} has {rule.failed_operations:.0f} failed operations: "
                "redrive them first (drctl verify replication --repair)")
    if rule.pending_operations and (rule.latency_seconds or 0) > S3_IN_FLIGHT.total_seconds():
        return (f"S3 replication {towards} has {rule.pending_operations:.0f} pending operations, the oldest "
                f"{rule.latency_seconds:.0f} s old: wait until {target} has caught up")
    return None


def target_freshness(aws: AwsSession, topology: Topology, region: str) -> dict[str, Any]:
    """The newest canary/heartbeat row (the target's reader) and object (the target's bucket): `canary.freshness`.
    Reads the target only; a database that does not answer from here leaves the row side unknown (no bound)."""
    here = topology.in_region(region)
    try:
        reader = canary.db_endpoint(aws.client("rds", region), aws.client("secretsmanager", region),
                                    here.db_cluster_id, topology.db_secret_name, topology.database_name, reader=True)
        return canary.freshness(steps.DB_CANARY, reader, aws.client("s3", region), here.chart_bucket)
    except (ClientError, BotoCoreError, OSError, pg8000.dbapi.Error, canary.DatabaseTlsError) as error:
        obj = canary.newest_object(aws.client("s3", region), here.chart_bucket)
        return {"newest_row_at": None, "newest_object_at": obj.isoformat() if obj else None, "loss_bound_at": None,
                "expected_data_loss_seconds": None, "row_error": _first_line(error)}


def switchover(aws: AwsSession, topology: Topology, target: str) -> dict[str, Any]:
    seen = observe_database(aws, topology, target)
    healthy_secondary(topology, target, seen)
    lag_within_rpo(topology, target, seen)
    return {**seen, **_s3_backlog(aws, topology, target)}


def failover(aws: AwsSession, topology: Topology, target: str) -> dict[str, Any]:
    """Never refuses for the lag metric (AWS may publish none while the primary region is gone): the expected loss is
    measured from the heartbeats the target holds, and the command asks for it to be acknowledged."""
    seen = observe_database(aws, topology, target)
    healthy_secondary(topology, target, seen)
    return {**seen, **target_freshness(aws, topology, target), "rpo_seconds": topology.rpo_minutes * 60,
            **traffic.failover_dns_preflight(aws, topology, target)}


def failback(aws: AwsSession, topology: Topology, target: str) -> dict[str, Any]:
    seen = observe_database(aws, topology, target)
    if seen["target_is_writer"]:
        raise Refused(f"{target} writes: fail back re-protects the region that does not")
    return seen


PREFLIGHTS = {"switchover": switchover, "failover": failover, "failback": failback}
