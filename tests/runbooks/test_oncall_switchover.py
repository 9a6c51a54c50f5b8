"""A planned switchover on the sandbox, and its crash-and-resume, in both directions (each test moves the writer)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import StepRecord
from dr_runbooks.engine.runner import run_step
from dr_runbooks.observe import probes
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.canary import PostgresCanary
from dr_runbooks.runbooks.plans import switchover as switchover_plan
from dr_runbooks.session import AwsSession
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.faults import FaultsClient

from .conftest import MFA, database, report_lag


def writer(sandbox: Sandbox) -> str:
    rds = sandbox.client("rds", "us-west-1")
    found = probes.global_cluster(rds, sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


@pytest.fixture
def target(sandbox: Sandbox) -> str:
    """The region that does not write now; both regions report a small lag."""
    for region in sandbox.topology.regions:
        report_lag(sandbox, region, 1.0)
    return sandbox.topology.partner(writer(sandbox))


def switchover(drctl: Callable[..., Result], target: str) -> dict:
    result = drctl("switchover", "--to", target, "--yes", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_switchover_moves_the_writer_and_traffic(drctl: Callable[..., Result], sandbox: Sandbox, target: str) -> None:
    switchover(drctl, target)
    assert writer(sandbox) == target
    status = json.loads(drctl("status", "--output", "json").stdout)
    assert status["traffic_region"] == target


def test_a_switchover_finds_both_canaries_and_measures_rpo_zero(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str
) -> None:
    summary = switchover(drctl, target)
    run_id = summary["run_id"]
    assert PostgresCanary().find(database(sandbox, target), run_id) is not None
    sandbox.client("s3", target).head_object(Bucket=sandbox.topology.in_region(target).chart_bucket,
                                             Key=f"dr-canary/{run_id}")
    assert summary["objectives"]["rpo_seconds"] == 0
    assert summary["objectives"]["rto_seconds"] > 0


def test_a_switchover_seals_an_evidence_record_in_the_target_region(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str
) -> None:
    summary = switchover(drctl, target)
    bucket = sandbox.topology.in_region(target).evidence_bucket
    keys = [item["Key"] for item in sandbox.client("s3", target).list_objects_v2(Bucket=bucket)["Contents"]]
    name = next(key for key in keys if summary["run_id"] in key)
    record = json.loads(sandbox.client("s3", target).get_object(Bucket=bucket, Key=name)["Body"].read())
    assert record["kind"] == "switchover"
    assert record["outcome"] == "succeeded"
    assert record["identity"]["mfa_used"] is True
    assert record["rpo"]["measured_seconds"] == 0
    assert record["record_hash"]
    local = json.loads(next(Path(".ehr-dr/evidence/demo").glob(f"*{summary['run_id']}.json")).read_text())
    assert (local["run_id"], local["outcome"]) == (record["run_id"], record["outcome"])


def test_drctl_report_renders_the_runs_evidence(drctl: Callable[..., Result], target: str) -> None:
    summary = switchover(drctl, target)
    result = drctl("report", "--env", "demo", "--run", summary["run_id"], "--out", "reports")
    assert result.exit_code == 0, result.output
    assert any(summary["run_id"] in path.read_text() for path in Path("reports").rglob("*.md"))


def test_a_throttling_storm_during_a_switchover_is_retried_to_success(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, sandbox_faults: FaultsClient
) -> None:
    sandbox_faults.throttle("rds", calls=4)
    sandbox_faults.throttle("cloudwatch", calls=4)
    summary = switchover(drctl, target)
    assert summary["status"] == "succeeded"
    assert writer(sandbox) == target


def journal(run_id: str) -> dict:
    return json.loads(Path(f".ehr-dr/runs/{run_id}.json").read_text())


def test_a_switchover_calls_aurora_in_the_primarys_region_and_waits_through_pending(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str
) -> None:
    source = sandbox.topology.partner(target)
    step = journal(switchover(drctl, target)["run_id"])["steps"]["aurora-switchover"]
    (call,) = [call for call in step["calls"] if call["operation"] == "SwitchoverGlobalCluster"]
    assert call["region"] == source
    assert step["outputs"]["called_in"] == source
    states = step["outputs"]["failover_states"]
    assert (states[0], states[-1]) == ("pending", "(empty)")


def test_an_injected_cancellation_fails_the_switchover_with_the_reason_and_the_writer_unchanged(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str
) -> None:
    source = sandbox.topology.partner(target)
    sandbox.action("aurora-cancel")
    result = drctl("switchover", "--to", target, "--yes", "--output", "json", *MFA)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    error = summary["steps"]["aurora-switchover"]["error"]
    assert f"Aurora cancelled the switchover to {sandbox.topology.in_region(target).db_cluster_id}" in error
    assert f"{source} still writes" in error
    assert writer(sandbox) == source


def test_a_failback_after_a_switchover_keeps_no_snapshot_and_says_nothing_was_lost(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str
) -> None:
    switchover(drctl, target)
    source = sandbox.topology.partner(target)
    result = drctl("failback", "--to", source, "--yes", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    kept = journal(json.loads(result.stdout)["run_id"])["steps"]["keep-lost-writes"]["outputs"]
    assert kept["kept"] is None and "nothing was lost" in kept["why"]


def switchover_run(sandbox: Sandbox, target: str) -> RunContext:
    """A switchover run to `target`, journaled, whose steps a test runs one by one (as a Step Functions task would)."""
    ctx = driver.new_context(AwsSession(endpoint_url=sandbox.endpoint_url), sandbox.topology, "switchover", target,
                             {}, "on-call")
    ctx.journal.start(ctx.run)
    return ctx


def test_a_resumed_aurora_step_waits_for_the_move_in_flight_without_calling_again(
    sandbox: Sandbox, sandbox_env: dict[str, str], target: str
) -> None:
    gid = sandbox.topology.global_cluster_id
    member = probes.global_cluster(sandbox.client("rds", target), gid).member_in(target)
    assert member is not None
    sandbox.client("rds", sandbox.topology.partner(target)).switchover_global_cluster(
        GlobalClusterIdentifier=gid, TargetDbClusterIdentifier=member.cluster_arn)  # the run that died had called
    record = run_step(switchover_run(sandbox, target), switchover_plan().step("aurora-switchover"))
    assert record.status == "succeeded", record.error
    assert [call.operation for call in record.calls if call.operation.endswith("GlobalCluster")] == []
    assert writer(sandbox) == target


def test_a_continued_aurora_step_whose_move_was_cancelled_fails_without_calling_again(
    sandbox: Sandbox, sandbox_env: dict[str, str], target: str
) -> None:
    ctx = switchover_run(sandbox, target)
    ctx.journal.record_step(ctx.run.run_id, StepRecord(  # an earlier invocation called, then handed back
        name="aurora-switchover", status="waiting", started_at=time.time(), progress={"requested_at": time.time()}))
    record = run_step(ctx, switchover_plan().step("aurora-switchover"))
    assert record.status == "failed"
    assert "Aurora cancelled the switchover" in str(record.error) and "no longer in flight" in str(record.error)
    assert [call.operation for call in record.calls if call.operation.endswith("GlobalCluster")] == []
    assert writer(sandbox) == sandbox.topology.partner(target)


class Crash(BaseException):
    """The process dying right after a step: nothing in drctl handles a BaseException."""


@pytest.mark.parametrize("crash_after", [step.name for step in switchover_plan().steps])
def test_a_switchover_killed_after_any_step_is_finished_by_resume(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, crash_after: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dr_runbooks.commands import render

    real = render.Progress.step_ended

    def crash(self: render.Progress, step, record) -> None:  # type: ignore[no-untyped-def]
        real(self, step, record)
        if step.name == crash_after:
            raise Crash(step.name)

    monkeypatch.setattr(render.Progress, "step_ended", crash)
    with pytest.raises(Crash):
        drctl("switchover", "--to", target, "--yes", *MFA)
    monkeypatch.setattr(render.Progress, "step_ended", real)

    run_id = next(Path(".ehr-dr/runs").glob(f"*switchover-{target}*.json")).stem
    refused = drctl("switchover", "--to", target, "--yes", *MFA)
    assert refused.exit_code == 2 and f"drctl resume {run_id}" in refused.output

    resumed = drctl("resume", run_id, "--yes", "--output", "json", *MFA)
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "succeeded"
    assert set(summary["steps"]) == {step.name for step in switchover_plan().steps}
    assert writer(sandbox) == target
