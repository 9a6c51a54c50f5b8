"""The step actions of the on-call runbooks. Each checks its own preconditions, is idempotent, and returns outputs.

`ctx.target` is the region the estate moves to, `ctx.source` the one it leaves. Steps of a failover call only the
target's APIs; steps that need the source (writing the canaries before a planned switchover) say so in their name and
appear only in plans where the source is known to answer.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.waits import wait_until
from dr_runbooks.observe import probes
from dr_runbooks.runbooks import canary

#: The database canary implementation; tests without PostgreSQL replace it.
DB_CANARY: canary.DbCanary = canary.PostgresCanary()


def _endpoint(ctx: RunContext, region: str, reader: bool = False) -> canary.DbEndpoint:
    resources = ctx.topology.in_region(region)
    return canary.db_endpoint(
        ctx.client("rds", region), ctx.client("secretsmanager", region), resources.db_cluster_id,
        ctx.topology.db_secret_name, ctx.topology.database_name, reader=reader,
    )


def write_source_canary_row(ctx: RunContext) -> dict[str, Any]:
    """Planned switchover: a canary row on the current writer (the source still answers)."""
    written = DB_CANARY.write(_endpoint(ctx, ctx.source.region), ctx.run.run_id, ctx.source.region)
    return {"run_id": ctx.run.run_id, "written_at": written.isoformat()}


def write_source_canary_object(ctx: RunContext) -> dict[str, Any]:
    """Planned switchover: a canary object in the source chart bucket, replicated like every chart."""
    return canary.write_object(ctx.client("s3", ctx.source.region), ctx.source.chart_bucket, ctx.run.run_id,
                               ctx.source.region)


def find_last_canaries(ctx: RunContext) -> dict[str, Any]:
    """Failover: the newest canary or heartbeat row (the target's reader) and object (the target's bucket) the target
    already holds, read before promotion and before this run writes anything there (target only)."""
    return canary.freshness(DB_CANARY, _endpoint(ctx, ctx.target.region, reader=True), ctx.client("s3"),
                            ctx.target.chart_bucket)


def _promote(ctx: RunContext, operation: str, **extra: Any) -> dict[str, Any]:
    rds = ctx.client("rds")
    gid = ctx.topology.global_cluster_id
    cluster = probes.global_cluster(rds, gid)
    member = cluster.member_in(ctx.target.region)
    if member is None:
        raise RuntimeError(f"{ctx.target.db_cluster_id} is not a member of global cluster {gid}")
    started = time.time()
    if cluster.moving and cluster.moving_to not in (None, member.cluster_arn):
        raise RuntimeError(f"global cluster {gid} is already moving its writer to {cluster.moving_to}")
    # Idempotent: no call when the target writes already, or when a move to it is in flight (a resumed run).
    if not member.is_writer and not cluster.moving:
        getattr(rds, operation)(GlobalClusterIdentifier=gid, TargetDbClusterIdentifier=member.cluster_arn, **extra)

    def promoted(found: probes.GlobalCluster) -> bool:
        writer = found.writer()
        return writer is not None and writer.region == ctx.target.region and found.status == "available"

    wait_until(ctx, lambda: probes.global_cluster(rds, gid), promoted, f"{ctx.target.region} writing")
    return {"writer_region": ctx.target.region, "already_writer": member.is_writer,
            "promotion_seconds": round(time.time() - started, 3)}


def aurora_switchover(ctx: RunContext) -> dict[str, Any]:
    return _promote(ctx, "switchover_global_cluster")


def aurora_failover(ctx: RunContext) -> dict[str, Any]:
    return _promote(ctx, "failover_global_cluster", AllowDataLoss=True)


def shift_traffic(ctx: RunContext) -> dict[str, Any]:
    """Take the source out of DNS: `Evacuate=1` into its gate, whose alarm lives in the target region."""
    traffic = ctx.topology.traffic
    if traffic is None:
        return {"skipped": "this environment does not manage traffic"}
    gate = traffic.gates[ctx.source.region]
    cloudwatch = ctx.client("cloudwatch", gate.alarm_region)
    probes.put_gate(cloudwatch, gate, evacuate=True)
    wait_until(
        ctx,
        lambda: probes.alarm_states(cloudwatch, [gate.alarm_name]).get(gate.alarm_name),
        lambda state: state == "ALARM",
        f"gate {gate.alarm_name} in ALARM",
    )
    return {"evacuated": ctx.source.region, "gate": gate.alarm_name}


def restore_target_gate(ctx: RunContext) -> dict[str, Any]:
    """Planned switchover: let the target back into DNS (its gate lives in the source, which answers)."""
    traffic = ctx.topology.traffic
    if traffic is None:
        return {"skipped": "this environment does not manage traffic"}
    gate = traffic.gates[ctx.target.region]
    cloudwatch = ctx.client("cloudwatch", gate.alarm_region)
    probes.put_gate(cloudwatch, gate, evacuate=False)
    wait_until(
        ctx,
        lambda: probes.alarm_states(cloudwatch, [gate.alarm_name]).get(gate.alarm_name),
        lambda state: state != "ALARM",
        f"gate {gate.alarm_name} not in ALARM",
    )
    return {"restored": ctx.target.region, "gate": gate.alarm_name}


def archive_writable(ctx: RunContext) -> dict[str, Any]:
    """The target's chart bucket takes writes and replicates them back toward the source (two-way rules)."""
    s3 = ctx.client("s3")
    rules = s3.get_bucket_replication(Bucket=ctx.target.chart_bucket)["ReplicationConfiguration"]["Rules"]
    back = [rule for rule in rules if rule["Destination"]["Bucket"].endswith(f":::{ctx.source.chart_bucket}")]
    if not back or back[0]["Status"] != "Enabled":
        raise RuntimeError(f"{ctx.target.chart_bucket} has no enabled replication rule to {ctx.source.chart_bucket}")
    # Under the probe prefix: the target wrote it itself, so it says nothing about what replicated there.
    probe = canary.write_object(s3, ctx.target.chart_bucket, ctx.run.run_id, ctx.target.region,
                                key=canary.probe_key(ctx.run.run_id))
    return {"replicates_to": ctx.source.chart_bucket, "rule": back[0]["ID"], "write_probe": probe["key"]}


