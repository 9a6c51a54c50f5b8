"""The step actions of the on-call runbooks. Each checks its own preconditions, is idempotent, and returns outputs.

`ctx.target` is the region the estate moves to, `ctx.source` the one it leaves. Steps of a failover call only the
target's APIs; steps that need the source (writing the canaries before a planned switchover) say so in their name and
appear only in plans where the source is known to answer.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.waits import wait_until
from dr_runbooks.observe import probes, traffic
from dr_runbooks.runbooks import canary
from dr_runbooks.topology import (
    FAILOVER_SNAPSHOT_PREFIX,
    KEPT_FROM_TAG_KEY,
    TRAFFIC_RECORD_TTL_SECONDS,
    TrafficTopology,
    lost_writes_snapshot_name,
)

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


def _reached(ctx: RunContext) -> set[str]:
    """The regions whose gates a run sets and records. A switchover or failback calls both (the source answers). A
    failover never depends on its source, but when the source still answers (a partial outage: its APIs up, its
    database gone, or on-call failing over while both answer) it keeps the source's gates and records in line too:
    otherwise a gate it cannot reach keeps an old state, a record the other region holds goes stale, and a later
    failover finds the next target's gate closed in the region that died (found by the model-based test)."""
    if ctx.run.runbook != "failover":
        return set(ctx.topology.regions)
    return {ctx.target.region} | ({ctx.source.region} if _answers(ctx, ctx.source.region) else set())


def _answers(ctx: RunContext, region: str) -> bool:
    """`region` answers now, on a probe client (2 s connect, 3 s read, 2 attempts: seconds when it is dark)."""
    try:
        ctx.aws.client("sts", region, probe=True).get_caller_identity()
    except (BotoCoreError, ClientError):
        return False
    return True


def _client(ctx: RunContext, service: str, region: str) -> Any:
    """A failover's calls into its source go on probe clients: a source that goes dark meanwhile costs seconds."""
    return ctx.aws.client(service, region, probe=ctx.run.runbook == "failover" and region == ctx.source.region)


def _writer_after(ctx: RunContext) -> str:
    """The region that writes once the run is done: a failback re-protects its target, the writer stays put."""
    return ctx.source.region if ctx.run.runbook == "failback" else ctx.target.region


def _set_gate(ctx: RunContext, region: str, state: traffic.GateState, reached: set[str]) -> None:
    """One gate: its datapoint in its alarm's region, the alarm followed, the state recorded in every region reached
    (so `status` and a later failover know it while the alarm's region is dark)."""
    assert ctx.topology.traffic is not None
    gate = ctx.topology.traffic.gates[region]
    cloudwatch = _client(ctx, "cloudwatch", gate.alarm_region)
    closed = state == "closed"
    probes.put_gate(cloudwatch, gate, evacuate=closed)
    wait_until(ctx, lambda: probes.alarm_states(cloudwatch, [gate.alarm_name]).get(gate.alarm_name),
               lambda alarm: (alarm == "ALARM") == closed, f"gate of {region} {state} ({gate.alarm_name})")
    for where in sorted(reached):
        traffic.write_gate_record(_client(ctx, "dynamodb", where), ctx.topology.in_region(where).runbook_table,
                                  ctx.topology.env_name, region, state, ctx.run.run_id, time.time())


def shift_traffic(ctx: RunContext) -> dict[str, Any]:
    """Set every gate the run reaches to the gate rule (`observe.traffic.desired_gates`) for the writer it leaves,
    opens first and the writer's own first, so DNS never prefers a region that does not write. Idempotent: a gate
    already in its state takes the same datapoint again."""
    if ctx.topology.traffic is None:
        return {"skipped": "this environment does not manage traffic"}
    reached, writer = _reached(ctx), _writer_after(ctx)
    wanted = traffic.reachable_gates(ctx.topology, traffic.desired_gates(ctx.topology, writer, reached), reached)
    for region in traffic.setting_order(writer, wanted):
        _set_gate(ctx, region, wanted[region], reached)
    return {"writer_region": writer, "gates": wanted, "reached": sorted(reached),
            "unreached_gates": sorted(set(ctx.topology.traffic.gates) - set(wanted)), "settled_at": time.time()}


