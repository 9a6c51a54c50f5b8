"""Aurora Global Database emulation through the sandbox endpoint, as a runbook calls it with boto3.

AWS's documented semantics: SwitchoverGlobalCluster loses nothing and swaps the writer; FailoverGlobalCluster with
AllowDataLoss promotes at once and loses what the secondary had not received; both are asynchronous (the global
cluster is `switching-over` / `failing-over` until done); DescribeDBClusters / DescribeGlobalClusters show the real
PostgreSQL endpoints and the writer as observed; AuroraGlobalDBReplicationLag is readable from CloudWatch.
One sandbox (with its PostgreSQL pair) per module; every test starts from the home layout.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from ehr_dr_sandbox.api import Sandbox

from .records_db_sandbox import pair_of, records_db_sandbox

__all__ = ["records_db_sandbox"]


@pytest.fixture
def sandbox(records_db_sandbox: Sandbox) -> Sandbox:
    pair_of(records_db_sandbox).restore_home_layout()
    return records_db_sandbox


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


def wait_available(sandbox: Sandbox, global_id: str, timeout: float = 60) -> list[str]:
    """Poll DescribeGlobalClusters as a runbook does; the statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = sandbox.client("rds").describe_global_clusters(
            GlobalClusterIdentifier=global_id)["GlobalClusters"][0]["Status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "available":
            return seen
        time.sleep(0.05)
    raise AssertionError(f"global cluster still {seen[-1]} after {timeout}s")


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
    rds = names["rds"][names["dr"].region]
    rds.switchover_global_cluster(GlobalClusterIdentifier=names["global"], TargetDbClusterIdentifier=names["dr_arn"])
    try:
        assert error_code(rds.switchover_global_cluster, GlobalClusterIdentifier=names["global"],
                          TargetDbClusterIdentifier=names["dr_arn"]) == "InvalidGlobalClusterStateFault"
    finally:
        wait_available(sandbox, names["global"])


def test_a_switchover_with_the_primary_down_is_refused(sandbox: Sandbox, names: dict[str, Any]) -> None:
    sandbox.action("kill-primary-db")
    rds = names["rds"][names["dr"].region]
    assert error_code(rds.switchover_global_cluster, GlobalClusterIdentifier=names["global"],
                      TargetDbClusterIdentifier=names["dr_arn"]) == "InvalidGlobalClusterStateFault"
