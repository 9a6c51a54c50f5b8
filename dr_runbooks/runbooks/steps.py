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
from dr_runbooks.topology import FAILOVER_SNAPSHOT_PREFIX, KEPT_FROM_TAG_KEY, lost_writes_snapshot_name

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
    """Failover: the newest canary row and object the target already holds, read before promotion (target only)."""
    row = DB_CANARY.newest(_endpoint(ctx, ctx.target.region, reader=True))
    obj = canary.newest_object(ctx.client("s3"), ctx.target.chart_bucket)
    return {"newest_row_at": row.isoformat() if row else None, "newest_object_at": obj.isoformat() if obj else None}


def _promote(ctx: RunContext, operation: str, call_region: str, **extra: Any) -> dict[str, Any]:
    """Make the target cluster the writer with `operation`, called in `call_region` (where AWS says to call it), and
    wait on Aurora's `FailoverState` (RDS API Reference): done when it is empty and the target writes. A cancellation
    (`cancelling`, or empty with the target not writing after the call) fails the step with the reason, once it has
    ended (nothing left in flight).

    Idempotent and resumable: no call when the target writes already or a move to it is in flight; a continued
    attempt (a Step Functions re-invocation, a resumed crash) that made the call already (checkpoint `requested_at`)
    waits instead of calling again. A target Aurora is still rebuilding (`pending-resync`) cannot be promoted."""
    rds = ctx.client("rds")
    gid = ctx.topology.global_cluster_id
    cluster = probes.global_cluster(rds, gid)
    member = cluster.member_in(ctx.target.region)
    if member is None:
        raise RuntimeError(f"{ctx.target.db_cluster_id} is not a member of global cluster {gid}")
    if cluster.moving and cluster.moving_to not in (None, member.cluster_arn):
        raise RuntimeError(f"global cluster {gid} is already moving its writer to {cluster.moving_to}")
    if not member.is_writer and not member.connected:
        raise RuntimeError(f"{member.cluster_id} is {member.synchronization_status}: Aurora is still rebuilding it "
                           "from the writer and cannot promote it until it is connected")
    kind = operation.removesuffix("_global_cluster")
    started = time.time()
    seen: list[str] = []
    requested = ctx.checkpointed("requested_at") is not None
    if not requested and cluster.failover_status == "cancelling":  # someone else's, still ending: ours comes after
        cluster = wait_until(ctx, lambda: probes.global_cluster(rds, gid), lambda found: not found.moving,
                             "a cancelled switchover or failover to end")
        member = cluster.member_in(ctx.target.region) or member
    if not member.is_writer and not cluster.moving:
        if requested:
            writer = cluster.writer()
            raise RuntimeError(f"Aurora cancelled the {kind} to {member.cluster_id}: it is no longer in flight and "
                               f"{writer.region if writer else 'no region'} still writes")
        answered = getattr(ctx.client("rds", call_region), operation)(
            GlobalClusterIdentifier=gid, TargetDbClusterIdentifier=member.cluster_arn, **extra)
        ctx.checkpoint(requested_at=time.time(), called_in=call_region)
        seen.append((answered["GlobalCluster"].get("FailoverState") or {}).get("Status") or "(empty)")

    def observe() -> probes.GlobalCluster:
        found = probes.global_cluster(rds, gid)
        state = found.failover_status or "(empty)"
        if not seen or seen[-1] != state:
            seen.append(state)
        return found

    # A cancellation is waited out too, so the run ends with nothing in flight.
    found = wait_until(ctx, observe, lambda found: not found.moving,
                       f"{ctx.target.region} writing (FailoverState empty)")
    writer = found.writer()
    if "cancelling" in seen or writer is None or writer.region != ctx.target.region:
        raise RuntimeError(f"Aurora cancelled the {kind} to {member.cluster_id} (FailoverState {' -> '.join(seen)}): "
                           f"{writer.region if writer else 'no region'} still writes")
    return {"writer_region": ctx.target.region, "already_writer": member.is_writer,
            "called_in": ctx.checkpointed("called_in"), "failover_states": seen,
            "promotion_seconds": round(time.time() - started, 3)}


def aurora_switchover(ctx: RunContext) -> dict[str, Any]:
    """SwitchoverGlobalCluster, called in the current primary's region (the source, which answers in a planned move:
    Aurora User Guide, `switchover-global-cluster --region region_of_primary`)."""
    return _promote(ctx, "switchover_global_cluster", ctx.source.region)


def aurora_failover(ctx: RunContext) -> dict[str, Any]:
    """FailoverGlobalCluster with AllowDataLoss, called in the target's region (`failover-global-cluster --region
    region_of_selected_secondary`): never the failed region."""
    return _promote(ctx, "failover_global_cluster", ctx.target.region, AllowDataLoss=True)


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
    probe = canary.write_object(s3, ctx.target.chart_bucket, f"{ctx.run.run_id}-writable", ctx.target.region)
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
        last = ctx.output("find-last-canaries")
        # The database and the archive lose data separately; the RPO is the larger loss, so the older of the two.
        newest = min(filter(None, (last["newest_row_at"], last["newest_object_at"])), default=None)
        rpo = _seconds_between(newest, ctx.run.started_at)
        how = "run start minus the older of the newest canary row and newest canary object the DR region held"
    else:
        rpo, how = 0.0, "the canary row and object written before the switchover were found in the new primary"
    return {"rto_seconds": rto, "rpo_seconds": rpo, "rpo_how": how}