def _dns_region(route53: Any, zone_id: str, routing: TrafficTopology) -> str | None:
    """The region whose endpoint Route 53 answers for the application's record (TestDNSAnswer)."""
    answer = route53.test_dns_answer(HostedZoneId=zone_id, RecordName=routing.record_name,
                                     RecordType="CNAME")["RecordData"]
    by_endpoint = {endpoint.rstrip("."): region for region, endpoint in routing.endpoints.items()}
    return next((by_endpoint[value.rstrip(".")] for value in answer if value.rstrip(".") in by_endpoint), None)


def confirm_dns(ctx: RunContext) -> dict[str, Any]:
    """Where DNS answers once the gates moved. Confirmed by Route 53's TestDNSAnswer when the run reaches its API
    (us-east-1), polled until it answers the writer; else expected from the gates (set by this run, or as the target
    knows them) and Route 53's failover rule, and a forecast that DNS stays elsewhere fails the step. `effective_at`
    is when resolvers follow: the answer's time (confirmed, or the gates settled plus Route 53's evaluation) plus the
    record's TTL; the RTO ends there at the earliest."""
    routing = ctx.topology.traffic
    if routing is None:
        return {"skipped": "this environment does not manage traffic"}
    settled, writer = ctx.output("shift-traffic"), _writer_after(ctx)
    reached = set(settled["reached"])
    if traffic.ROUTE53_REGION in reached:
        route53 = _client(ctx, "route53", traffic.ROUTE53_REGION)
        zone_id = route53.list_hosted_zones_by_name(DNSName=routing.hosted_zone_name)["HostedZones"][0]["Id"]
        wait_until(ctx, lambda: _dns_region(route53, zone_id, routing), lambda region: region == writer,
                   f"Route 53 answering {writer}")
        return {"answer_region": writer, "confirmed": True, "effective_at": time.time() + TRAFFIC_RECORD_TTL_SECONDS,
                "how": f"Route 53 TestDNSAnswer answered {writer}'s endpoint; plus the record TTL "
                       f"({TRAFFIC_RECORD_TTL_SECONDS} s) for resolvers' caches"}
    gates = traffic.gates_seen_from(ctx.topology, ctx.target.region, ctx.client("cloudwatch"), ctx.client("dynamodb"))
    states = {region: reading.state for region, reading in gates.items()} | settled["gates"]
    answers = traffic.dns_answers(ctx.topology, {region: region in reached for region in states}, states)
    unknown = "; ".join(reading.detail for region, reading in gates.items() if region not in settled["gates"])
    if writer not in answers:
        raise RuntimeError(f"DNS stays on {', '.join(sorted(answers))}, not {writer}: {unknown}")
    how = (f"not confirmed, Route 53's API in {traffic.ROUTE53_REGION} is not reached; from the gates: "
           f"{', '.join(f'{region} {state}' for region, state in sorted(settled['gates'].items()))} set by this run; "
           f"{unknown}; Route 53's evaluation ({traffic.ROUTE53_EVALUATION_SECONDS} s) and the record TTL "
           f"({TRAFFIC_RECORD_TTL_SECONDS} s) added")
    return {"answer_region": writer if answers == {writer} else None, "confirmed": False, "how": how,
            "effective_at": settled["settled_at"] + traffic.ROUTE53_EVALUATION_SECONDS + TRAFFIC_RECORD_TTL_SECONDS}


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
    # Users reach the new writer once resolvers follow DNS: confirm-dns says when (answer time plus the TTL).
    ended += [record.outputs["effective_at"] for name, record in steps.items()
              if name == "confirm-dns" and record.outputs.get("effective_at")]
    rto = max(ended) - min(changing) if changing and ended else None
    if ctx.run.runbook == "failover":
        # The database and the archive lose data separately; the RPO is the larger loss, so the older of the two,
        # and none when either side held no canary nor heartbeat (nothing bounds that side's loss).
        rpo = _seconds_between(ctx.output("find-last-canaries").get("loss_bound_at"), ctx.run.started_at)
        how = ("run start minus the older of the newest canary/heartbeat row and the newest canary/heartbeat object "
               "the DR region held (not measured when it held no row or no object)")
    else:
        rpo, how = 0.0, "the canary row and object written before the switchover were found in the new primary"
    return {"rto_seconds": rto, "rpo_seconds": rpo, "rpo_how": how,
            "rto_how": "journal: start of the first changing step to the end of the last step or, if later, to when "
                       "resolvers follow DNS (confirm-dns: Route 53's answer plus the record TTL)"}


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
