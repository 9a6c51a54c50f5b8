"""An unplanned failover with the writer's region dark, then failback once it returns (each test moves the writer).

Every test starts with both members `connected`: a failover leaves the old primary `pending-resync` while the sandbox,
as AWS, rebuilds it, and a cluster being rebuilt cannot be promoted.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from dr_runbooks.engine.runner import run_step
from dr_runbooks.observe import probes
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.canary import PostgresCanary
from dr_runbooks.runbooks.plans import failback as failback_plan
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import KEPT_FROM_TAG_KEY, lost_writes_snapshot_name
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.faults import FaultsClient

from .conftest import MFA, database, heartbeat, report_lag, wait_connected


def writer(sandbox: Sandbox, ask: str) -> str:
    found = probes.global_cluster(sandbox.client("rds", ask), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


@pytest.fixture(autouse=True)
def connected(sandbox: Sandbox) -> None:
    wait_connected(sandbox)


@pytest.fixture
def dark(sandbox: Sandbox, sandbox_faults: FaultsClient) -> Iterator[str]:
    """The writer's region goes dark; yields it. Both regions reported a small lag, and the heartbeat beat, just
    before."""
    for region in sandbox.topology.regions:
        report_lag(sandbox, region, 3.0)
    heartbeat(sandbox)
    region = writer(sandbox, "us-west-1")
    sandbox_faults.region_down(region)
    yield region


def failover(drctl: Callable[..., Result], target: str) -> dict:
    result = drctl("failover", "--to", target, "--yes", "--accept-data-loss", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_failover_with_the_writer_region_dark_promotes_the_target(
    drctl: Callable[..., Result], sandbox: Sandbox, dark: str
) -> None:
    target = sandbox.topology.partner(dark)
    failover(drctl, target)
    assert writer(sandbox, target) == target


def test_a_failover_moves_traffic_out_of_the_dark_region(
    drctl: Callable[..., Result], sandbox: Sandbox, dark: str
) -> None:
    target = sandbox.topology.partner(dark)
    failover(drctl, target)
    status = json.loads(drctl("status", "--output", "json").stdout)
    assert status["traffic_region"] == target
    assert status["regions"][dark]["reachable"] is False


def test_a_failover_depends_only_on_the_target_regions_apis(
    drctl: Callable[..., Result], sandbox: Sandbox, dark: str
) -> None:
    """Every call that did anything went to the target; the dark source got one probe (does it answer? then its
    traffic gates are kept in line too), which failed in seconds and changed nothing."""
    target = sandbox.topology.partner(dark)
    summary = failover(drctl, target)
    journal = json.loads(Path(f".ehr-dr/runs/{summary['run_id']}.json").read_text())
    calls = [call for step in journal["steps"].values() for call in step["calls"]]
    assert {call["region"] for call in calls if not call.get("error")} == {target}
    assert {(call["service"], call["operation"]) for call in calls if call["region"] == dark} == {
        ("sts", "GetCallerIdentity")}


def test_a_failover_loses_what_had_not_replicated_and_counts_it_in_the_rpo(
    drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient
) -> None:
    for region in sandbox.topology.regions:
        report_lag(sandbox, region, 3.0)
    old = writer(sandbox, "us-west-1")
    target = sandbox.topology.partner(old)
    sandbox.action("db-replication-pause")
    try:
        PostgresCanary().write(database(sandbox, old), "written-while-paused", old)
        time.sleep(1)
        sandbox_faults.region_down(old)
        summary = failover(drctl, target)
    finally:
        sandbox.action("db-replication-resume")
    assert PostgresCanary().find(database(sandbox, target), "written-while-paused") is None
    assert summary["objectives"]["rpo_seconds"] >= 1


def test_a_failback_reprotects_the_returned_region(
    drctl: Callable[..., Result], sandbox: Sandbox, dark: str, sandbox_faults: FaultsClient
) -> None:
    target = sandbox.topology.partner(dark)
    failover(drctl, target)
    sandbox_faults.region_up(dark)
    result = drctl("failback", "--to", dark, "--yes", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {name for name, step in summary["steps"].items() if step["status"] == "succeeded"} == {
        "reattached", "keep-lost-writes", "canary-row", "canary-object", "canary-row-arrived", "canary-object-arrived",
        "shift-traffic", "confirm-dns"}
    assert writer(sandbox, dark) == target


def failback(drctl: Callable[..., Result], region: str) -> dict:
    """`drctl failback`'s summary, with each step's outputs from the run's local journal."""
    result = drctl("failback", "--to", region, "--yes", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    journal = json.loads(Path(f".ehr-dr/runs/{summary['run_id']}.json").read_text())
    for name, step in summary["steps"].items():
        step["outputs"] = journal["steps"][name]["outputs"]
    return summary


def test_failback_waits_through_pending_resync_and_succeeds_only_when_connected(
    drctl: Callable[..., Result], sandbox: Sandbox, dark: str, sandbox_faults: FaultsClient,
    aurora_timings: Callable[..., Any]
) -> None:
    aurora_timings(resync_seconds=3)
    failover(drctl, sandbox.topology.partner(dark))
    sandbox_faults.region_up(dark)
    reattached = failback(drctl, dark)["steps"]["reattached"]["outputs"]
    assert reattached["synchronization_states"] == ["pending-resync", "connected"]
    assert reattached["waited_seconds"] >= 2.5
    member = probes.global_cluster(sandbox.client("rds", dark), sandbox.topology.global_cluster_id).member_in(dark)
    assert member is not None and member.synchronization_status == "connected" and not member.is_writer


def test_failback_hands_back_while_aurora_rebuilds_the_returned_region(
    drctl: Callable[..., Result], sandbox: Sandbox, dark: str, sandbox_faults: FaultsClient,
    aurora_timings: Callable[..., Any], sandbox_env: dict[str, str]
) -> None:
    """In Step Functions the wait is a polled task: an invocation that ends before the rebuild hands back."""
    aurora_timings(resync_seconds=600)
    failover(drctl, sandbox.topology.partner(dark))
    sandbox_faults.region_up(dark)
    aws = AwsSession(endpoint_url=sandbox.endpoint_url)
    ctx = driver.new_context(aws, sandbox.topology, "failback", dark, {}, "on-call")
    ctx.journal.start(ctx.run)
    step = failback_plan().step("reattached")
    record = run_step(dataclasses.replace(ctx, invocation_deadline=time.time() + 1.5), step)
    assert (record.status, record.resume_after_seconds) == ("waiting", 60)
    aurora_timings(resync_seconds=0)
    record = run_step(dataclasses.replace(ctx, invocation_deadline=time.time() + 30), step)
    assert record.status == "succeeded", record.error
    assert record.outputs["synchronization_states"] == ["connected"]


def test_failback_copies_the_unplanned_global_failover_snapshot_and_says_where(
    drctl: Callable[..., Result], sandbox: Sandbox, dark: str, sandbox_faults: FaultsClient
) -> None:
    failover(drctl, sandbox.topology.partner(dark))
    sandbox_faults.region_up(dark)
    summary = failback(drctl, dark)
    kept = summary["steps"]["keep-lost-writes"]["outputs"]
    name = lost_writes_snapshot_name(sandbox.topology.env_name, summary["run_id"])
    assert (kept["kept"]["region"], kept["kept"]["identifier"]) == (dark, name)
    assert kept["from"].startswith(f"rds:unplanned-global-failover-{sandbox.topology.in_region(dark).db_cluster_id}-")
    (snapshot,) = sandbox.client("rds", dark).describe_db_cluster_snapshots(
        DBClusterSnapshotIdentifier=name)["DBClusterSnapshots"]
    assert (snapshot["SnapshotType"], snapshot["DBClusterSnapshotArn"]) == ("manual", kept["kept"]["arn"])
    assert {"Key": KEPT_FROM_TAG_KEY, "Value": kept["from"]} in snapshot["TagList"]
    evidence = json.loads(next(Path(".ehr-dr/evidence").rglob(f"*{summary['run_id']}.json")).read_text())
    assert any(name in (check["detail"] or "") for check in evidence["verifications"])


def test_each_failover_snapshot_is_kept_once_then_failback_says_nothing_was_lost(
    drctl: Callable[..., Result], sandbox: Sandbox, dark: str, sandbox_faults: FaultsClient
) -> None:
    failover(drctl, sandbox.topology.partner(dark))
    sandbox_faults.region_up(dark)
    rds = sandbox.client("rds", dark)
    failures = {s["DBClusterSnapshotIdentifier"] for s in rds.describe_db_cluster_snapshots(
        SnapshotType="automated")["DBClusterSnapshots"]
        if s["DBClusterSnapshotIdentifier"].startswith("rds:unplanned-global-failover-")}
    kept_before = {tag["Value"] for s in rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
                   for tag in s["TagList"] if tag["Key"] == KEPT_FROM_TAG_KEY}
    kept: list[str] = []
    # One failback keeps the newest unkept one (earlier tests' failovers may not have been failed back).
    while (outputs := failback(drctl, dark)["steps"]["keep-lost-writes"]["outputs"])["kept"] is not None:
        kept.append(outputs["from"])
    assert sorted(kept) == sorted(failures - kept_before)
    assert "nothing was lost" in outputs["why"]