def verify_canary_object(ctx: RunContext) -> dict[str, Any]:
    """The switchover's canary object replicated into the target bucket."""
    s3 = ctx.client("s3")
    wait_until(ctx, lambda: canary.find_object(s3, ctx.target.chart_bucket, ctx.run.run_id), bool,
               f"canary object in {ctx.target.chart_bucket}")
    return {"found_at": datetime.now(UTC).isoformat()}


def verify_canary_row(ctx: RunContext) -> dict[str, Any]:
    """The switchover's canary row is in the new writer."""
    endpoint = _endpoint(ctx, ctx.target.region)
    found = wait_until(ctx, lambda: DB_CANARY.find(endpoint, ctx.run.run_id), lambda seen: seen is not None,
                       f"canary row in {ctx.target.db_cluster_id}")
    return {"written_at": found.isoformat() if found else None}


def write_target_canary_row(ctx: RunContext) -> dict[str, Any]:
    """After promotion: a row written to the new writer proves it takes writes."""
    written = DB_CANARY.write(_endpoint(ctx, ctx.target.region), ctx.run.run_id, ctx.target.region)
    return {"run_id": ctx.run.run_id, "written_at": written.isoformat()}


def _seconds_between(earlier: str | None, later: float) -> float | None:
    return None if earlier is None else max(later - datetime.fromisoformat(earlier).timestamp(), 0.0)


def record_objectives(ctx: RunContext) -> dict[str, Any]:
    """RTO from the journal (first change to last step done); RPO from the canaries."""
    steps = ctx.run.steps
    changing = [record.started_at for name, record in steps.items() if name in ctx.params.get("changing_steps", ())]
    ended = [record.ended_at or 0.0 for name, record in steps.items() if name != ctx.step.name] if ctx.step else []
    rto = max(ended) - min(changing) if changing and ended else None
    if ctx.run.runbook == "failover":
        # The database and the archive lose data separately; the RPO is the larger loss, so the older of the two,
        # and none when either side held no canary nor heartbeat (nothing bounds that side's loss).
        rpo = _seconds_between(ctx.output("find-last-canaries").get("loss_bound_at"), ctx.run.started_at)
        how = ("run start minus the older of the newest canary/heartbeat row and the newest canary/heartbeat object "
               "the DR region held (not measured when it held no row or no object)")
    else:
        rpo, how = 0.0, "the canary row and object written before the switchover were found in the new primary"
    return {"rto_seconds": rto, "rpo_seconds": rpo, "rpo_how": how}


def reattached_secondary(ctx: RunContext) -> dict[str, Any]:
    """Failback: the returning region's cluster is back in the global cluster as an available secondary."""
    rds = ctx.client("rds")
    gid = ctx.topology.global_cluster_id

    def secondary(found: probes.GlobalCluster) -> bool:
        member = found.member_in(ctx.target.region)
        return member is not None and not member.is_writer and found.status == "available"

    wait_until(ctx, lambda: probes.global_cluster(rds, gid), secondary, f"{ctx.target.db_cluster_id} secondary")
    lag = probes.aurora_lag_seconds(ctx.client("cloudwatch"), ctx.target.db_cluster_id)
    return {"secondary": ctx.target.db_cluster_id, "lag_seconds": lag}


def verify_replica_canary_row(ctx: RunContext) -> dict[str, Any]:
    """Failback: the canary row written on the writer shows on the returning region's reader."""
    endpoint = _endpoint(ctx, ctx.target.region, reader=True)
    found = wait_until(ctx, lambda: DB_CANARY.find(endpoint, ctx.run.run_id), lambda seen: seen is not None,
                       f"canary row replicated to {ctx.target.db_cluster_id}")
    return {"written_at": found.isoformat() if found else None}
