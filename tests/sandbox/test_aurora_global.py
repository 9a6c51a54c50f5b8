"""Aurora Global Database emulation through the sandbox endpoint, as a runbook calls it with boto3.

AWS's documented semantics: SwitchoverGlobalCluster loses nothing and swaps the writer; FailoverGlobalCluster with
AllowDataLoss promotes at once and loses what the secondary had not received; both are asynchronous (the global
cluster is `switching-over` / `failing-over` until done, its FailoverState `pending` first, `cancelling` when
cancelled); an old primary is `pending-resync` while AWS rebuilds it, which begins with the `unplanned-global-failover`
snapshot; DescribeDBClusters / DescribeGlobalClusters show the real PostgreSQL endpoints and the writer as observed;
AuroraGlobalDBReplicationLag is readable from CloudWatch, except while the writer's region is dark.
One sandbox (with its PostgreSQL pair) per module; every test starts from the home layout, every member connected.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.aurora_global import Timings
from ehr_dr_sandbox.faults import SandboxControlError

from .records_db_sandbox import pair_of, records_db_sandbox

__all__ = ["records_db_sandbox"]


@pytest.fixture
def sandbox(records_db_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The home layout with every member connected (a rebuild left by a failover test finished first)."""
    pair = pair_of(records_db_sandbox)
    roles = set(pair.status().values())
    if {"writer", "stopped"} <= roles:
        records_db_sandbox.action("db-rejoin")
    records_db_sandbox.action("aurora-timings", resync_seconds=0)
    wait_connected(records_db_sandbox, records_db_sandbox.topology.global_cluster_id)
    pair.restore_home_layout()
    records_db_sandbox.action("aurora-timings", **asdict(Timings()))
    yield records_db_sandbox
    records_db_sandbox.faults.clear()


@pytest.fixture
def names(sandbox: Sandbox) -> dict[str, Any]:
    topology = sandbox.topology
    primary, dr = topology.regions[topology.primary_region], topology.regions[topology.dr_region]
    rds = {region: sandbox.client("rds", region) for region in topology.regions}

    def arn(region: str, cluster_id: str) -> str:
        return rds[region].describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]["DBClusterArn"]

    return {"global": topology.global_cluster_id, "rds": rds, "primary": primary, "dr": dr,
            "primary_arn": arn(primary.region, primary.db_cluster_id), "dr_arn": arn(dr.region, dr.db_cluster_id),
            "database": topology.database_name}


def connect(sandbox: Sandbox, region: str, cluster_id: str, database: str) -> psycopg.Connection[Any]:
    """Connect the way a runbook does: endpoint and port from DescribeDBClusters."""
    cluster = sandbox.client("rds", region).describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    return psycopg.connect(host=cluster["Endpoint"], port=cluster["Port"], dbname=database, user="ehr_admin",
                           autocommit=True, connect_timeout=3)


def writer_arn(sandbox: Sandbox, global_id: str) -> str | None:
    described = sandbox.client("rds").describe_global_clusters(GlobalClusterIdentifier=global_id)
    members = described["GlobalClusters"][0]["GlobalClusterMembers"]
    return next((member["DBClusterArn"] for member in members if member["IsWriter"]), None)


def wait_available(sandbox: Sandbox, global_id: str, timeout: float = 60, region: str | None = None) -> list[str]:
    """Poll DescribeGlobalClusters (in `region`) as a runbook does; the statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = sandbox.client("rds", region).describe_global_clusters(
            GlobalClusterIdentifier=global_id)["GlobalClusters"][0]["Status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "available":
            return seen
        time.sleep(0.05)
    raise AssertionError(f"global cluster still {seen[-1]} after {timeout}s")


def described(sandbox: Sandbox, global_id: str, region: str | None = None) -> dict[str, Any]:
    rds = sandbox.client("rds", region)
    return rds.describe_global_clusters(GlobalClusterIdentifier=global_id)["GlobalClusters"][0]


def synchronization(sandbox: Sandbox, global_id: str, region: str | None = None) -> dict[str, str]:
    """Each member's SynchronizationStatus, by region."""
    return {member["DBClusterArn"].split(":")[3]: member["SynchronizationStatus"]
            for member in described(sandbox, global_id, region)["GlobalClusterMembers"]}


