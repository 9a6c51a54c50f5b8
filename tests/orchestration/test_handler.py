"""The Lambda handler runs a runbook's state machine in-process against the sandbox: the generated definition walked
as Step Functions would, each task calling `handle` (the code the deployed function runs)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runbooks.conftest import report_lag  # the lag Aurora reports, which the preflight reads

from dr_runbooks.drills import scratch
from dr_runbooks.drills.backups import take_backups
from dr_runbooks.engine.journal import Journal, new_run_id, region_of_run
from dr_runbooks.engine.lock import LockHeld, RunLock
from dr_runbooks.engine.plan import Plan, Step
from dr_runbooks.engine.waits import wait_until
from dr_runbooks.observe import probes
from dr_runbooks.orchestration.catalog import RUNBOOKS
from dr_runbooks.orchestration.definition import definition
from dr_runbooks.orchestration.handler import ORCHESTRATED_LEASE_SECONDS, StepFailed, handle, handler
from dr_runbooks.runbooks import plans
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import database_function_name, runbook_function_name
from ehr_dr_sandbox.api import Sandbox

from . import asl

FUNCTION = "arn:aws:lambda:{region}:123456789012:function:ehr-dr-demo-runbooks"
MACHINE = "arn:aws:states:{region}:123456789012:stateMachine:ehr-dr-demo-{runbook}"


def explode(_ctx: Any) -> None:
    raise RuntimeError("the bucket said no")


def replace_plan(monkeypatch: pytest.MonkeyPatch, plan: Plan) -> None:
    monkeypatch.setitem(RUNBOOKS, plan.runbook, dataclasses.replace(RUNBOOKS[plan.runbook], plan=lambda: plan))


def writer(sandbox: Sandbox) -> str:
    found = probes.global_cluster(sandbox.client("rds", "us-west-1"), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


def function_session(sandbox: Sandbox, function_name: str, region: str) -> AwsSession:
    """What Lambda gives a function of the region: its execution role's credentials (the sandbox authorizes every
    call with them against the role's policies, as deployed by the stacks)."""
    return sandbox.role_session(f"{function_name}-{region}")