def reattached_secondary(ctx: RunContext) -> dict[str, Any]:
    """Failback: the returned region's cluster is a secondary of the global cluster again and `connected`. After a
    managed failover Aurora rebuilds the old primary once its region is back (`pending-resync`, "a few minutes to
    several hours": Aurora User Guide); until then the region protects nothing. A polled step: it hands back at each
    invocation's end and its timeout counts from its first start."""
    rds = ctx.client("rds")
    gid = ctx.topology.global_cluster_id
    seen: list[str] = []

    def observe() -> probes.GlobalCluster:
        found = probes.global_cluster(rds, gid)
        member = found.member_in(ctx.target.region)
        state = "absent" if member is None else "writer" if member.is_writer else str(member.synchronization_status)
        if not seen or seen[-1] != state:
            seen.append(state)
        return found

    def protected(found: probes.GlobalCluster) -> bool:
        member = found.member_in(ctx.target.region)
        return member is not None and not member.is_writer and member.connected and not found.moving

    wait_until(ctx, observe, protected, f"{ctx.target.db_cluster_id} a connected secondary")
    lag = probes.aurora_lag_seconds(ctx.client("cloudwatch"), ctx.target.db_cluster_id)
    first_start = ctx.deadline - ctx.step.timeout_seconds if ctx.step else time.time()
    return {"secondary": ctx.target.db_cluster_id, "synchronization_states": seen, "lag_seconds": lag,
            "waited_seconds": round(time.time() - first_start, 3)}


def _cluster_snapshots(rds: Any, cluster_id: str, kind: str) -> list[dict[str, Any]]:
    pages = rds.get_paginator("describe_db_cluster_snapshots").paginate(DBClusterIdentifier=cluster_id,
                                                                       SnapshotType=kind)
    return [snapshot for page in pages for snapshot in page["DBClusterSnapshots"]]


def _where(snapshot: dict[str, Any], region: str) -> dict[str, Any]:
    return {"region": region, "identifier": snapshot["DBClusterSnapshotIdentifier"],
            "arn": snapshot["DBClusterSnapshotArn"], "status": snapshot["Status"]}


def keep_failover_snapshot(ctx: RunContext) -> dict[str, Any]:
    """Failback: keep AWS's `unplanned-global-failover` snapshot of the old writer (the returned region's cluster),
    which holds the writes the failover lost. It is a system snapshot that expires with the cluster's backup retention
    (Aurora User Guide), so it is copied, in the region where it lives and with that region's key, to a manual
    snapshot named from the run id and tagged with the snapshot it keeps (each is kept once).

    AWS takes it when the region is back, before rebuilding the cluster: the step waits until an unkept one appears,
    or the cluster is a connected secondary with none (the writer left by switchover: nothing was lost). Idempotent:
    when the copy exists it only waits for it to be available."""
    rds, region, cluster_id = ctx.client("rds"), ctx.target.region, ctx.target.db_cluster_id
    name = lost_writes_snapshot_name(ctx.topology.env_name, ctx.run.run_id)

    def kept() -> dict[str, Any] | None:
        return next((s for s in _cluster_snapshots(rds, cluster_id, "manual")
                     if s["DBClusterSnapshotIdentifier"] == name), None)

    if kept() is None:
        def unkept_or_rebuilt() -> tuple[dict[str, Any] | None, bool]:
            manual = _cluster_snapshots(rds, cluster_id, "manual")
            done = {tag["Value"] for s in manual for tag in s.get("TagList", []) if tag["Key"] == KEPT_FROM_TAG_KEY}
            failures = [s for s in _cluster_snapshots(rds, cluster_id, "automated")
                        if s["DBClusterSnapshotIdentifier"].startswith(f"{FAILOVER_SNAPSHOT_PREFIX}{cluster_id}-")
                        and s["DBClusterSnapshotIdentifier"] not in done]
            member = probes.global_cluster(rds, ctx.topology.global_cluster_id).member_in(region)
            rebuilt = member is not None and not member.is_writer and member.connected
            return max(failures, key=lambda s: s["SnapshotCreateTime"], default=None), rebuilt

        source, _ = wait_until(ctx, unkept_or_rebuilt, lambda seen: seen[0] is not None or seen[1],
                               f"an {FAILOVER_SNAPSHOT_PREFIX}{cluster_id} snapshot, or {cluster_id} rebuilt")
        if source is None:
            return {"kept": None, "why": f"no unkept {FAILOVER_SNAPSHOT_PREFIX}{cluster_id}-* snapshot in {region}: "
                    "the writer left by switchover (nothing was lost), or AWS could not take one"}
        rds.copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=source["DBClusterSnapshotIdentifier"],
            TargetDBClusterSnapshotIdentifier=name, KmsKeyId=ctx.target.kms_key_alias, CopyTags=False,
            Tags=[{"Key": KEPT_FROM_TAG_KEY, "Value": source["DBClusterSnapshotIdentifier"]}])
    copy = wait_until(ctx, kept, lambda found: found is not None and found["Status"] == "available",
                      f"snapshot {name} available")
    assert copy is not None
    source_id = next((tag["Value"] for tag in copy.get("TagList", []) if tag["Key"] == KEPT_FROM_TAG_KEY), None)
    return {"kept": _where(copy, region), "from": source_id, "kms_key": ctx.target.kms_key_alias}


def verify_replica_canary_row(ctx: RunContext) -> dict[str, Any]:
    """Failback: the canary row written on the writer shows on the returning region's reader."""
    endpoint = _endpoint(ctx, ctx.target.region, reader=True)
    found = wait_until(ctx, lambda: DB_CANARY.find(endpoint, ctx.run.run_id), lambda seen: seen is not None,
                       f"canary row replicated to {ctx.target.db_cluster_id}")
    return {"written_at": found.isoformat() if found else None}