def wait_connected(sandbox: Sandbox, global_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while set(synchronization(sandbox, global_id).values()) != {"connected"}:
        assert time.monotonic() < deadline, f"still {synchronization(sandbox, global_id)} after {timeout}s"
        time.sleep(0.05)


def states_until_available(sandbox: Sandbox, global_id: str, timeout: float = 60) -> list[tuple[str, str | None]]:
    """(Status, FailoverState.Status) as a poller sees them, each change once, until available and nothing in flight."""
    seen: list[tuple[str, str | None]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = described(sandbox, global_id)
        state = (found["Status"], found.get("FailoverState", {}).get("Status"))
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == ("available", None):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"global cluster still {seen[-1]} after {timeout}s")


def failure_snapshots(names: dict[str, Any], region: str) -> list[dict[str, Any]]:
    """The `unplanned-global-failover` system snapshots in `region`."""
    snapshots = names["rds"][region].describe_db_cluster_snapshots(SnapshotType="automated")["DBClusterSnapshots"]
    return [s for s in snapshots if s["DBClusterSnapshotIdentifier"].startswith("rds:unplanned-global-failover-")]


def canaries(connection: psycopg.Connection[Any]) -> set[str]:
    return {row[0] for row in connection.execute("SELECT run_id FROM dr_canary")}


def write_canaries(sandbox: Sandbox, names: dict[str, Any], run_ids: list[str]) -> None:
    with connect(sandbox, names["primary"].region, names["primary"].db_cluster_id, names["database"]) as conn:
        for run_id in run_ids:
            conn.execute("INSERT INTO dr_canary (run_id, region) VALUES (%s, %s)", (run_id, names["primary"].region))


def test_clusters_show_the_postgres_node_behind_them_and_the_primary_writes(sandbox: Sandbox,
                                                                            names: dict[str, Any]) -> None:
    pair = pair_of(sandbox)
    for resources in (names["primary"], names["dr"]):
        cluster = names["rds"][resources.region].describe_db_clusters(
            DBClusterIdentifier=resources.db_cluster_id)["DBClusters"][0]
        assert (cluster["Endpoint"], cluster["Port"]) == ("127.0.0.1", pair.node(resources.region).port)
    assert writer_arn(sandbox, names["global"]) == names["primary_arn"]


def test_the_writer_shown_is_observed_so_a_killed_primary_stops_being_shown_as_writer(
        sandbox: Sandbox, names: dict[str, Any]) -> None:
    sandbox.action("kill-primary-db")
    assert writer_arn(sandbox, names["global"]) is None


def test_switchover_is_asynchronous_swaps_the_writer_and_loses_no_row(sandbox: Sandbox, names: dict[str, Any]) -> None:
    write_canaries(sandbox, names, [f"before-switchover-{n}" for n in range(20)])
    answer = names["rds"][names["primary"].region].switchover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"])
    assert answer["GlobalCluster"]["Status"] == "switching-over"
    assert answer["GlobalCluster"]["FailoverState"]["ToDbClusterArn"] == names["dr_arn"]
    assert wait_available(sandbox, names["global"])[-1] == "available"
    assert writer_arn(sandbox, names["global"]) == names["dr_arn"]
    with connect(sandbox, names["dr"].region, names["dr"].db_cluster_id, names["database"]) as conn:
        assert {f"before-switchover-{n}" for n in range(20)} <= canaries(conn)
    assert pair_of(sandbox).status() == {names["primary"].region: "standby", names["dr"].region: "writer"}


def test_failover_with_data_loss_while_replication_is_paused_loses_exactly_the_unreplicated_rows(
        sandbox: Sandbox, names: dict[str, Any]) -> None:
    write_canaries(sandbox, names, ["replicated"])
    pair_of(sandbox).wait_caught_up()
    sandbox.action("db-replication-pause")
    write_canaries(sandbox, names, ["lost-1", "lost-2", "lost-3"])
    sandbox.action("kill-primary-db")
    answer = names["rds"][names["dr"].region].failover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True)
    assert answer["GlobalCluster"]["FailoverState"]["IsDataLossAllowed"] is True
    assert wait_available(sandbox, names["global"])[-1] == "available"
    with connect(sandbox, names["dr"].region, names["dr"].db_cluster_id, names["database"]) as conn:
        found = canaries(conn)
    assert "replicated" in found
    assert found.isdisjoint({"lost-1", "lost-2", "lost-3"})
    assert writer_arn(sandbox, names["global"]) == names["dr_arn"]


