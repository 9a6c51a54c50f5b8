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
from dr_runbooks.topology import TRAFFIC_RECORD_TTL_SECONDS, TrafficTopology

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
