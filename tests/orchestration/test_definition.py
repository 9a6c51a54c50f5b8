"""Each runbook's state machine against its plan: the same steps, the same dependencies, the engine's retry policy."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from dr_runbooks.drills.plans import restore_drill
from dr_runbooks.engine.plan import Plan, Step
from dr_runbooks.engine.runner import TIMEOUT_GRACE_SECONDS
from dr_runbooks.orchestration.definition import LAMBDA_SERVICE_ERRORS, STEPS, definition
from dr_runbooks.runbooks.plans import PLANS

from .asl import enforced_order, step_tasks

FUNCTION = "arn:aws:lambda:us-west-1:123456789012:function:ehr-dr-demo-runbooks"
PLAN_FACTORIES = pytest.mark.parametrize("make_plan", PLANS.values(), ids=PLANS.keys())


def must_precede(plan: Plan) -> set[tuple[str, str]]:
    """The plan's dependencies, transitively: (a, b) when b cannot start before a succeeded."""
    pairs = {(parent, step.name) for step in plan.steps for parent in step.depends_on}
    while True:
        more = {(a, d) for a, b in pairs for c, d in pairs if b == c} - pairs
        if not more:
            return pairs
        pairs |= more


def body(plan: Plan) -> dict:
    return definition(plan, FUNCTION)["States"][STEPS]["Branches"][0]


def tasks(branch: dict) -> list[dict]:
    found = []
    for state in branch["States"].values():
        if state["Type"] == "Task":
            found.append(state)
        for inner in state.get("Branches", ()):
            found += tasks(inner)
    return found


@PLAN_FACTORIES
def test_the_state_machine_runs_each_step_of_the_plan_once(make_plan: Callable[[], Plan]) -> None:
    plan = make_plan()
    assert sorted(step_tasks(body(plan))) == sorted(step.name for step in plan.steps)


@PLAN_FACTORIES
def test_the_state_machine_orders_steps_exactly_as_their_dependencies(make_plan: Callable[[], Plan]) -> None:
    plan = make_plan()
    assert enforced_order(body(plan)) == must_precede(plan)


@PLAN_FACTORIES
def test_a_step_task_times_out_with_the_engine_and_retries_only_lambda_faults(make_plan: Callable[[], Plan]) -> None:
    plan = make_plan()
    for task in tasks(body(plan)):
        step = plan.step(task["Parameters"]["step"])
        assert task["TimeoutSeconds"] == math.ceil(step.timeout_seconds + TIMEOUT_GRACE_SECONDS)
        assert [set(retry["ErrorEquals"]) for retry in task["Retry"]] == [set(LAMBDA_SERVICE_ERRORS)]
        assert "Catch" not in task  # a failed step fails its branch; the one catch around all steps finishes the run


@PLAN_FACTORIES
def test_any_failure_among_the_steps_still_finishes_the_run_then_fails_it(make_plan: Callable[[], Plan]) -> None:
    states = definition(make_plan(), FUNCTION)["States"]
    catch = states[STEPS]["Catch"]
    assert [c["ErrorEquals"] for c in catch] == [["States.ALL"]]
    after = states[catch[0]["Next"]]
    assert after["Parameters"]["action"] == "finish"
    assert states[after["Next"]]["Type"] == "Fail"


def test_a_plan_that_is_not_series_parallel_keeps_every_dependency() -> None:
    def step(name: str, *depends_on: str) -> Step:
        return Step(name=name, action="dr_runbooks.runbooks.steps:record_objectives", description=name,
                    depends_on=depends_on)

    plan = Plan(runbook="n-shape", description="a->c, b->c, b->d",
                steps=(step("a"), step("b"), step("c", "a", "b"), step("d", "b")))
    assert must_precede(plan) <= enforced_order(body(plan))


def test_a_step_longer_than_a_lambda_invocation_is_refused() -> None:
    plan = Plan(runbook="slow", description="too slow", steps=(
        Step(name="wait", action="dr_runbooks.runbooks.steps:record_objectives", description="w",
             timeout_seconds=3600),))
    with pytest.raises(ValueError, match="longer than Lambda's 900 s: wait"):
        definition(plan, FUNCTION)


def test_the_restore_drill_is_refused_until_its_long_steps_fit_a_lambda_invocation() -> None:
    """Its restores wait up to an hour in one step; as Lambda tasks they must become start + poll (a Wait loop)."""
    with pytest.raises(ValueError, match="steps longer than Lambda's 900 s: restore-database"):
        definition(restore_drill(), FUNCTION)