def test_a_killed_old_primary_rejoins_as_secondary_when_its_region_is_back(sandbox: Sandbox,
                                                                           names: dict[str, Any]) -> None:
    sandbox.action("kill-primary-db")
    names["rds"][names["dr"].region].failover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True)
    wait_available(sandbox, names["global"])
    assert pair_of(sandbox).status()[names["primary"].region] == "stopped"
    assert sandbox.action("db-rejoin")["rejoined"] == "rewound"
    with connect(sandbox, names["dr"].region, names["dr"].db_cluster_id, names["database"]) as conn:
        conn.execute("INSERT INTO dr_canary (run_id, region) VALUES ('after-failover', %s)", (names["dr"].region,))
    pair_of(sandbox).wait_caught_up()
    with connect(sandbox, names["primary"].region, names["primary"].db_cluster_id, names["database"]) as conn:
        assert "after-failover" in canaries(conn)


def test_failover_of_a_live_primary_fences_it_and_reattaches_it_as_secondary(sandbox: Sandbox,
                                                                             names: dict[str, Any]) -> None:
    names["rds"][names["dr"].region].failover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True)
    wait_available(sandbox, names["global"])
    assert pair_of(sandbox).status() == {names["primary"].region: "standby", names["dr"].region: "writer"}


def test_failover_without_allow_data_loss_is_a_switchover(sandbox: Sandbox, names: dict[str, Any]) -> None:
    answer = names["rds"][names["dr"].region].failover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"])
    assert answer["GlobalCluster"]["Status"] == "switching-over"
    assert answer["GlobalCluster"]["FailoverState"]["IsDataLossAllowed"] is False
    wait_available(sandbox, names["global"])
    assert writer_arn(sandbox, names["global"]) == names["dr_arn"]


def test_replication_lag_is_readable_as_aurora_global_db_replication_lag(sandbox: Sandbox,
                                                                         names: dict[str, Any]) -> None:
    sandbox.action("db-replication-pause")
    write_canaries(sandbox, names, ["lagging"])
    time.sleep(0.3)
    now = datetime.now(UTC)
    statistics = sandbox.client("cloudwatch", names["dr"].region).get_metric_statistics(
        Namespace="AWS/RDS", MetricName="AuroraGlobalDBReplicationLag",
        Dimensions=[{"Name": "DBClusterIdentifier", "Value": names["dr"].db_cluster_id}],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1), Period=60, Statistics=["Maximum"])
    assert max(point["Maximum"] for point in statistics["Datapoints"]) >= 300


# --- the documented states -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "status"), [("switchover", "switching-over"), ("failover", "failing-over")])
def test_failover_state_passes_through_pending_before_the_operation_and_is_absent_when_done(
        sandbox: Sandbox, names: dict[str, Any], operation: str, status: str) -> None:
    assert "FailoverState" not in described(sandbox, names["global"])
    if operation == "switchover":
        names["rds"][names["primary"].region].switchover_global_cluster(
            GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"])
    else:
        names["rds"][names["dr"].region].failover_global_cluster(
            GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True)
    assert states_until_available(sandbox, names["global"]) == [
        (status, "pending"), (status, status), ("available", None)]
    assert writer_arn(sandbox, names["global"]) == names["dr_arn"]


def test_an_injected_cancellation_goes_cancelling_and_leaves_the_writer_unchanged(
        sandbox: Sandbox, names: dict[str, Any]) -> None:
    sandbox.action("aurora-cancel")
    names["rds"][names["primary"].region].switchover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"])
    assert states_until_available(sandbox, names["global"]) == [
        ("switching-over", "pending"), ("switching-over", "cancelling"), ("available", None)]
    assert writer_arn(sandbox, names["global"]) == names["primary_arn"]
    assert sandbox.status()["database"]["cancel_next"] is False


def test_members_are_connected_at_rest(sandbox: Sandbox, names: dict[str, Any]) -> None:
    assert synchronization(sandbox, names["global"]) == {names["primary"].region: "connected",
                                                         names["dr"].region: "connected"}


def test_an_old_primary_is_pending_resync_after_a_failover_until_aws_has_rebuilt_it(
        sandbox: Sandbox, names: dict[str, Any]) -> None:
    sandbox.action("aurora-timings", resync_seconds=1.5)
    names["rds"][names["dr"].region].failover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True)
    wait_available(sandbox, names["global"])
    assert synchronization(sandbox, names["global"]) == {names["primary"].region: "pending-resync",
                                                         names["dr"].region: "connected"}
    began = time.monotonic()
    wait_connected(sandbox, names["global"])
    assert time.monotonic() - began >= 1.4


