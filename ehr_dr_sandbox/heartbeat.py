"""The heartbeat schedule: what EventBridge Scheduler does in AWS, the sandbox does itself.

In AWS a schedule in each region invokes the database function every minute (`rate(1 minute)`), and the function
(`dr_runbooks.runbooks.heartbeat.beat`) writes a `dr_heartbeat` row and a `dr-heartbeat/<UTC timestamp>` object only
where it finds the writer. Here a thread of the server calls that same function through the sandbox's own endpoint,
once per region, every `SandboxContext.heartbeat_seconds` (60 s by default, as the stacks schedule it; tests may
shorten it; None turns it off), and once right after provisioning.

It behaves as the AWS schedule would (EventBridge Scheduler User Guide, "Schedule types in EventBridge Scheduler": a
rate-based schedule with no StartDate invokes its target at once, then at its rate, with 60-second precision;
EventBridge Scheduler API Reference, "RetryPolicy": the stacks' schedule retries nothing and drops an event older
than 60 s, the minimum; Aurora User Guide, "Using Amazon Aurora Global Database": only the primary cluster writes):
- a region whose endpoints are dark (`fault region-down`) gets no invocation: its scheduler and function are as dark as
  the rest of it, so the writer's heartbeat stops;
- which region writes is observed by the function (DescribeGlobalClusters `IsWriter`, live from the PostgreSQL pair),
  so the heartbeat follows a switchover or failover by itself, and stops while no node writes (`kill-primary-db`);
- the object is an ordinary PutObject in the writer's chart bucket, so it replicates (or queues, when replication is
  paused) like every chart;
- each region's invocation runs under that region's database function role, as Lambda runs it (its calls are
  authorized against the role's policies like any other: `iam_enforcement.py`).

Action `heartbeat-now` beats once at once (what tests use instead of waiting a minute); status section `heartbeat`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dr_runbooks.runbooks import heartbeat
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import database_function_name
from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import Registry
from ehr_dr_sandbox.periodic import Periodic

ACTION = "heartbeat-now"


class HeartbeatSchedule:
    """Beats every `interval` seconds in a daemon thread, and on demand."""

    def __init__(self, context: SandboxContext, credentials: Callable[[str], dict[str, str]]) -> None:
        """`credentials(region)`: the region's database function role's credentials, as Lambda hands them over."""
        self.context = context
        self._credentials = credentials
        self.beats = 0
        self.last: dict[str, dict[str, Any]] = {}
        self.last_at: str | None = None
        self._lock = threading.Lock()
        self._sessions: dict[str, AwsSession] = {}
        self.periodic = Periodic("sandbox-heartbeat", context.heartbeat_seconds, self.beat, context.log)

    def _aws(self, region: str) -> AwsSession:
        """The region's function's clients, made once (the roles exist once the estate is provisioned)."""
        if region not in self._sessions:
            self._sessions[region] = AwsSession.from_credentials(self._credentials(region),
                                                                 endpoint_url=self.context.endpoint_url)
        return self._sessions[region]

    def beat(self) -> dict[str, dict[str, Any]]:
        """One invocation per region whose endpoints answer; each region's result, or why it did not write."""
        topology = self.context.topology
        results: dict[str, dict[str, Any]] = {}
        with self._lock:
            for region in topology.regions:
                if region in self.context.down_regions:
                    results[region] = {"written": False, "region": region, "skipped": "region is dark"}
                    continue
                try:
                    results[region] = heartbeat.beat(self._aws(region), topology, region)
                except Exception as error:  # the writer went down mid-beat, a fault: the schedule keeps going
                    results[region] = {"written": False, "region": region,
                                       "error": (str(error).splitlines() or [type(error).__name__])[0]}
            self.beats += 1
            self.last, self.last_at = results, datetime.now(UTC).isoformat()
        return results

    def report(self) -> dict[str, Any]:
        return {"interval_seconds": self.periodic.interval, "beats": self.beats, "last_at": self.last_at,
                "last": self.last}


def install(registry: Registry, context: SandboxContext) -> None:
    def credentials(region: str) -> dict[str, str]:
        role = f"{database_function_name(context.config.env_name)}-{region}"
        return registry.run_action("assume-service-role", {"role": role, "session": "heartbeat"})

    schedule = HeartbeatSchedule(context, credentials)
    context.on_stop(schedule.periodic.stop)

    @registry.action(ACTION)
    def now(arguments: dict[str, Any]) -> dict[str, Any]:
        return schedule.beat()

    registry.report("heartbeat")(schedule.report)

    def first_beat_then_schedule() -> None:
        schedule.beat()
        schedule.periodic.start()

    context.on_ready(first_beat_then_schedule)
