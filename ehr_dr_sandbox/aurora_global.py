"""Aurora Global Database emulation: switchover, failover and the replication-lag metric, over the PostgreSQL pair.

moto 5.2.5 keeps global clusters with members in two regions but has no SwitchoverGlobalCluster or
FailoverGlobalCluster. Here they follow AWS's documented semantics, driving the real pair:

- **SwitchoverGlobalCluster** (planned, RPO 0): the global cluster goes `switching-over`; the writer is stopped
  cleanly, the target waits until it has replayed all of it, is promoted, and the old writer is re-attached as its
  secondary (pg_rewind); then `available`. If the target cannot catch up (replication paused), the old writer keeps
  writing and nothing changes, as AWS rolls back a switchover that cannot synchronize.
- **FailoverGlobalCluster** with `AllowDataLoss=True` (unplanned): `failing-over`; the old writer is fenced (stopped at
  once if it runs), the target promoted with whatever it has, and the old writer re-attached as secondary if it was
  still up. One that was killed stays down until `rejoin` (AWS re-adds it when its region recovers). Without
  AllowDataLoss (or with `Switchover=True`) it is a switchover, as AWS's API says.

Both are asynchronous like AWS: the call returns the global cluster `switching-over`/`failing-over` with its
`FailoverState`, and a runbook polls DescribeGlobalClusters until `available`. Bad input gets AWS's errors
(GlobalClusterNotFoundFault, DBClusterNotFoundFault, InvalidDBClusterStateFault, InvalidGlobalClusterStateFault,
InvalidParameterCombination) and changes nothing.

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
through the same API as on AWS, and the value is a measurement, never a stored number. No datapoint is put while
the writer is down (on AWS the metric stops too).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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


class _PairBacked:
    """The live half of a moto DBCluster bound to a PostgreSQL node (see the module docstring)."""

    sandbox_node: Callable[[], Node]

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


PairBackedCluster = type("DBCluster", (_PairBacked, MotoDBCluster), {"__module__": __name__})


def bind_cluster(cluster: MotoDBCluster, node: Callable[[], Node]) -> None:
    """Make moto's `cluster` show the node `node()` returns (a function: a restored cluster follows the writer)."""
    cluster.__class__ = PairBackedCluster
    cluster.sandbox_node = node


