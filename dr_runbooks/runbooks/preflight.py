"""Checks made before a runbook takes the lock: a refusal here (exit 2) has changed nothing, not even the journal.

They read the target region only (a failover's source may be dark) and return what they observed, which becomes part
of the run's parameters: the journal and the evidence say what the operator was shown before agreeing.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.observe import probes, traffic
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology


def _observe(aws: AwsSession, topology: Topology, region: str) -> dict[str, Any]:
    here = topology.in_region(region)
    try:
        cluster = probes.global_cluster(aws.client("rds", region), topology.global_cluster_id)
        status = probes.db_cluster(aws.client("rds", region), here.db_cluster_id)["Status"]
        lag = probes.aurora_lag_seconds(aws.client("cloudwatch", region), here.db_cluster_id)
    except (ClientError, BotoCoreError) as error:
        raise Refused(f"cannot observe the database in {region}: {str(error).splitlines()[0]}") from None
    member = cluster.member_in(region)
    if member is None:
        raise Refused(f"{here.db_cluster_id} is not a member of global cluster {topology.global_cluster_id}")
    writer = cluster.writer()
    return {"writer_region": writer.region if writer else None, "target_is_writer": member.is_writer,
            "target_cluster_status": status, "observed_lag_seconds": lag}


def _healthy_secondary(topology: Topology, region: str, seen: dict[str, Any]) -> None:
    if seen["target_is_writer"]:
        raise Refused(f"{region} already writes: nothing to move")
    if seen["target_cluster_status"] != "available":
        raise Refused(f"the cluster in {region} is {seen['target_cluster_status']}, not available")


def _lag_within_rpo(topology: Topology, region: str, seen: dict[str, Any]) -> None:
    lag, rpo = seen["observed_lag_seconds"], topology.rpo_minutes * 60
    if lag is None:
        raise Refused(f"no AuroraGlobalDBReplicationLag reported in {region} for 10 min: cannot bound the data loss")
    if lag > rpo:
        raise Refused(f"{region} lags {lag:.0f} s behind, beyond the RPO of {rpo} s: it is not a safe target")


def switchover(aws: AwsSession, topology: Topology, target: str) -> dict[str, Any]:
    seen = _observe(aws, topology, target)
    _healthy_secondary(topology, target, seen)
    _lag_within_rpo(topology, target, seen)
    return seen


def failover(aws: AwsSession, topology: Topology, target: str) -> dict[str, Any]:
    seen = _observe(aws, topology, target)
    _healthy_secondary(topology, target, seen)
    _lag_within_rpo(topology, target, seen)
    return {**seen, "expected_data_loss_seconds": seen["observed_lag_seconds"],
            **traffic.failover_dns_preflight(aws, topology, target)}


def failback(aws: AwsSession, topology: Topology, target: str) -> dict[str, Any]:
    seen = _observe(aws, topology, target)
    if seen["target_is_writer"]:
        raise Refused(f"{target} writes: fail back re-protects the region that does not")
    return seen


PREFLIGHTS = {"switchover": switchover, "failover": failover, "failback": failback}