class Machine:
    """The state machines of one region, their tasks handled in this process: the runbook function's tasks by `handle`
    under the runbook function's role, its database steps by `handle` again as the database function of the
    database's region (under that function's role), nested executions by walking the child machine's definition."""

    def __init__(self, sandbox: Sandbox, region: str, scratch: Path) -> None:
        self.sandbox, self.region, self.scratch = sandbox, region, scratch
        self.aws = function_session(sandbox, runbook_function_name(sandbox.config.env_name), region)
        self.invocations: list[dict[str, Any]] = []
        self.database_invocations: list[tuple[str, dict[str, Any]]] = []
        self.invocation_seconds = float("inf")

    def invoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.invocations.append(payload)
        return handle(payload, self.aws, self.sandbox.config.env_name, self.region, self.scratch,
                      invocation_deadline=time.time() + self.invocation_seconds,
                      invoke_database=self.invoke_database)

    def invoke_database(self, region: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.database_invocations.append((region, payload))
        aws = function_session(self.sandbox, database_function_name(self.sandbox.config.env_name), region)
        return handle(payload, aws, self.sandbox.config.env_name, region, self.scratch,
                      invocation_deadline=time.time() + self.invocation_seconds)

    def definition(self, runbook: str) -> dict[str, Any]:
        machines = {name: MACHINE.format(region=self.region, runbook=name) for name in RUNBOOKS}
        return definition(RUNBOOKS[runbook].plan(), FUNCTION.format(region=self.region), machines)

    def run(self, runbook: str, waits: list[int] | None = None, **given: Any) -> dict[str, Any]:
        return asl.run(self.definition(runbook), {"target_region": self.region, **given}, self.invoke,
                       self.start_child, waits)

    def start_child(self, arn: str, name: str, given: dict[str, Any]) -> Any:
        runbook = arn.rsplit(":", 1)[1].removeprefix(f"ehr-dr-{self.sandbox.config.env_name}-")
        output = asl.run(self.definition(runbook), given, self.invoke, self.start_child)
        assert output["run"]["run_id"] == name
        return output

    def journal(self, run_id: str) -> Any:
        region = region_of_run(run_id)
        table = self.sandbox.topology.in_region(region).runbook_table
        return Journal(self.aws, region, table, self.scratch / "check").load(run_id)


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
    assert output["run"] == {"run_id": run_id, "children": {}}
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
    replace_plan(monkeypatch, Plan(runbook="switchover", description="broken", steps=steps))
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
    replace_plan(monkeypatch, Plan(runbook="failback", description="broken", steps=steps))
    started = machine.invoke({"action": "start", **asl.new_context_event(), "runbook": "failback",
                              "input": {"params": {"seen": True}, "operator": "tester"}})
    with pytest.raises(StepFailed, match="step reattached failed: RuntimeError: the bucket said no"):
        machine.invoke({"action": "step", "step": "reattached", "run_id": started["run_id"]})
    machine.invoke({"action": "finish", "run_id": started["run_id"]})


def test_a_retried_start_names_the_same_run_and_takes_its_own_lock_again(machine: Machine, target: str) -> None:
    """Step Functions retries `start-run` on a Lambda error: the retry of an attempt that already took the lock and
    journaled the run names the same run (from the execution), instead of colliding with the first attempt's lock."""
    event = {"action": "start", **asl.new_context_event(), "runbook": "failback",
             "input": {"params": {"seen": True}, "operator": "tester"}}
    first = machine.invoke(event)
    again = machine.invoke(event)
    assert again["run_id"] == first["run_id"]
    machine.invoke({"action": "finish", "run_id": first["run_id"]})


def test_a_failover_to_another_region_is_refused_by_this_regions_machine(machine: Machine, sandbox: Sandbox,
                                                                        target: str) -> None:
    other = sandbox.topology.partner(target)
    with pytest.raises(ValueError, match=f"runs in {target}; a failover to {other} starts the one deployed there"):
        machine.invoke({"action": "start", **asl.new_context_event(), "runbook": "failover",
                        "input": {"target_region": other}})


def test_an_unknown_action_is_refused(machine: Machine) -> None:
    with pytest.raises(ValueError, match="unknown action 'dance': expected start, step, database-step"):
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
    started = handler({"action": "start", **asl.new_context_event(), "runbook": "failback",
                       "input": {"params": {"given": True}, "operator": "scheduler"}})
    assert started["run_id"].split("-failback-")[1].startswith(target)
    assert handler({"action": "finish", "run_id": started["run_id"]})["run_id"] == started["run_id"]


def test_a_step_that_connects_to_a_database_runs_in_the_database_function_of_that_region(
    machine: Machine, sandbox: Sandbox, target: str
) -> None:
    source = sandbox.topology.partner(target)
    run_id = new_run_id("switchover", target)
    machine.run("switchover", run_id=run_id)
    relayed = {payload["step"]: region for region, payload in machine.database_invocations}
    assert relayed == {"canary-row": source, "canary-row-arrived": target}
    assert all(payload["action"] == "database-step" for _, payload in machine.database_invocations)
    assert machine.journal(run_id).steps["canary-row"].calls  # what the database function did is journaled here


def test_a_planned_switchover_may_run_from_the_other_regions_machine(
    sandbox: Sandbox, target: str, tmp_path: Path
) -> None:
    """A game day's second leg runs in the DR region's machine toward the primary: both regions answer anyway."""
    elsewhere = Machine(sandbox, sandbox.topology.partner(target), tmp_path)
    run_id = new_run_id("switchover", target)
    elsewhere.run("switchover", target_region=target, run_id=run_id)
    assert writer(sandbox) == target
    assert elsewhere.journal(run_id).status == "succeeded"  # journaled in the target region's table


@pytest.fixture
def run(machine: Machine) -> Iterator[dict[str, Any]]:
    """A started switchover run as the runbook function passes it on; finished (lock released) afterwards."""
    started = machine.invoke({"action": "start", **asl.new_context_event(), "runbook": "switchover",
                              "input": {"params": {"seen": True}}})
    yield machine.journal(started["run_id"]).model_dump(mode="json")
    machine.invoke({"action": "finish", "run_id": started["run_id"]})


def test_the_database_function_refuses_a_step_that_connects_to_no_database(machine: Machine, target: str,
                                                                           run: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="step canary-object connects to no database"):
        machine.invoke_database(target, {"action": "database-step", "step": "canary-object", "run": run})


def test_the_database_function_refuses_a_step_for_another_regions_database(
    machine: Machine, sandbox: Sandbox, target: str, run: dict[str, Any]
) -> None:
    source = sandbox.topology.partner(target)
    with pytest.raises(ValueError, match=f"connects to the database in {source}, not {target}"):
        machine.invoke_database(target, {"action": "database-step", "step": "canary-row", "run": run})


ATTEMPTS: list[float] = []


def ready_on_the_second_attempt(ctx: Any) -> dict[str, Any]:
    ATTEMPTS.append(time.time())
    wait_until(ctx, lambda: len(ATTEMPTS) > 1, bool, "the second attempt")
    return {"attempts": len(ATTEMPTS)}


def test_a_step_still_waiting_at_the_end_of_its_invocation_hands_back_and_resumes_after_the_wait(
    machine: Machine, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ATTEMPTS.clear()
    slow = Step(name="slow", action=f"{__name__}:ready_on_the_second_attempt", description="waits an hour at most",
                timeout_seconds=3600)
    replace_plan(monkeypatch, Plan(runbook="failback", description="one long step", steps=(slow,)))
    machine.invocation_seconds = 0.3
    waits: list[int] = []
    run_id = new_run_id("failback", target)
    machine.run("failback", waits=waits, run_id=run_id, params={"seen": True})
    record = machine.journal(run_id).steps["slow"]
    assert (record.status, record.outputs) == ("succeeded", {"attempts": 2})
    assert len(waits) == 1 and waits[0] >= 1
    assert [p["step"] for p in machine.invocations if p.get("action") == "step"] == ["slow", "slow"]


@pytest.fixture
def dr_machine(sandbox: Sandbox, sandbox_env: dict[str, str], tmp_path: Path) -> Machine:
    """The DR region's machines (where the drills run), with the primary writing as a game day expects."""
    topology = sandbox.topology
    for region in topology.regions:
        report_lag(sandbox, region, 1.0)
    if writer(sandbox) != topology.primary_region:
        Machine(sandbox, topology.primary_region, tmp_path).run("switchover")
        report_lag(sandbox, topology.dr_region, 1.0)
    return Machine(sandbox, topology.dr_region, tmp_path)


def evidence_kinds(sandbox: Sandbox, region: str) -> dict[str, str]:
    """run id -> kind of every record in the region's evidence bucket (under the environment's prefix: the
    lifecycle's manifests are beside them)."""
    s3 = sandbox.client("s3", region)
    bucket = sandbox.topology.in_region(region).evidence_bucket
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{sandbox.topology.env_name}/").get("Contents", ())
    records = (json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()) for item in listed)
    return {record["record"]["run_id"] if "record" in record else record["run_id"]:
            (record.get("record") or record)["kind"] for record in records}


def test_a_game_day_state_machine_runs_both_legs_as_nested_switchover_runs_and_comes_back(
    dr_machine: Machine, sandbox: Sandbox
) -> None:
    topology = sandbox.topology
    output = dr_machine.run("game-day")
    game = dr_machine.journal(output["run"]["run_id"])
    assert game.status == "succeeded", game.error
    legs = {name: game.steps[name].outputs for name in ("switchover-to-dr", "switchover-to-primary")}
    assert [leg["target_region"] for leg in legs.values()] == [topology.dr_region, topology.primary_region]
    assert all(dr_machine.journal(leg["run_id"]).status == "succeeded" for leg in legs.values())
    assert writer(sandbox) == topology.primary_region
    assert evidence_kinds(sandbox, topology.dr_region)[game.run_id] == "failover-drill"
    assert {payload["step"] for _, payload in dr_machine.database_invocations} >= {"serve-from-dr"}


def test_a_verify_replication_state_machine_compares_the_archives_and_seals_evidence(
    dr_machine: Machine, sandbox: Sandbox
) -> None:
    output = dr_machine.run("verify-replication")
    run = dr_machine.journal(output["run"]["run_id"])
    assert run.status == "succeeded", run.error
    assert run.steps["compare-archives"].outputs
    assert output["run"]["run_id"] in evidence_kinds(sandbox, sandbox.topology.dr_region)


def test_a_child_run_that_never_started_fails_its_step_with_the_error_step_functions_caught(
    dr_machine: Machine, sandbox: Sandbox
) -> None:
    never = new_run_id("switchover", sandbox.topology.dr_region)
    params = {"legs": {"switchover-to-dr": never, "switchover-to-primary": never}}
    started = dr_machine.invoke({"action": "start", **asl.new_context_event(), "runbook": "game-day",
                                 "input": {"params": params}})
    caught = {"Error": "States.TaskFailed", "Cause": "the switchover preflight refused: lag"}
    with pytest.raises(StepFailed, match=f"run {never} never started: States.TaskFailed: the switchover preflight"):
        dr_machine.invoke({"action": "child-ended", "step": "switchover-to-dr", "run_id": started["run_id"],
                           "child": caught})
    assert dr_machine.journal(started["run_id"]).steps["switchover-to-dr"].status == "failed"
    dr_machine.invoke({"action": "finish", "run_id": started["run_id"], "error": caught})


def test_a_restore_drill_state_machine_polls_its_restores_through_wait_states_and_tears_down(
    dr_machine: Machine, sandbox: Sandbox
) -> None:
    """Its restores outlast a short invocation: each hands back, waits, and continues its checkpointed job."""
    sandbox.seed(patients=5, files_per_patient=1)
    sandbox.action("replication-drain", timeout=30)
    take_backups(AwsSession.from_options(endpoint_url=sandbox.endpoint_url), sandbox.topology)  # as the plan would
    dr_machine.invocation_seconds = 0.2
    waits: list[int] = []
    output = dr_machine.run("restore-drill", waits=waits, params={"recovery_points": [], "random": False,
                                                                 "sample": 3})
    run = dr_machine.journal(output["run"]["run_id"])
    assert run.status == "succeeded", run.error
    assert waits, "no step handed back: the invocation deadline was not reached"
    starts = [call for name in ("restore-database", "restore-archive") for call in run.steps[name].calls
              if call.operation == "StartRestoreJob"]
    assert len(starts) == 2  # one job per data set, however many invocations polled it
    dr = sandbox.topology.dr_region
    assert scratch.scratch_clusters(sandbox.client("rds", dr), sandbox.config.env_name) == []
    assert evidence_kinds(sandbox, dr)[run.run_id] == "restore-drill"


def test_a_started_run_holds_the_environments_lease_so_the_other_direction_is_refused(
    machine: Machine, sandbox: Sandbox, target: str, run: dict[str, Any]
) -> None:
    other = RunLock.of_environment(machine.aws, sandbox.topology, sandbox.topology.partner(target))
    assert {holder.region: holder.run_id for holder in other.holders()} == {
        region: run["run_id"] for region in sandbox.topology.regions}
    assert all(holder.expires_at - time.time() > ORCHESTRATED_LEASE_SECONDS - 60 for holder in other.holders())
    with pytest.raises(LockHeld, match=f"run {run['run_id']} by .* and is alive"):
        other.acquire(new_run_id("switchover", sandbox.topology.partner(target)), "someone else")


def test_a_task_whose_lease_was_broken_fails_its_step_and_runs_nothing(
    machine: Machine, sandbox: Sandbox, target: str, run: dict[str, Any]
) -> None:
    key = {"pk": {"S": f"lock#{sandbox.config.env_name}"}, "sk": {"S": "lock"}}
    for region, resources in sandbox.topology.regions.items():
        sandbox.client("dynamodb", region).delete_item(TableName=resources.runbook_table, Key=key)
    with pytest.raises(StepFailed, match=f"run {run['run_id']} lost the runbook lock: nobody holds it"):
        machine.invoke({"action": "step", "step": "canary-object", "run_id": run["run_id"]})
    assert "canary-object" not in machine.journal(run["run_id"]).steps


def test_the_heartbeat_action_writes_a_row_and_an_object_only_in_the_region_that_writes(
        sandbox: Sandbox, sandbox_env: dict[str, str], tmp_path: Path) -> None:
    source = writer(sandbox)
    other = sandbox.topology.partner(source)
    name = database_function_name(sandbox.config.env_name)
    written = handle({"action": "heartbeat"}, function_session(sandbox, name, source), sandbox.topology.env_name,
                     source, scratch=tmp_path)
    skipped = handle({"action": "heartbeat"}, function_session(sandbox, name, other), sandbox.topology.env_name,
                     other, scratch=tmp_path)
    assert (written["written"], written["region"]) == (True, source)
    assert (skipped["written"], skipped["writer_region"]) == (False, source)
    sandbox.client("s3", source).head_object(Bucket=sandbox.topology.in_region(source).chart_bucket,
                                             Key=written["object"])
