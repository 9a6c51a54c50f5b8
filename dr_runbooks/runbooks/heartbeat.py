"""The heartbeat: every minute, a row and an object written in the region that writes, so the other region's copy
always says how fresh it is (`canary.freshness`), even when the writer's region is gone and no metric is published.

`beat` is what EventBridge Scheduler invokes every minute in each region (the database function, in the records VPC:
it must reach the writer's database, and everything else it calls is its own region's, through the VPC's endpoints).
Which region writes is observed, never configured: each region's invocation asks DescribeGlobalClusters in its own
region and writes only if its own cluster is the writer. So after a switchover or failover the heartbeat follows the
writer with no change anywhere, and a dark region's schedule simply stops (as the heartbeat must: the DR copy then
stops getting fresher, and its newest heartbeat bounds what a failover loses). The sandbox runs the same function on
its own timer (`ehr_dr_sandbox/heartbeat.py`).

The writer's beat also keeps the traffic gate it holds in line with the gate rule (`observe.traffic.desired_gates`)
once its partner is back as a connected secondary: a failover to the primary with the DR region dark must close the
DR region's gate (it lives in the primary), and nothing else would open it again until someone ran a failback; if the
primary died meanwhile, a failover to the DR region could not let it into DNS. The
beat sets only that one gate, in its own region, and records it as the runbooks do.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from dr_runbooks.observe import probes, traffic
from dr_runbooks.runbooks import canary
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

#: How often it beats: the stacks schedule it `rate(1 minute)`; the sandbox's schedule defaults to the same.
INTERVAL_SECONDS = 60.0


def beat(aws: AwsSession, topology: Topology, region: str, now: datetime | None = None) -> dict[str, Any]:
    """Write this minute's heartbeat row and object if `region` writes; idempotent for the same second."""
    here = topology.in_region(region)
    rds = aws.client("rds", region)
    cluster = probes.global_cluster(rds, topology.global_cluster_id)
    writer = cluster.writer()
    if writer is None or writer.region != region:
        return {"written": False, "region": region, "writer_region": writer.region if writer else None}
    at = (now or datetime.now(UTC)).replace(microsecond=0)
    endpoint = canary.db_endpoint(rds, aws.client("secretsmanager", region), here.db_cluster_id,
                                  topology.db_secret_name, topology.database_name)
    canary.write_heartbeat_row(endpoint, region, at)
    key = canary.heartbeat_key(at)
    canary.write_object(aws.client("s3", region), here.chart_bucket, f"heartbeat-{at.isoformat()}", region, key=key)
    return {"written": True, "region": region, "writer_region": region, "at": at.isoformat(), "object": key,
            "gate": _gate_in_line(aws, topology, region, cluster)}


def _gate_in_line(aws: AwsSession, topology: Topology, region: str, cluster: probes.GlobalCluster) -> dict[str, Any]:
    """The partner's gate, whose alarm lives here, set to the gate rule for this writer with both regions up, once
    the partner is a connected secondary (before that the rule for a dark partner stands). A gate already so: no
    call but the read."""
    partner = topology.partner(region)
    member = cluster.member_in(partner)
    if topology.traffic is None or member is None or member.is_writer or not member.connected:
        return {"set": False}
    gate = topology.traffic.gates[partner]
    wanted = traffic.desired_gates(topology, region, topology.regions)[partner]
    cloudwatch = aws.client("cloudwatch", region)
    state = probes.alarm_states(cloudwatch, [gate.alarm_name]).get(gate.alarm_name)
    if (state == "ALARM") == (wanted == "closed"):
        return {"set": False, "gate_of": partner, "state": wanted}
    probes.put_gate(cloudwatch, gate, evacuate=wanted == "closed")
    traffic.write_gate_record(aws.client("dynamodb", region), topology.in_region(region).runbook_table,
                              topology.env_name, partner, wanted, "heartbeat", time.time())
    return {"set": True, "gate_of": partner, "state": wanted}
