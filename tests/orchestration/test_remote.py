"""`drctl <runbook> --remote` and `drctl runs` against the sandbox, whose moto executes the generated state machines
(its Lambda tasks cannot run without Docker, so an execution fails at its first task: enough to see the client start,
follow and report it; the steps themselves run through the handler in test_handler.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from runbooks.conftest import MFA, report_lag

from dr_runbooks.cli import cli
from dr_runbooks.observe import probes
from dr_runbooks.orchestration.catalog import RUNBOOKS, deployed_in
from dr_runbooks.orchestration.definition import definition
from dr_runbooks.topology import runbook_function_name, state_machine_arn, state_machine_name
from ehr_dr_sandbox.api import Sandbox


def create_machine(sandbox: Sandbox, region: str, runbook: str) -> None:
    function = f"arn:aws:lambda:{region}:123456789012:function:{runbook_function_name(sandbox.config.env_name)}"
    machines = {name: state_machine_arn(sandbox.topology, region, name) for name in RUNBOOKS}
    sandbox.client("stepfunctions", region).create_state_machine(
        name=state_machine_name(sandbox.config.env_name, runbook),
        definition=json.dumps(definition(RUNBOOKS[runbook].plan(), function, machines)),
        roleArn="arn:aws:iam::123456789012:role/ehr-dr-demo-states")


@pytest.fixture(scope="module")
def executing(sandbox: Sandbox) -> Iterator[Sandbox]:
    """moto executes state machines (its documented switch), and every runbook's machine exists in both regions."""
    requests.post(f"{sandbox.endpoint_url}/moto-api/config",
                  json={"stepfunctions": {"execute_state_machine": True}}, timeout=10).raise_for_status()
    for region in sandbox.topology.regions:
        for runbook in deployed_in(region, sandbox.topology.dr_region):
            create_machine(sandbox, region, runbook)
    yield sandbox


@pytest.fixture
def drctl(sandbox_env: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("dr_runbooks.orchestration.remote.follow.__defaults__", (0.1,))

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=sandbox_env, catch_exceptions=False)

    return run


@pytest.fixture
def target(executing: Sandbox) -> str:
    for region in executing.topology.regions:
        report_lag(executing, region, 1.0)
    writer = probes.global_cluster(executing.client("rds", "us-west-1"), executing.topology.global_cluster_id).writer()
    assert writer is not None
    return executing.topology.partner(writer.region)


def executions(sandbox: Sandbox, region: str, runbook: str) -> list[dict[str, Any]]:
    return sandbox.client("stepfunctions", region).list_executions(
        stateMachineArn=state_machine_arn(sandbox.topology, region, runbook))["executions"]


def test_remote_starts_the_state_machine_in_the_target_region_named_by_the_run_id(
    drctl: Callable[..., Result], executing: Sandbox, target: str
) -> None:
    result = drctl("switchover", "--to", target, "--remote", "--yes", "--output", "json", *MFA)
    assert result.exit_code == 1, result.stderr
    summary = json.loads(result.stdout)
    (execution,) = [e for e in executions(executing, target, "switchover") if e["name"] == summary["run_id"]]
    given = json.loads(executing.client("stepfunctions", target).describe_execution(
        executionArn=execution["executionArn"])["input"])
    assert given["target_region"] == target and given["mfa"] is True
    assert given["params"]["target_is_writer"] is False  # what the caller's preflight saw, handed to start-run


def test_remote_reports_the_execution_failure_and_exits_1(drctl: Callable[..., Result], target: str) -> None:
    result = drctl("switchover", "--to", target, "--remote", "--yes", "--output", "json", *MFA)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "failed"


def test_remote_without_mfa_is_refused_and_starts_nothing(drctl: Callable[..., Result], executing: Sandbox,
                                                          target: str) -> None:
    before = executions(executing, target, "failover")
    result = drctl("failover", "--to", target, "--remote", "--yes", "--accept-data-loss")
    assert result.exit_code == 2
    assert "needs an MFA session" in result.stderr
    assert executions(executing, target, "failover") == before


def test_remote_with_no_state_machine_deployed_is_a_one_line_refusal(
    drctl: Callable[..., Result], executing: Sandbox, target: str
) -> None:
    name = state_machine_arn(executing.topology, target, "failback")
    executing.client("stepfunctions", target).delete_state_machine(stateMachineArn=name)
    try:
        result = drctl("failback", "--to", target, "--remote", "--yes", *MFA)
    finally:
        create_machine(executing, target, "failback")
    assert result.exit_code == 2
    assert f"no failback state machine in {target}: deploy the orchestration stack" in result.stderr


def test_runs_lists_executions_of_both_regions_newest_first(drctl: Callable[..., Result], target: str) -> None:
    ran = drctl("switchover", "--to", target, "--remote", "--yes", "--output", "json", *MFA)
    assert ran.exit_code == 1, ran.stderr
    started = json.loads(ran.stdout)
    listed = drctl("runs", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows[0]["run_id"] == started["run_id"]
    assert (rows[0]["region"], rows[0]["runbook"], rows[0]["status"]) == (target, "switchover", "failed")
    assert [row["started"] for row in rows] == sorted((row["started"] for row in rows), reverse=True)


def test_a_remote_restore_drill_starts_the_dr_regions_machine_with_the_drills_params(
    drctl: Callable[..., Result], executing: Sandbox
) -> None:
    dr = executing.topology.dr_region
    result = drctl("drill", "restore", "--remote", "--sample", "7", "--output", "json")
    assert result.exit_code == 1, result.stderr  # moto cannot run the Lambda tasks: it fails at start-run
    summary = json.loads(result.stdout)
    assert summary["run_id"].split("-restore-")[1].startswith(dr)
    (execution,) = [e for e in executions(executing, dr, "restore-drill") if e["name"] == summary["run_id"]]
    given = json.loads(executing.client("stepfunctions", dr).describe_execution(
        executionArn=execution["executionArn"])["input"])
    assert given["params"] == {"recovery_points": [], "random": False, "sample": 7}


def test_a_remote_game_day_starts_the_dr_regions_machine_with_its_legs_chosen(
    drctl: Callable[..., Result], executing: Sandbox, target: str
) -> None:
    dr = executing.topology.dr_region
    if target != dr:  # a game day starts from the primary writing
        assert drctl("switchover", "--to", target, "--yes", *MFA).exit_code == 0
        report_lag(executing, dr, 1.0)
    result = drctl("drill", "failover", "--remote", "--yes", "--output", "json", *MFA)
    assert result.exit_code == 1, result.stderr
    (execution,) = [e for e in executions(executing, dr, "game-day")
                    if e["name"] == json.loads(result.stdout)["run_id"]]
    given = json.loads(executing.client("stepfunctions", dr).describe_execution(
        executionArn=execution["executionArn"])["input"])
    assert set(given["params"]["legs"]) == {"switchover-to-dr", "switchover-to-primary"}
    assert "evidence_dir" not in given["params"]  # a laptop path means nothing to the function


def test_remote_verification_refuses_options_of_a_local_run_and_starts_nothing(
    drctl: Callable[..., Result], executing: Sandbox
) -> None:
    dr = executing.topology.dr_region
    before = executions(executing, dr, "verify-replication")
    result = drctl("verify", "replication", "--remote", "--deep", "--prefix", "charts/")
    assert result.exit_code == 2
    assert "--deep, --prefix apply to a local run only" in result.stderr
    assert executions(executing, dr, "verify-replication") == before
