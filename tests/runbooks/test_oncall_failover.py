"""An unplanned failover with the writer's region dark, then failback once it returns (each test moves the writer)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from dr_runbooks.observe import probes
from dr_runbooks.runbooks.canary import PostgresCanary
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.faults import FaultsClient

from .conftest import MFA, database, heartbeat, report_lag


def writer(sandbox: Sandbox, ask: str) -> str:
    found = probes.global_cluster(sandbox.client("rds", ask), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


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


def test_a_failover_calls_only_the_target_regions_apis(
    drctl: Callable[..., Result], sandbox: Sandbox, dark: str
) -> None:
    target = sandbox.topology.partner(dark)
    summary = failover(drctl, target)
    journal = json.loads(Path(f".ehr-dr/runs/{summary['run_id']}.json").read_text())
    regions = {call["region"] for step in journal["steps"].values() for call in step["calls"]}
    assert regions == {target}


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
        "reattached", "canary-row", "canary-object", "canary-row-arrived", "canary-object-arrived", "shift-traffic",
        "confirm-dns"}
    assert writer(sandbox, dark) == target
