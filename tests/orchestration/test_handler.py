"""The Lambda handler runs a runbook's state machine in-process against the sandbox: the generated definition walked
as Step Functions would, each task calling `handle` (the code the deployed function runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runbooks.conftest import report_lag  # the lag Aurora reports, which the preflight reads

from dr_runbooks.engine.journal import Journal, new_run_id
from dr_runbooks.engine.plan import Plan
from dr_runbooks.observe import probes
from dr_runbooks.orchestration.definition import definition
from dr_runbooks.orchestration.handler import StepFailed, handle, handler
from dr_runbooks.runbooks import plans
from dr_runbooks.sandbox.api import Sandbox
from dr_runbooks.session import AwsSession

from . import asl

FUNCTION = "arn:aws:lambda:{region}:123456789012:function:ehr-dr-demo-runbooks"


def explode(_ctx: Any) -> None:
    raise RuntimeError("the bucket said no")


def writer(sandbox: Sandbox) -> str:
    found = probes.global_cluster(sandbox.client("rds", "us-west-1"), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


class Machine:
    """The state machine of one runbook in the region it targets, its tasks handled in this process."""

    def __init__(self, sandbox: Sandbox, region: str, scratch: Path) -> None:
        self.sandbox, self.region, self.scratch = sandbox, region, scratch
        self.aws = AwsSession.from_options(endpoint_url=sandbox.endpoint_url)
        self.invocations: list[dict[str, Any]] = []

    def invoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.invocations.append(payload)
        return handle(payload, self.aws, self.sandbox.config.env_name, self.region, self.scratch)

    def run(self, runbook: str, **given: Any) -> dict[str, Any]:
        states = definition(plans.PLANS[runbook](), FUNCTION.format(region=self.region))
        return asl.run(states, {"target_region": self.region, **given}, self.invoke)

    def journal(self, run_id: str) -> Any:
        table = self.sandbox.topology.in_region(self.region).runbook_table
        return Journal(self.aws, self.region, table, self.scratch / "check").load(run_id)


@pytest.fixture
def target(sandbox: Sandbox, sandbox_env: dict[str, str]) -> str:
    for region in sandbox.topology.regions:
        report_lag(sandbox, region, 1.0)
    return sandbox.topology.partner(writer(sandbox))


@pytest.fixture
def machine(sandbox: Sandbox, target: str, tmp_path: Path) -> Machine:
    return Machine(sandbox, target, tmp_path)


def test_a_switchover_state_machine_moves_the_writer_and_journals_every_step(
    machine: Machine, sandbox: Sandbox, target: str
) -> None:
    run_id = new_run_id("switchover", target)
    output = machine.run("switchover", run_id=run_id, operator="arn:aws:iam::123456789012:user/oncall", mfa=True)
    assert output["run"] == {"run_id": run_id}
    assert writer(sandbox) == target
    run = machine.journal(run_id)
    assert run.status == "succeeded"
    assert {name: step.status for name, step in run.steps.items()} == {
        step.name: "succeeded" for step in plans.switchover().steps}
    assert run.steps["record-objectives"].outputs["rpo_seconds"] == 0


def test_a_step_already_succeeded_in_the_journal_is_not_run_again(
    machine: Machine, sandbox: Sandbox, target: str
) -> None:
    run_id = new_run_id("switchover", target)
    machine.run("switchover", run_id=run_id)
    before = machine.journal(run_id).steps["aurora-switchover"]
    again = machine.invoke({"action": "step", "step": "aurora-switchover", "run_id": run_id})
    assert again == {"step": "aurora-switchover", "status": "succeeded", "rerun": False}
    assert machine.journal(run_id).steps["aurora-switchover"] == before


def test_a_failed_step_fails_the_execution_after_journaling_releasing_and_writing_evidence(
    machine: Machine, sandbox: Sandbox, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = tuple(step.model_copy(update={"action": f"{__name__}:explode"}) if step.name == "canary-object" else step
                  for step in plans.switchover().steps)
    monkeypatch.setitem(plans.PLANS, "switchover", lambda: Plan(runbook="switchover", description="broken",
                                                                steps=steps))
    run_id = new_run_id("switchover", target)
    with pytest.raises(asl.Failed, match="RunbookFailed"):
        machine.run("switchover", run_id=run_id)
    run = machine.journal(run_id)
    assert run.status == "failed"
    assert "the bucket said no" in (run.error or "")
    assert run.steps["canary-object"].status == "failed"
    assert "canary-object-arrived" not in run.steps
    resources = sandbox.topology.in_region(target)
    lock = sandbox.client("dynamodb", target).get_item(
        TableName=resources.runbook_table, Key={"pk": {"S": f"lock#{sandbox.config.env_name}"}, "sk": {"S": "lock"}})
    assert "Item" not in lock
    evidence = sandbox.client("s3", target).list_objects_v2(Bucket=resources.evidence_bucket)["Contents"]
    assert any(run_id in item["Key"] for item in evidence)


def test_a_step_that_fails_raises_step_failed_which_the_state_machine_does_not_retry(
    machine: Machine, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = tuple(step.model_copy(update={"action": f"{__name__}:explode"}) for step in plans.failback().steps)
    monkeypatch.setitem(plans.PLANS, "failback", lambda: Plan(runbook="failback", description="broken", steps=steps))
    started = machine.invoke({"action": "start", "runbook": "failback",
                              "input": {"params": {"seen": True}, "operator": "tester"}})
    with pytest.raises(StepFailed, match="step reattached failed: RuntimeError: the bucket said no"):
        machine.invoke({"action": "step", "step": "reattached", "run_id": started["run_id"]})
    machine.invoke({"action": "finish", "run_id": started["run_id"]})


def test_a_run_for_another_region_is_refused_by_this_regions_machine(machine: Machine, sandbox: Sandbox,
                                                                     target: str) -> None:
    other = sandbox.topology.partner(target)
    with pytest.raises(ValueError, match=f"runs in {target}; a run to {other} starts the one deployed there"):
        machine.invoke({"action": "start", "runbook": "switchover", "input": {"target_region": other}})


def test_an_unknown_action_is_refused(machine: Machine) -> None:
    with pytest.raises(ValueError, match="unknown action 'dance'"):
        machine.invoke({"action": "dance"})


def test_the_on_call_topic_hears_how_the_run_ended(machine: Machine, sandbox: Sandbox, target: str) -> None:
    sqs = sandbox.client("sqs", target)
    queue = sqs.create_queue(QueueName="oncall-ears")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sandbox.client("sns", target).subscribe(TopicArn=sandbox.topology.in_region(target).oncall_topic_arn,
                                            Protocol="sqs", Endpoint=queue_arn)
    run_id = new_run_id("switchover", target)
    machine.run("switchover", run_id=run_id)
    body = json.loads(sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"][0]["Body"])
    assert json.loads(body["Message"])["run_id"] == run_id
    assert json.loads(body["Message"])["outcome"] == "succeeded"


def test_the_lambda_entry_point_serves_the_environment_and_region_lambda_gives_it(
    sandbox: Sandbox, sandbox_env: dict[str, str], target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_REGION", target)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    started = handler({"action": "start", "runbook": "failback", "input": {"params": {"given": True},
                                                                          "operator": "scheduler"}})
    assert started["run_id"].split("-failback-")[1].startswith(target)
    assert handler({"action": "finish", "run_id": started["run_id"]})["run_id"] == started["run_id"]
