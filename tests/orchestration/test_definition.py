"""Each runbook's state machine against its plan: the same steps, the same dependencies, the engine's retry policy;
long steps as polling loops, child runs as nested executions."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from dr_runbooks.engine.plan import TIMEOUT_GRACE_SECONDS, ChildRun, Plan, Step
from dr_runbooks.orchestration.catalog import RUNBOOKS
from dr_runbooks.orchestration.definition import (
    LAMBDA_MAX_SECONDS,
    LAMBDA_SERVICE_ERRORS,
    NESTED_EXECUTION,
    STEPS,
    definition,
    polled,
)

from . import asl
from .asl import enforced_order, step_tasks

FUNCTION = "arn:aws:lambda:us-west-1:123456789012:function:ehr-dr-demo-runbooks"
MACHINES = {name: f"arn:aws:states:us-west-1:123456789012:stateMachine:ehr-dr-demo-{name}" for name in RUNBOOKS}
EVERY_RUNBOOK = pytest.mark.parametrize("runbook", sorted(RUNBOOKS))


def plan_of(runbook: str) -> Plan:
    return RUNBOOKS[runbook].plan()


def must_precede(plan: Plan) -> set[tuple[str, str]]:
    """The plan's dependencies, transitively: (a, b) when b cannot start before a succeeded."""
    pairs = {(parent, step.name) for step in plan.steps for parent in step.depends_on}
    while True:
        more = {(a, d) for a, b in pairs for c, d in pairs if b == c} - pairs
        if not more:
            return pairs
        pairs |= more


def body(plan: Plan) -> dict:
    return definition(plan, FUNCTION, MACHINES)["States"][STEPS]["Branches"][0]


def states(branch: dict) -> dict[str, dict]:
    found = dict(branch["States"])
    for state in branch["States"].values():
        for inner in state.get("Branches", ()):
            found.update(states(inner))
    return found


def step(name: str, timeout: float = 60, child: ChildRun | None = None, *depends_on: str) -> Step:
    return Step(name=name, action="dr_runbooks.runbooks.steps:record_objectives", description=name,
                depends_on=depends_on, timeout_seconds=timeout, child=child)


@EVERY_RUNBOOK
def test_the_state_machine_runs_each_step_of_the_plan_once(runbook: str) -> None:
    plan = plan_of(runbook)
    assert sorted(step_tasks(body(plan))) == sorted(step.name for step in plan.steps)


@EVERY_RUNBOOK
def test_the_state_machine_orders_steps_exactly_as_their_dependencies(runbook: str) -> None:
    plan = plan_of(runbook)
    assert enforced_order(body(plan)) == must_precede(plan)


@EVERY_RUNBOOK
def test_a_step_task_times_out_with_the_engine_and_retries_only_lambda_faults(runbook: str) -> None:
    plan = plan_of(runbook)
    for state in states(body(plan)).values():
        if state["Type"] != "Task" or "step" not in state["Parameters"]:
            continue
        step = plan.step(state["Parameters"]["step"])
        assert state["TimeoutSeconds"] == min(math.ceil(step.timeout_seconds + TIMEOUT_GRACE_SECONDS),
                                              LAMBDA_MAX_SECONDS)
        assert [set(retry["ErrorEquals"]) for retry in state["Retry"]] == [set(LAMBDA_SERVICE_ERRORS)]
        assert "Catch" not in state  # a failed step fails its branch; the one catch around all steps finishes the run


@EVERY_RUNBOOK
def test_any_failure_among_the_steps_still_finishes_the_run_then_fails_it(runbook: str) -> None:
    machine = definition(plan_of(runbook), FUNCTION, MACHINES)["States"]
    catch = machine[STEPS]["Catch"]
    assert [c["ErrorEquals"] for c in catch] == [["States.ALL"]]
    after = machine[catch[0]["Next"]]
    assert after["Parameters"]["action"] == "finish"
    assert machine[after["Next"]]["Type"] == "Fail"


@EVERY_RUNBOOK
def test_every_step_that_may_outlast_an_invocation_loops_through_a_wait(runbook: str) -> None:
    plan = plan_of(runbook)
    found = states(body(plan))
    for long_step in (s for s in plan.steps if polled(s) and s.child is None):
        check = found[found[long_step.name]["Next"]]
        assert check["Type"] == "Choice"
        wait = found[check["Choices"][0]["Next"]]
        assert (wait["Type"], wait["Next"]) == ("Wait", long_step.name)