class AuroraGlobal:
    """The global cluster of `topology` over `pair`; `backend(service, region)` gives moto's backends."""

    def __init__(self, pair: PostgresPair, topology: Topology, backend: Callable[[str, str], Any],
                 sync_timeout: float = 30):
        self.pair = pair
        self.topology = topology
        self.backend = backend
        self.sync_timeout = sync_timeout
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    # --- moto's state --------------------------------------------------------------------------------------------

    def bind(self) -> None:
        """Bind each region's cluster (once it exists in moto) to that region's node. Idempotent and cheap."""
        for region, resources in self.topology.regions.items():
            cluster = self.backend("rds", region).clusters.get(resources.db_cluster_id)
            if cluster is not None and not isinstance(cluster, _PairBacked):
                node = self.pair.node(region)
                bind_cluster(cluster, lambda node=node: node)

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

    def switchover(self, global_id: str | None, target: str | None) -> GlobalCluster:
        return self._start(global_id, target, data_loss=False)

    def failover(self, global_id: str | None, target: str | None, allow_data_loss: bool,
                 switchover: bool) -> GlobalCluster:
        if allow_data_loss and switchover:
            raise ApiError("InvalidParameterCombination", "AllowDataLoss and Switchover cannot be specified together")
        return self._start(global_id, target, data_loss=allow_data_loss)

    def _start(self, global_id: str | None, target: str | None, data_loss: bool) -> GlobalCluster:
        self.bind()
        with self._lock:
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
            if not data_loss and from_role != "writer":
                raise ApiError("InvalidGlobalClusterStateFault", "a switchover needs the primary cluster available "
                               "(it is not): fail over with AllowDataLoss")
            from_cluster = next(member for member in global_cluster.members if member is not to_cluster)
            global_cluster.status = "failing-over" if data_loss else "switching-over"
            global_cluster.failover_state = {
                "Status": "failing-over" if data_loss else "switching-over",
                "FromDbClusterArn": from_cluster.db_cluster_arn, "ToDbClusterArn": to_cluster.db_cluster_arn,
                "IsDataLossAllowed": data_loss,
            }
            self.last_error = None
            self._worker = threading.Thread(target=self._run, name="aurora-global-failover", daemon=True,
                                            args=(global_cluster, from_node.region, to_node.region, data_loss))
            self._worker.start()
            return global_cluster

    def _run(self, global_cluster: GlobalCluster, from_region: str, to_region: str, data_loss: bool) -> None:
        try:
            if data_loss:
                was_up = self.pair.node(from_region).pid is not None
                self.pair.fence(from_region)
                self.pair.promote(to_region)
                if was_up:
                    self.pair.reattach(from_region)
            else:
                self.pair.switchover(to_region, timeout=self.sync_timeout)
        except PostgresError as error:
            self.last_error = str(error)
            log.warning("aurora global %s to %s failed: %s", "failover" if data_loss else "switchover",
                        to_region, error)
        finally:
            with self._lock:
                global_cluster.status = "available"
                global_cluster.failover_state = None

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

    # --- replication lag -----------------------------------------------------------------------------------------

    def publish_lag(self) -> float | None:
        """Put one `AuroraGlobalDBReplicationLag` datapoint (ms) for the secondary cluster, measured now; the value,
        or None when there is nothing to measure (no standby, or the writer is down)."""
        try:
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

    def report(self) -> dict[str, Any]:
        """The sandbox status section: roles, lag and the last failed operation, all observed now."""
        try:
            lag = self.pair.lag()
            lag_view: dict[str, Any] = {"bytes": lag.bytes, "seconds": lag.seconds, "paused": lag.paused}
        except (PostgresError, psycopg.Error) as error:
            lag_view = {"unavailable": str(error).splitlines()[0]}
        return {"roles": self.pair.status(), "lag": lag_view, "last_error": self.last_error,
                "ports": {region: node.port for region, node in self.pair.nodes.items()}}


def register(registry: Registry, aurora: AuroraGlobal) -> None:
    """The seam's handlers: the two missing RDS operations, live describes, and the lag metric on read."""

    def truthy(value: str | None) -> bool:
        return (value or "").lower() == "true"

    @registry.intercept("rds", "SwitchoverGlobalCluster")
    def switchover(call: Call, forward: Forward) -> Reply:
        return answer(call, lambda: {"GlobalCluster": aurora.switchover(
            call.param("GlobalClusterIdentifier"), call.param("TargetDbClusterIdentifier"))})

    @registry.intercept("rds", "FailoverGlobalCluster")
    def failover(call: Call, forward: Forward) -> Reply:
        return answer(call, lambda: {"GlobalCluster": aurora.failover(
            call.param("GlobalClusterIdentifier"), call.param("TargetDbClusterIdentifier"),
            allow_data_loss=truthy(call.param("AllowDataLoss")), switchover=truthy(call.param("Switchover")))})

    def bound_first(call: Call, forward: Forward) -> Reply:
        aurora.bind()
        return forward()

    for operation in ("DescribeDBClusters", "DescribeGlobalClusters"):
        registry.intercept("rds", operation)(bound_first)

    def fresh_lag_first(call: Call, forward: Forward) -> Reply:
        if LAG_METRIC.encode() in call.body or LAG_METRIC in str(call.query):
            aurora.publish_lag()
        return forward()

    for operation in ("GetMetricData", "GetMetricStatistics"):
        registry.intercept("monitoring", operation)(fresh_lag_first)
