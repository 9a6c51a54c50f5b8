"""The heartbeat: every minute, a row and an object written in the region that writes, so the other region's copy
always says how fresh it is (`canary.freshness`), even when the writer's region is gone and no metric is published.

`beat` is what EventBridge Scheduler invokes every minute in each region (the database function, in the records VPC:
it must reach the writer's database, and everything else it calls is its own region's, through the VPC's endpoints).
Which region writes is observed, never configured: each region's invocation asks DescribeGlobalClusters in its own
region and writes only if its own cluster is the writer. So after a switchover or failover the heartbeat follows the
writer with no change anywhere, and a dark region's schedule simply stops (as the heartbeat must: the DR copy then
stops getting fresher, and its newest heartbeat bounds what a failover loses). The sandbox runs the same function on
its own timer (`ehr_dr_sandbox/heartbeat.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dr_runbooks.observe import probes
from dr_runbooks.runbooks import canary
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

#: How often it beats: the stacks schedule it `rate(1 minute)`; the sandbox's schedule defaults to the same.
INTERVAL_SECONDS = 60.0


def beat(aws: AwsSession, topology: Topology, region: str, now: datetime | None = None) -> dict[str, Any]:
    """Write this minute's heartbeat row and object if `region` writes; idempotent for the same second."""
    here = topology.in_region(region)
    rds = aws.client("rds", region)
    writer = probes.global_cluster(rds, topology.global_cluster_id).writer()
    if writer is None or writer.region != region:
        return {"written": False, "region": region, "writer_region": writer.region if writer else None}
    at = (now or datetime.now(UTC)).replace(microsecond=0)
    endpoint = canary.db_endpoint(rds, aws.client("secretsmanager", region), here.db_cluster_id,
                                  topology.db_secret_name, topology.database_name)
    canary.write_heartbeat_row(endpoint, region, at)
    key = canary.heartbeat_key(at)
    canary.write_object(aws.client("s3", region), here.chart_bucket, f"heartbeat-{at.isoformat()}", region, key=key)
    return {"written": True, "region": region, "writer_region": region, "at": at.isoformat(), "object": key}
