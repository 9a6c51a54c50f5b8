"""Every refusal: exit code 2, one clear line, and the estate exactly as it was."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result

from dr_runbooks.engine.lock import RunLock
from dr_runbooks.session import AwsSession
from ehr_dr_sandbox.api import Sandbox

from .conftest import MFA, estate_state, report_lag


@pytest.fixture(autouse=True)
def dr_lag_is_small(sandbox: Sandbox) -> None:
    report_lag(sandbox, "us-west-1", 2.0)


def assert_refused(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("runbook", ["switchover", "failover", "failback"])
def test_a_changing_command_without_mfa_is_refused_and_changes_nothing(
    drctl: Callable[..., Result], sandbox: Sandbox, runbook: str
) -> None:
    before = estate_state(sandbox)
    assert_refused(drctl(runbook, "--to", "us-west-1", "--yes", "--accept-data-loss" if runbook == "failover"
                         else "--yes"), "needs an MFA session: give --mfa-serial and --mfa-code")
    assert estate_state(sandbox) == before


def test_a_region_name_that_is_not_a_region_is_refused(drctl: Callable[..., Result]) -> None:
    assert_refused(drctl("switchover", "--to", "us-west-9", "--yes", *MFA), "'us-west-9' is not an AWS region name")


def test_a_region_outside_the_estate_is_refused(drctl: Callable[..., Result]) -> None:
    assert_refused(drctl("switchover", "--to", "eu-west-1", "--yes", *MFA),
                   "no topology for environment 'demo' in eu-west-1")


def test_an_environment_without_topology_is_refused(drctl: Callable[..., Result], sandbox: Sandbox) -> None:
    before = estate_state(sandbox)
    assert_refused(drctl("failover", "--env", "nosuchenv", "--to", "us-west-1", "--yes", "--accept-data-loss", *MFA),
                   "no topology for environment 'nosuchenv' in us-west-1")
    assert estate_state(sandbox) == before


def test_failover_to_the_region_that_already_writes_is_refused(drctl: Callable[..., Result]) -> None:
    assert_refused(drctl("failover", "--to", "us-east-1", "--yes", "--accept-data-loss", *MFA),
                   "us-east-1 already writes")


def test_yes_does_not_accept_data_loss(drctl: Callable[..., Result], sandbox: Sandbox) -> None:
    before = estate_state(sandbox)
    result = drctl("failover", "--to", "us-west-1", "--yes", *MFA)
    assert result.exit_code == 2
    assert "expected data loss: up to" in result.output
    assert "--yes does not accept data loss: add --accept-data-loss" in result.output
    assert estate_state(sandbox) == before


def test_without_yes_or_a_terminal_the_confirmation_is_refused(drctl: Callable[..., Result], sandbox: Sandbox) -> None:
    before = estate_state(sandbox)
    assert_refused(drctl("switchover", "--to", "us-west-1", *MFA), "confirmation needed")
    assert estate_state(sandbox) == before


def test_a_second_run_is_refused_while_another_holds_the_lock(drctl: Callable[..., Result], sandbox: Sandbox) -> None:
    topology = sandbox.topology
    lock = RunLock.of_environment(AwsSession(endpoint_url=sandbox.endpoint_url), topology, "us-west-1")
    holder = "20261122T030000Z-failover-us-west-1-abcdef"
    lock.acquire(holder, "arn:aws:iam::123456789012:user/alice")
    try:
        before = estate_state(sandbox)
        assert_refused(drctl("switchover", "--to", "us-west-1", "--yes", *MFA),
                       f"run {holder} by arn:aws:iam::123456789012:user/alice holds the runbook lock")
        assert estate_state(sandbox) == before
    finally:
        lock.release(holder)


def test_unlock_refuses_a_run_that_does_not_hold_the_lock(drctl: Callable[..., Result]) -> None:
    assert_refused(drctl("unlock", "--region", "us-west-1", "--run-id", "20261122T030000Z-failover-us-west-1-000000",
                         *MFA), "does not hold the runbook lock: nobody holds it")


def test_unlock_without_mfa_is_refused(drctl: Callable[..., Result]) -> None:
    assert_refused(drctl("unlock", "--run-id", "20261122T030000Z-failover-us-west-1-000000"), "needs an MFA session")


def test_resume_of_an_unknown_run_is_refused(drctl: Callable[..., Result]) -> None:
    assert_refused(drctl("resume", "20261122T030000Z-failover-us-west-1-000000", *MFA),
                   "no run 20261122T030000Z-failover-us-west-1-000000")


def test_refusals_are_json_with_output_json(drctl: Callable[..., Result]) -> None:
    result = drctl("switchover", "--to", "us-west-9", "--output", "json")
    assert result.exit_code == 2
    assert result.output.strip() == '{"refused": "\'us-west-9\' is not an AWS region name (e.g. us-west-1)"}'


@pytest.mark.parametrize(("runbook", "call"), [
    ("switchover", "rds.SwitchoverGlobalCluster(us-east-1: ehr-dr-demo-records -> ehr-dr-demo-records-us-west-1)"),
    ("failover", "rds.FailoverGlobalCluster(us-west-1: ehr-dr-demo-records -> ehr-dr-demo-records-us-west-1, "),
    ("failback", "rds.DescribeGlobalClusters(us-west-1: until ehr-dr-demo-records-us-west-1 is a secondary, "
                 "SynchronizationStatus connected)"),
    ("failback", "rds.CopyDBClusterSnapshot(us-west-1: rds:unplanned-global-failover-ehr-dr-demo-records-us-west-1-... "
                 "-> ehr-dr-demo-lost-writes-<run id, lowercase>, KmsKeyId alias/ehr-dr-demo-data)"),
])
def test_a_dry_run_prints_the_exact_calls_and_writes_nothing(
    drctl: Callable[..., Result], sandbox: Sandbox, runbook: str, call: str
) -> None:
    before = estate_state(sandbox)
    result = drctl(runbook, "--to", "us-west-1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "nothing will change" in result.output
    assert call in result.output
    assert estate_state(sandbox) == before


def test_switchover_to_a_stopped_cluster_is_refused(drctl: Callable[..., Result], sandbox: Sandbox) -> None:
    rds = sandbox.client("rds", "us-west-1")
    cluster = sandbox.topology.in_region("us-west-1").db_cluster_id
    rds.stop_db_cluster(DBClusterIdentifier=cluster)
    try:
        before = estate_state(sandbox)
        assert_refused(drctl("switchover", "--to", "us-west-1", "--yes", *MFA),
                       "the cluster in us-west-1 is stopped, not available")
        assert estate_state(sandbox) == before
    finally:
        rds.start_db_cluster(DBClusterIdentifier=cluster)
