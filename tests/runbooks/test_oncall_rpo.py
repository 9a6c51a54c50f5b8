"""RPO from the data: the heartbeat the target holds bounds a failover's loss; probes never count; a loss beyond the
RPO needs its own acknowledgment; a planned switchover refuses an S3 backlog; status shows how fresh DR's data is.

The tests share the module's sandbox and some move the writer: each one finds the writer as it is."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from click.testing import Result

from dr_runbooks.observe import probes
from dr_runbooks.runbooks import canary, preflight
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.faults import FaultsClient

from .conftest import MFA, database, estate_state, heartbeat, report_lag, wait_connected


def writer(sandbox: Sandbox) -> str:
    found = probes.global_cluster(sandbox.client("rds", "us-west-1"), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


def on_writer(sandbox: Sandbox, *statements: str) -> None:
    """Run SQL on the writer and wait until its standby has replayed it (the target's reader sees it)."""
    source = writer(sandbox)
    with canary.connect(database(sandbox, source)) as connection:
        for statement in statements:
            connection.execute(statement)
        connection.execute("SELECT pg_current_wal_lsn()")
    time.sleep(0.5)


@pytest.fixture(autouse=True)
def at_rest(sandbox: Sandbox) -> None:
    """Every test starts from an estate at rest: no member still rebuilt by Aurora after an earlier test's failover
    (a promotion is refused meanwhile, as on AWS)."""
    wait_connected(sandbox)


@pytest.fixture
def dark(sandbox: Sandbox, sandbox_faults: FaultsClient) -> Iterator[str]:
    """The writer's region goes dark once the heartbeat has beaten and replicated; yields the region that is left."""
    heartbeat(sandbox)
    source = writer(sandbox)
    sandbox_faults.region_down(source)
    yield sandbox.topology.partner(source)


def test_failover_with_no_lag_metric_proceeds_showing_the_expected_loss_from_the_heartbeat(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient) -> None:
    heartbeat(sandbox)
    time.sleep(1)
    source = writer(sandbox)
    target = sandbox.topology.partner(source)
    sandbox.action("kill-primary-db")  # the writer is gone: Aurora publishes no replication lag for its secondary
    sandbox_faults.region_down(source)
    try:
        assert probes.aurora_lag_seconds(sandbox.client("cloudwatch", target),
                                         sandbox.topology.in_region(target).db_cluster_id) is None
        result = drctl("failover", "--to", target, "--yes", "--accept-data-loss", "--output", "json", *MFA)
    finally:
        sandbox_faults.region_up(source)
        sandbox.action("db-rejoin")
    assert result.exit_code == 0, result.output
    assert "expected data loss: up to" in result.stderr and "Aurora lag last reported: not reported" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    assert summary["objectives"]["rpo_seconds"] >= 1
    assert writer(sandbox) == target


def test_the_write_probe_never_becomes_the_newest_canary(drctl: Callable[..., Result], sandbox: Sandbox,
                                                         dark: str) -> None:
    time.sleep(1)
    result = drctl("failover", "--to", dark, "--yes", "--accept-data-loss", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    s3, bucket = sandbox.client("s3", dark), sandbox.topology.in_region(dark).chart_bucket
    probe = s3.head_object(Bucket=bucket, Key=f"dr-probe/{summary['run_id']}")
    assert canary.newest_object(s3, bucket) < probe["LastModified"]
    # Measured from the heartbeat written before the sleep, not from the probe written a moment ago.
    assert summary["objectives"]["rpo_seconds"] >= 1


@pytest.mark.parametrize("rows", [
    pytest.param(("DELETE FROM dr_canary", "DELETE FROM dr_heartbeat",
                  "INSERT INTO dr_heartbeat (written_at, region) VALUES (now() - interval '1 hour', 'us-east-1')"),
                 id="newest-row-an-hour-old"),
    pytest.param(("DELETE FROM dr_canary", "DELETE FROM dr_heartbeat"), id="no-heartbeat-row-at-all"),
])
def test_a_loss_beyond_the_rpo_or_unbounded_needs_its_own_acknowledgment_and_yes_does_not_give_it(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient, rows: tuple[str, ...]) -> None:
    on_writer(sandbox, *rows)
    source = writer(sandbox)
    before = estate_state(sandbox)
    sandbox_faults.region_down(source)
    try:
        result = drctl("failover", "--to", sandbox.topology.partner(source), "--yes", "--accept-data-loss", *MFA)
    finally:
        sandbox_faults.region_up(source)
    assert result.exit_code == 2, result.output
    assert "add --accept-loss-beyond-rpo" in result.output
    assert estate_state(sandbox) == before


def test_with_accept_loss_beyond_rpo_a_failover_beyond_the_rpo_proceeds(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient) -> None:
    on_writer(sandbox, "DELETE FROM dr_canary", "DELETE FROM dr_heartbeat",
              "INSERT INTO dr_heartbeat (written_at, region) VALUES (now() - interval '1 hour', 'us-east-1')")
    source = writer(sandbox)
    target = sandbox.topology.partner(source)
    sandbox_faults.region_down(source)
    result = drctl("failover", "--to", target, "--yes", "--accept-data-loss", "--accept-loss-beyond-rpo",
                   "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["objectives"]["rpo_seconds"] >= 3600
    assert writer(sandbox) == target


def test_switchover_with_s3_replication_paused_is_refused_before_any_change(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "S3_IN_FLIGHT", timedelta(seconds=1))  # a minute in AWS
    target = sandbox.topology.partner(writer(sandbox))
    report_lag(sandbox, target, 1.0)
    sandbox_faults.pause_replication()
    sandbox.action("heartbeat-now")  # the writer's next heartbeat object queues behind the paused replication
    time.sleep(2)
    before = estate_state(sandbox)
    result = drctl("switchover", "--to", target, "--yes", *MFA)
    assert result.exit_code == 2, result.output
    assert "pending operations, the oldest" in result.output and "wait until" in result.output
    assert estate_state(sandbox) == before


def test_switchover_with_a_few_objects_in_flight_is_not_refused_for_them(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient) -> None:
    target = sandbox.topology.partner(writer(sandbox))
    report_lag(sandbox, target, 1.0)
    sandbox_faults.pause_replication()
    sandbox.action("heartbeat-now")  # pending, but for a moment only: a busy archive always has a few in flight
    result = drctl("switchover", "--to", target, "--dry-run", "--output", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["preflight"]["s3_pending_operations"] >= 1


def test_status_shows_how_fresh_the_dr_copy_is_and_what_a_failover_would_lose(
        drctl: Callable[..., Result], sandbox: Sandbox) -> None:
    beaten = heartbeat(sandbox)
    source = writer(sandbox)
    target = sandbox.topology.partner(source)
    report = json.loads(drctl("status", "--output", "json").stdout)
    fresh = report["dr_freshness"]
    assert fresh["region"] == target
    assert fresh["newest_object_at"] == beaten[source]["at"]
    assert datetime.fromisoformat(fresh["newest_row_at"]) >= datetime.fromisoformat(beaten[source]["at"])
    assert 0 <= fresh["expected_data_loss_seconds"] < 60
    text = drctl("status").output
    assert f"DR data in {target}: newest heartbeat row" in text and "a failover now would lose up to" in text


def test_with_no_row_in_the_target_the_rpo_is_not_measured_rather_than_taken_from_the_probe(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient) -> None:
    on_writer(sandbox, "DELETE FROM dr_canary", "DELETE FROM dr_heartbeat")
    source = writer(sandbox)
    sandbox_faults.region_down(source)
    result = drctl("failover", "--to", sandbox.topology.partner(source), "--yes", "--accept-data-loss",
                   "--accept-loss-beyond-rpo", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    objectives = json.loads(result.stdout)["objectives"]
    assert objectives["rpo_seconds"] is None and "not measured" in objectives["rpo_how"]