def test_the_rebuild_begins_only_once_the_old_primarys_region_is_back(
        sandbox: Sandbox, names: dict[str, Any]) -> None:
    sandbox.action("aurora-timings", resync_seconds=0.5)
    sandbox.faults.region_down(names["primary"].region)
    names["rds"][names["dr"].region].failover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True)
    wait_available(sandbox, names["global"], region=names["dr"].region)
    time.sleep(1)
    assert synchronization(sandbox, names["global"], names["dr"].region)[names["primary"].region] == "pending-resync"
    sandbox.faults.region_up(names["primary"].region)
    assert synchronization(sandbox, names["global"])[names["primary"].region] == "pending-resync"
    wait_connected(sandbox, names["global"])


def test_a_failover_keeps_the_unplanned_global_failover_snapshot_of_the_old_primary_in_its_region(
        sandbox: Sandbox, names: dict[str, Any]) -> None:
    for region in (names["primary"].region, names["dr"].region):  # those earlier tests' failovers left
        for old in failure_snapshots(names, region):
            names["rds"][region].delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=old["DBClusterSnapshotIdentifier"])
    names["rds"][names["dr"].region].failover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True)
    wait_available(sandbox, names["global"])
    described(sandbox, names["global"])  # the rebuild begins: the primary's region answers, its node streams
    (snapshot,) = failure_snapshots(names, names["primary"].region)
    assert snapshot["DBClusterIdentifier"] == names["primary"].db_cluster_id
    assert snapshot["DBClusterSnapshotIdentifier"].startswith(
        f"rds:unplanned-global-failover-{names['primary'].db_cluster_id}-")
    assert snapshot["SnapshotType"] == "automated"
    assert failure_snapshots(names, names["dr"].region) == []


def test_a_switchover_keeps_no_failure_snapshot_and_leaves_both_connected(sandbox: Sandbox,
                                                                         names: dict[str, Any]) -> None:
    def snapshots() -> list[str]:
        found = names["rds"][names["primary"].region].describe_db_cluster_snapshots()["DBClusterSnapshots"]
        return [snapshot["DBClusterSnapshotIdentifier"] for snapshot in found]

    before = snapshots()
    names["rds"][names["primary"].region].switchover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"])
    wait_available(sandbox, names["global"])
    assert set(synchronization(sandbox, names["global"]).values()) == {"connected"}
    assert snapshots() == before


def test_the_lag_metric_stops_while_the_writers_region_is_dark(sandbox: Sandbox, names: dict[str, Any]) -> None:
    cloudwatch = sandbox.client("cloudwatch", names["dr"].region)

    def datapoints(since: datetime) -> list[dict[str, Any]]:
        return cloudwatch.get_metric_statistics(
            Namespace="AWS/RDS", MetricName="AuroraGlobalDBReplicationLag",
            Dimensions=[{"Name": "DBClusterIdentifier", "Value": names["dr"].db_cluster_id}],
            StartTime=since, EndTime=since + timedelta(minutes=2), Period=60, Statistics=["Maximum"])["Datapoints"]

    sandbox.faults.region_down(names["primary"].region)
    dark_since = datetime.now(UTC)
    time.sleep(0.2)
    assert datapoints(dark_since) == []
    sandbox.faults.region_up(names["primary"].region)
    assert datapoints(dark_since) != []


# --- bad input: AWS's errors, nothing changes ---------------------------------------------------------------------