def test_a_step_longer_than_a_lambda_invocation_hands_back_and_is_called_again_after_the_wait_it_asks_for() -> None:
    plan = Plan(runbook="slow", description="an hour-long wait", steps=(step("wait", 3600), step("after", 60, None,
                                                                                                  "wait")))
    found = states(body(plan))
    assert found["wait"]["ResultPath"] == "$.poll"
    assert found["wait: waiting?"]["Choices"] == [
        {"Variable": "$.poll.status", "StringEquals": "waiting", "Next": "wait: wait"}]
    assert found["wait: waiting?"]["Default"] == "after"
    assert found["wait: wait"] == {"Type": "Wait", "SecondsPath": "$.poll.wait_seconds", "Next": "wait"}


def test_a_step_that_fits_an_invocation_is_one_task() -> None:
    found = states(body(Plan(runbook="quick", description="q", steps=(step("quick", 300),))))
    assert list(found) == ["quick"]


def test_a_child_step_is_a_nested_execution_of_the_child_machine_then_a_task_that_journals_it() -> None:
    plan = Plan(runbook="game", description="g", locks=False,
                steps=(step("leg-one", 900, ChildRun(runbook="switchover", target="dr")),))
    found = states(body(plan))
    nested = found["leg-one"]
    assert nested["Resource"] == NESTED_EXECUTION
    assert nested["Parameters"] == {"StateMachineArn": MACHINES["switchover"],
                                    "Name.$": "$.run.children.leg_one.run_id",
                                    "Input.$": "$.run.children.leg_one.input"}
    assert nested["Catch"][0]["Next"] == nested["Next"] == "leg-one: journal"
    assert found["leg-one: journal"]["Parameters"]["action"] == "child-ended"


def test_a_child_runbook_without_a_machine_is_refused() -> None:
    plan = Plan(runbook="game", description="g", steps=(step("leg", 900, ChildRun(runbook="switchover",
                                                                                  target="dr")),))
    with pytest.raises(ValueError, match="no state machine given for its child runbooks: switchover"):
        definition(plan, FUNCTION, {})


def test_a_plan_that_is_not_series_parallel_keeps_every_dependency() -> None:
    plan = Plan(runbook="n-shape", description="a->c, b->c, b->d",
                steps=(step("a"), step("b"), step("c", 60, None, "a", "b"), step("d", 60, None, "b")))
    assert must_precede(plan) <= enforced_order(body(plan))


ASL_VALIDATOR = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "asl-validator"


def test_every_generated_state_machine_is_valid_amazon_states_language(tmp_path: Path) -> None:
    """asl-validator (npm, pinned in package.json) on every runbook's definition, as the stack deploys it."""
    assert ASL_VALIDATOR.exists(), "run `npm ci` first (the README's test command does)"
    paths = []
    for runbook in sorted(RUNBOOKS):
        path = tmp_path / f"{runbook}.asl.json"
        path.write_text(json.dumps(definition(plan_of(runbook), FUNCTION, MACHINES)))
        paths.append(path)
    done = subprocess.run([str(ASL_VALIDATOR), *(arg for path in paths for arg in ("--json-path", str(path)))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_asl_validator_rejects_a_broken_definition(tmp_path: Path) -> None:
    """The check above can fail: a definition whose start state does not exist is refused."""
    broken = definition(plan_of(sorted(RUNBOOKS)[0]), FUNCTION, MACHINES) | {"StartAt": "no-such-state"}
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken))
    done = subprocess.run([str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode != 0


@EVERY_RUNBOOK
def test_a_start_that_found_nothing_to_do_ends_the_execution_succeeded_without_a_step(runbook: str) -> None:
    invoked: list[dict] = []

    def skipping_start(payload: dict) -> dict:
        invoked.append(payload)
        return {"skipped": "nothing to do here"}

    output = asl.run(definition(plan_of(runbook), FUNCTION, MACHINES), {"target_region": "us-west-1"}, skipping_start)

    assert output["run"] == {"skipped": "nothing to do here"}
    assert [payload["action"] for payload in invoked] == ["start"]
