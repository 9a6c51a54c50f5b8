"""Aurora Global Database emulation: switchover, failover, their documented states, and the replication-lag metric,
over the PostgreSQL pair.

moto 5.2.5 keeps global clusters with members in two regions but has no SwitchoverGlobalCluster or
FailoverGlobalCluster. Here they follow AWS's documented semantics (Aurora User Guide, "Using switchover or failover
in Amazon Aurora Global Database"; RDS API Reference: SwitchoverGlobalCluster, FailoverGlobalCluster, FailoverState,
GlobalClusterMember), driving the real pair:

- **SwitchoverGlobalCluster** (planned, RPO 0), called in the region of the current primary cluster (the user guide's
  `--region region_of_primary`): the writer is stopped cleanly, the target waits until it has replayed all of it, is
  promoted, and the old writer is re-attached as its secondary (pg_rewind). If the target cannot catch up
  (replication paused), the old writer keeps writing and nothing changes: the operation goes `cancelling`, as AWS
  returns both clusters to their previous states.
- **FailoverGlobalCluster** with `AllowDataLoss=True` (unplanned), called in the region of the secondary being
  promoted (`--region region_of_selected_secondary`): the old writer is fenced (stopped at once if it runs), the
  target promoted with whatever it has, and the old writer re-attached as secondary if it was still up. One that was
  killed stays down until `db-rejoin` (AWS re-adds it when its region recovers). Without AllowDataLoss (or with
  `Switchover=True`) it is a switchover, as AWS's API says.

**States** (RDS API Reference, FailoverState and GlobalClusterMember; the AWS CLI's examples for the two operations):
- The call returns the global cluster `Status` `switching-over` / `failing-over` with `FailoverState.Status`
  `pending` (AWS verifies both clusters before it starts) for `pending_seconds`, then `switching-over` /
  `failing-over`, then `available` with no `FailoverState` (it is empty when nothing is in flight).
- A cancellation (`aurora-cancel`, or a switchover that cannot synchronize) shows `cancelling` for
  `cancelling_seconds`, then `available` with the writer unchanged.
- Each member carries `SynchronizationStatus`: `connected`, or `pending-resync` for an old primary after a managed
  failover. AWS rebuilds it once its region is back ("a few minutes to several hours"); here its rebuild begins when
  its region is up and its node streams again, and lasts `resync_seconds`. A cluster being rebuilt cannot be promoted.
- Before the rebuild, AWS "tries to take a snapshot of the old storage volume at the point of failure" named
  `rds:unplanned-global-failover-<old primary cluster>-<timestamp>`, a system snapshot (type `automated`, kept for the
  old primary's backup retention) in the old primary's region: it is put into moto's RDS backend of that region when
  the rebuild begins (timestamp: the failover's, to the second; AWS does not document the format). A record only:
  restoring it is not emulated.

Both operations are asynchronous like AWS: a runbook polls DescribeGlobalClusters. Bad input gets AWS's errors
(GlobalClusterNotFoundFault, DBClusterNotFoundFault, InvalidDBClusterStateFault, InvalidGlobalClusterStateFault,
InvalidParameterCombination) and changes nothing; an operation called in another region than the one the user guide
names gets InvalidParameterValue (AWS documents the region, not the error: this one is the sandbox's choice).

**Timings** default short (`Timings`), so tests stay fast, and are set at run time by the `aurora-timings` action
(`drctl sandbox fault action aurora-timings --arg resync_seconds=600`); sandbox timings say nothing about AWS's.

**Observed, not stored.** Each member cluster of moto's state is bound to its region's PostgreSQL node: its class is
swapped for a subclass whose `endpoint`/`reader_endpoint` (127.0.0.1), `port` (the node's) and `is_writer` (the node
answers `pg_is_in_recovery() = false` now) are read live. So DescribeDBClusters and DescribeGlobalClusters (IsWriter
of each member) always show the pair as it is, even after a crash no API call reported. A class swap rather than a
rewrite of the XML: every moto answer that carries a cluster is right at once, in-process or through the endpoint.
The subclass keeps moto's class name: moto's serializer picks some attribute aliases by class name.

**Lag metric.** Before the sandbox answers a CloudWatch read (GetMetricData, GetMetricStatistics) that names
`AuroraGlobalDBReplicationLag`, one datapoint measured from the pair at that moment is put into moto's CloudWatch in
the secondary's region (namespace AWS/RDS, dimension DBClusterIdentifier = the secondary cluster, milliseconds), as
Aurora publishes it for the secondary. Pushing on read is the simplest honest choice: the runbook reads the metric
through the same API as on AWS, and the value is a measurement, never a stored number. No datapoint is put while the
writer is down or its region is dark (`region-down`): AWS measures the lag from the primary and promises nothing then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from moto.rds.models import DBCluster as MotoDBCluster
from moto.rds.models import GlobalCluster

from dr_runbooks.topology import Topology
from ehr_dr_sandbox.dispatch import Call, Forward, Registry, Reply
from ehr_dr_sandbox.emulated_api import ApiError, answer
from ehr_dr_sandbox.postgres_pair import Node, PostgresError, PostgresPair

log = logging.getLogger(__name__)

#: moto keeps every global cluster in its us-east-1 backend, whatever the regions of the members.
MOTO_GLOBAL_REGION = "us-east-1"
LAG_NAMESPACE = "AWS/RDS"
LAG_METRIC = "AuroraGlobalDBReplicationLag"
LOCALHOST = "127.0.0.1"
#: What AWS names the snapshot of an old primary's volume it takes after a managed failover (Aurora User Guide).
FAILURE_SNAPSHOT_PREFIX = "rds:unplanned-global-failover-"
CONNECTED, PENDING_RESYNC = "connected", "pending-resync"


@dataclass
class Timings:
    """How long the sandbox holds each documented state. AWS takes minutes (hours for a rebuild); these are short so
    tests stay fast, and long enough that a poller sees each state."""

    #: `FailoverState.Status = pending`: AWS verifies both clusters before the operation starts.
    pending_seconds: float = 0.5
    #: `FailoverState.Status = cancelling`: both clusters return to their previous states.
    cancelling_seconds: float = 0.5
    #: `SynchronizationStatus = pending-resync` of an old primary, from when its region is back and it streams again.
    resync_seconds: float = 3.0


@dataclass
class _Rebuild:
    """An old primary AWS rebuilds after a managed failover."""

    cluster_id: str
    failed_at: datetime
    #: When the rebuild began (monotonic): its region answered and its node streamed from the new writer.
    began: float | None = None


class _Cancelled(Exception):
    """The operation was cancelled while pending (the sandbox's `aurora-cancel` action)."""


class _PairBacked:
    """The live half of a moto DBCluster bound to a PostgreSQL node (see the module docstring)."""

    sandbox_node: Callable[[], Node]
    sandbox_synchronization: Callable[[], str]

    @property
    def endpoint(self) -> str:
        return LOCALHOST

    @property
    def reader_endpoint(self) -> str:
        return LOCALHOST

    @property
    def port(self) -> int:
        return self.sandbox_node().port

    @port.setter
    def port(self, value: int) -> None:
        """moto's constructor assigns a port; the node's port is the truth, so the assignment is dropped."""

    @property
    def is_writer(self) -> bool:
        return self.sandbox_node().role() == "writer"

    @is_writer.setter
    def is_writer(self, value: bool) -> None:
        """moto marks the first member writer when the cluster joins; who writes is observed instead."""

    @property
    def synchronization_status(self) -> str:
        """`GlobalClusterMember.SynchronizationStatus` (moto has none): the emulation's view of a rebuild."""
        return self.sandbox_synchronization()


PairBackedCluster = type("DBCluster", (_PairBacked, MotoDBCluster), {"__module__": __name__})


class _Synchronized:
    """A moto GlobalCluster whose members carry `SynchronizationStatus` (moto's list of members has none)."""

    members: list[MotoDBCluster]

    @property
    def global_cluster_members(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = super().global_cluster_members  # type: ignore[misc]
        for entry, member in zip(listed, self.members, strict=True):
            entry["SynchronizationStatus"] = getattr(member, "synchronization_status", CONNECTED)
        return listed


SynchronizedGlobalCluster = type("GlobalCluster", (_Synchronized, GlobalCluster), {"__module__": __name__})


def bind_cluster(cluster: MotoDBCluster, node: Callable[[], Node],
                 synchronization: Callable[[], str] = lambda: CONNECTED) -> None:
    """Make moto's `cluster` show the node `node()` returns (a function: a restored cluster follows the writer)."""
    cluster.__class__ = PairBackedCluster
    cluster.sandbox_node = node
    cluster.sandbox_synchronization = synchronization


class AuroraGlobal:
    """The global cluster of `topology` over `pair`; `backend(service, region)` gives moto's backends and
    `down_regions` the regions the faults emulation keeps dark (the same set, read live)."""

    def __init__(self, pair: PostgresPair, topology: Topology, backend: Callable[[str, str], Any],
                 down_regions: set[str] | None = None, sync_timeout: float = 30):
        self.pair = pair
        self.topology = topology
        self.backend = backend
        self.down_regions = down_regions if down_regions is not None else set()
        self.sync_timeout = sync_timeout
        self.timings = Timings()
        self.last_error: str | None = None
        self._cancel_next = False
        self._rebuilds: dict[str, _Rebuild] = {}
        #: Held while the operation's state changes (Status and FailoverState together, rebuilds, the cancel flag);
        #: an answer that shows that state holds it too, so it never shows half a transition.
        self.lock = threading.Lock()
        self._worker: threading.Thread | None = None

    # --- moto's state --------------------------------------------------------------------------------------------

    def bind(self) -> None:
        """Bind each region's cluster (once it exists in moto) to that region's node, and show the global cluster's
        members' synchronization. Idempotent and cheap."""
        found = self.backend("rds", MOTO_GLOBAL_REGION).global_clusters.get(self.topology.global_cluster_id)
        if found is not None and not isinstance(found, _Synchronized):
            found.__class__ = SynchronizedGlobalCluster
        for region, resources in self.topology.regions.items():
            cluster = self.backend("rds", region).clusters.get(resources.db_cluster_id)
            if cluster is not None and not isinstance(cluster, _PairBacked):
                node = self.pair.node(region)
                bind_cluster(cluster, lambda node=node: node,
                             lambda region=region: self.synchronization_status(region))

    def global_cluster(self, identifier: str | None) -> GlobalCluster:
        found = self.backend("rds", MOTO_GLOBAL_REGION).global_clusters.get(identifier or "")
        if found is None:
            raise ApiError("GlobalClusterNotFoundFault", f"Global cluster {identifier} not found", 404)
        return found

    def _member(self, global_cluster: GlobalCluster, target: str | None) -> MotoDBCluster:
        """The member named by ARN (what AWS asks for) or by identifier."""
        for member in global_cluster.members:
            if target in (member.db_cluster_arn, member.db_cluster_identifier):
                return member
        raise ApiError("DBClusterNotFoundFault", f"DBCluster {target} is not a member of global cluster "
                       f"{global_cluster.global_cluster_identifier}", 404)

    # --- the operations ------------------------------------------------------------------------------------------

    def switchover(self, global_id: str | None, target: str | None, called_in: str) -> GlobalCluster:
        return self._start(global_id, target, data_loss=False, called_in=called_in, operation="switchover")

    def failover(self, global_id: str | None, target: str | None, allow_data_loss: bool,
                 switchover: bool, called_in: str) -> GlobalCluster:
        if allow_data_loss and switchover:
            raise ApiError("InvalidParameterCombination", "AllowDataLoss and Switchover cannot be specified together")
        return self._start(global_id, target, data_loss=allow_data_loss, called_in=called_in, operation="failover")

    def _start(self, global_id: str | None, target: str | None, data_loss: bool, called_in: str,
               operation: Literal["switchover", "failover"]) -> GlobalCluster:
        self.bind()
        self.refresh()
        with self.lock:
            global_cluster = self.global_cluster(global_id)
            if global_cluster.status != "available":
                raise ApiError("InvalidGlobalClusterStateFault", f"Global cluster {global_cluster.global_cluster_arn} "
                               f"is {global_cluster.status}, not available")
            to_cluster = self._member(global_cluster, target)
            to_node = self.pair.node(str(to_cluster.region))
            from_node = self.pair.partner(to_node.region)
            to_role, from_role = to_node.role(), from_node.role()
            if to_role == "writer":
                raise ApiError("InvalidDBClusterStateFault", f"DBCluster {to_cluster.db_cluster_identifier} is "
                               "already the primary cluster of the global cluster")
            if to_role != "standby":
                raise ApiError("InvalidDBClusterStateFault",
                               f"DBCluster {to_cluster.db_cluster_identifier} is not available ({to_role})")
            if to_node.region in self._rebuilds:
                raise ApiError("InvalidDBClusterStateFault", f"DBCluster {to_cluster.db_cluster_identifier} is "
                               f"{PENDING_RESYNC}: Aurora is rebuilding it from the primary")
            # Aurora User Guide: switchover-global-cluster --region region_of_primary; failover-global-cluster
            # --region region_of_selected_secondary.
            expected = from_node.region if operation == "switchover" else to_node.region
            if called_in != expected:
                raise ApiError("InvalidParameterValue", f"{operation} of global cluster "
                               f"{global_cluster.global_cluster_identifier} to {to_cluster.db_cluster_identifier} "
                               f"must be called in {expected} (the region of the "
                               f"{'primary' if operation == 'switchover' else 'secondary being promoted'}), "
                               f"not {called_in}")
            if not data_loss and from_role != "writer":
                raise ApiError("InvalidGlobalClusterStateFault", "a switchover needs the primary cluster available "
                               "(it is not): fail over with AllowDataLoss")
            from_cluster = next(member for member in global_cluster.members if member is not to_cluster)
            global_cluster.status = "failing-over" if data_loss else "switching-over"
            global_cluster.failover_state = {
                "Status": "pending",
                "FromDbClusterArn": from_cluster.db_cluster_arn, "ToDbClusterArn": to_cluster.db_cluster_arn,
                "IsDataLossAllowed": data_loss,
            }
            self.last_error = None
            self._worker = threading.Thread(
                target=self._run, name="aurora-global-failover", daemon=True,
                args=(global_cluster, from_cluster.db_cluster_identifier, from_node.region, to_node.region, data_loss))
            self._worker.start()
            return global_cluster

    def _run(self, global_cluster: GlobalCluster, from_cluster_id: str, from_region: str, to_region: str,
             data_loss: bool) -> None:
        """pending -> switching-over / failing-over -> available, or pending/... -> cancelling -> available."""
        time.sleep(self.timings.pending_seconds)
        try:
            with self.lock:
                cancelled, self._cancel_next = self._cancel_next, False
                if cancelled:
                    raise _Cancelled("cancelled while pending (sandbox action aurora-cancel)")
                global_cluster.failover_state["Status"] = global_cluster.status
            failed_at = datetime.now(UTC)
            if data_loss:
                was_up = self.pair.node(from_region).pid is not None
                self.pair.fence(from_region)
                self.pair.promote(to_region)
                if was_up:
                    self.pair.reattach(from_region)
                with self.lock:
                    self._rebuilds[from_region] = _Rebuild(from_cluster_id, failed_at)
            else:
                self.pair.switchover(to_region, timeout=self.sync_timeout)
        except (PostgresError, _Cancelled) as error:
            self.last_error = str(error)
            log.warning("aurora global %s to %s did not happen: %s", "failover" if data_loss else "switchover",
                        to_region, error)
            with self.lock:
                global_cluster.failover_state["Status"] = "cancelling"
            time.sleep(self.timings.cancelling_seconds)
        finally:
            with self.lock:
                global_cluster.status = "available"
                global_cluster.failover_state = None

    def cancel_next(self) -> None:
        """Cancel the next operation to leave `pending` (the one in flight if it still is): it goes `cancelling`, then
        ends with the writer unchanged."""
        with self.lock:
            self._cancel_next = True

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait for a switchover or failover in progress to end (tests and `down`)."""
        if self._worker is not None:
            self._worker.join(timeout)

    def rejoin(self) -> Literal["rewound", "cloned", "already attached"]:
        """Re-attach a former writer that was down during a failover as the secondary (its region recovered)."""
        writer = self.pair.writer()
        other = self.pair.partner(writer.region)
        if other.role() == "standby":
            return "already attached"
        return self.pair.reattach(other.region)

    # --- rebuilding an old primary -------------------------------------------------------------------------------

    def synchronization_status(self, region: str) -> str:
        return PENDING_RESYNC if region in self._rebuilds else CONNECTED

    def refresh(self) -> None:
        """Move the rebuilds on, as of now: one begins (with the failure snapshot) once its region answers and its node
        streams again; it ends `resync_seconds` later. Run before every answer that shows them, so a poller sees the
        states in order without a clock thread."""
        with self.lock:
            for region, rebuild in list(self._rebuilds.items()):
                if region in self.down_regions or self.pair.node(region).role() != "standby":
                    continue
                if rebuild.began is None:
                    rebuild.began = time.monotonic()
                    self._keep_failure_snapshot(region, rebuild)
                if time.monotonic() - rebuild.began >= self.timings.resync_seconds:
                    del self._rebuilds[region]

    def _keep_failure_snapshot(self, region: str, rebuild: _Rebuild) -> None:
        """AWS's `rds:unplanned-global-failover-...` system snapshot of the old primary, in its region."""
        rds = self.backend("rds", region)
        name = f"{FAILURE_SNAPSHOT_PREFIX}{rebuild.cluster_id}-{rebuild.failed_at:%Y-%m-%d-%H-%M-%S}"
        if name not in rds.cluster_snapshots:
            rds.create_db_cluster_snapshot(rebuild.cluster_id, name, snapshot_type="automated")

    # --- replication lag -----------------------------------------------------------------------------------------

    def publish_lag(self) -> float | None:
        """Put one `AuroraGlobalDBReplicationLag` datapoint (ms) for the secondary cluster, measured now; the value,
        or None when there is nothing to measure (no standby, the writer down or its region dark)."""
        try:
            writer = self.pair.writer()
            if writer.region in self.down_regions:
                return None
            sample = self.pair.lag()
            standby = next(node for node in self.pair.nodes.values() if node.role() == "standby")
        except (PostgresError, psycopg.Error, StopIteration):  # a node going down under us: nothing to measure
            return None
        if sample.bytes is None or sample.seconds is None:
            return None
        milliseconds = round(sample.seconds * 1000, 1)
        cluster_id = self.topology.regions[standby.region].db_cluster_id
        self.backend("cloudwatch", standby.region).put_metric_data(LAG_NAMESPACE, [{
            "MetricName": LAG_METRIC, "Value": milliseconds, "Unit": "Milliseconds",  # timestamped now by moto
            "Dimensions": [{"Name": "DBClusterIdentifier", "Value": cluster_id}],
        }])
        return milliseconds

    def set_timings(self, arguments: dict[str, Any]) -> dict[str, float]:
        """Change some of the `Timings` (seconds >= 0); all of them, as they are now."""
        known = set(asdict(self.timings))
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise ValueError(f"aurora-timings knows {', '.join(sorted(known))}, not {', '.join(unknown)}")
        values = {name: float(value) for name, value in arguments.items()}
        negative = sorted(name for name, value in values.items() if value < 0)
        if negative:
            raise ValueError(f"aurora-timings needs seconds >= 0 ({', '.join(negative)})")
        for name, value in values.items():
            setattr(self.timings, name, value)
        return asdict(self.timings)

    def report(self) -> dict[str, Any]:
        """The sandbox status section: roles, lag, rebuilds, timings and the last failed operation, observed now."""
        try:
            lag = self.pair.lag()
            lag_view: dict[str, Any] = {"bytes": lag.bytes, "seconds": lag.seconds, "paused": lag.paused}
        except (PostgresError, psycopg.Error) as error:
            lag_view = {"unavailable": str(error).splitlines()[0]}
        self.refresh()
        return {"roles": self.pair.status(), "lag": lag_view, "last_error": self.last_error,
                "ports": {region: node.port for region, node in self.pair.nodes.items()},
                "synchronization": {region: self.synchronization_status(region) for region in self.pair.nodes},
                "cancel_next": self._cancel_next, "timings": asdict(self.timings)}


def register(registry: Registry, aurora: AuroraGlobal) -> None:
    """The seam's handlers: the two missing RDS operations, live describes, the lag metric on read, and the actions
    `aurora-cancel` and `aurora-timings`."""

    def truthy(value: str | None) -> bool:
        return (value or "").lower() == "true"

    @registry.intercept("rds", "SwitchoverGlobalCluster")
    def switchover(call: Call, forward: Forward) -> Reply:
        return answer(call, lambda: {"GlobalCluster": aurora.switchover(
            call.param("GlobalClusterIdentifier"), call.param("TargetDbClusterIdentifier"), called_in=call.region)})

    @registry.intercept("rds", "FailoverGlobalCluster")
    def failover(call: Call, forward: Forward) -> Reply:
        return answer(call, lambda: {"GlobalCluster": aurora.failover(
            call.param("GlobalClusterIdentifier"), call.param("TargetDbClusterIdentifier"),
            allow_data_loss=truthy(call.param("AllowDataLoss")), switchover=truthy(call.param("Switchover")),
            called_in=call.region)})

    def observed_first(call: Call, forward: Forward) -> Reply:
        aurora.bind()
        aurora.refresh()
        with aurora.lock:
            return forward()

    for operation in ("DescribeDBClusters", "DescribeGlobalClusters", "DescribeDBClusterSnapshots"):
        registry.intercept("rds", operation)(observed_first)

    def fresh_lag_first(call: Call, forward: Forward) -> Reply:
        if LAG_METRIC.encode() in call.body or LAG_METRIC in str(call.query):
            aurora.publish_lag()
        return forward()

    for operation in ("GetMetricData", "GetMetricStatistics"):
        registry.intercept("monitoring", operation)(fresh_lag_first)

    @registry.action("aurora-cancel")
    def cancel(arguments: dict[str, Any]) -> dict[str, bool]:
        aurora.cancel_next()
        return {"cancel_next": True}

    @registry.action("aurora-timings")
    def timings(arguments: dict[str, Any]) -> dict[str, float]:
        return aurora.set_timings(arguments)