def error_code(call: Any, **arguments: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call(**arguments)
    return str(raised.value.response["Error"]["Code"])


def test_an_unknown_global_cluster_is_global_cluster_not_found(sandbox: Sandbox, names: dict[str, Any]) -> None:
    rds = names["rds"][names["dr"].region]
    assert error_code(rds.switchover_global_cluster, GlobalClusterIdentifier="nope",
                      TargetDbClusterIdentifier=names["dr_arn"]) == "GlobalClusterNotFoundFault"


def test_a_target_outside_the_global_cluster_is_db_cluster_not_found(sandbox: Sandbox, names: dict[str, Any]) -> None:
    rds = names["rds"][names["dr"].region]
    assert error_code(rds.failover_global_cluster, GlobalClusterIdentifier=names["global"],
                      TargetDbClusterIdentifier="arn:aws:rds:us-west-1:123456789012:cluster:other",
                      AllowDataLoss=True) == "DBClusterNotFoundFault"
    assert writer_arn(sandbox, names["global"]) == names["primary_arn"]


def test_a_target_that_already_writes_is_refused(sandbox: Sandbox, names: dict[str, Any]) -> None:
    rds = names["rds"][names["primary"].region]
    assert error_code(rds.switchover_global_cluster, GlobalClusterIdentifier=names["global"],
                      TargetDbClusterIdentifier=names["primary_arn"]) == "InvalidDBClusterStateFault"


def test_allow_data_loss_with_switchover_is_an_invalid_combination(sandbox: Sandbox, names: dict[str, Any]) -> None:
    rds = names["rds"][names["dr"].region]
    assert error_code(rds.failover_global_cluster, GlobalClusterIdentifier=names["global"],
                      TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True,
                      Switchover=True) == "InvalidParameterCombination"


def test_a_second_operation_while_one_runs_is_refused_as_busy(sandbox: Sandbox, names: dict[str, Any]) -> None:
    rds = names["rds"][names["primary"].region]
    rds.switchover_global_cluster(GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"])
    try:
        assert error_code(rds.switchover_global_cluster, GlobalClusterIdentifier=names["global"],
                          TargetDbClusterIdentifier=names["dr_arn"]) == "InvalidGlobalClusterStateFault"
    finally:
        wait_available(sandbox, names["global"])


def test_a_switchover_with_the_primary_down_is_refused(sandbox: Sandbox, names: dict[str, Any]) -> None:
    sandbox.action("kill-primary-db")
    rds = names["rds"][names["primary"].region]
    assert error_code(rds.switchover_global_cluster, GlobalClusterIdentifier=names["global"],
                      TargetDbClusterIdentifier=names["dr_arn"]) == "InvalidGlobalClusterStateFault"


def test_a_switchover_called_outside_the_primarys_region_is_refused(sandbox: Sandbox, names: dict[str, Any]) -> None:
    rds = names["rds"][names["dr"].region]
    assert error_code(rds.switchover_global_cluster, GlobalClusterIdentifier=names["global"],
                      TargetDbClusterIdentifier=names["dr_arn"]) == "InvalidParameterValue"
    assert writer_arn(sandbox, names["global"]) == names["primary_arn"]


def test_a_failover_called_outside_the_promoted_secondarys_region_is_refused(sandbox: Sandbox,
                                                                            names: dict[str, Any]) -> None:
    rds = names["rds"][names["primary"].region]
    assert error_code(rds.failover_global_cluster, GlobalClusterIdentifier=names["global"],
                      TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True) == "InvalidParameterValue"
    assert writer_arn(sandbox, names["global"]) == names["primary_arn"]


def test_a_cluster_aws_is_rebuilding_cannot_be_promoted(sandbox: Sandbox, names: dict[str, Any]) -> None:
    sandbox.action("aurora-timings", resync_seconds=600)
    names["rds"][names["dr"].region].failover_global_cluster(
        GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"], AllowDataLoss=True)
    wait_available(sandbox, names["global"])
    assert error_code(names["rds"][names["dr"].region].switchover_global_cluster,
                      GlobalClusterIdentifier=names["global"],
                      TargetDbClusterIdentifier=names["primary_arn"]) == "InvalidDBClusterStateFault"
    assert writer_arn(sandbox, names["global"]) == names["dr_arn"]


@pytest.mark.parametrize("arguments", [{"resync_seconds": -1}, {"resync": 5}])
def test_aurora_timings_refuses_negative_seconds_and_unknown_names(sandbox: Sandbox, arguments: dict[str, Any]) -> None:
    with pytest.raises(SandboxControlError, match="aurora-timings"):
        sandbox.action("aurora-timings", **arguments)
    assert sandbox.status()["database"]["timings"] == asdict(Timings())
