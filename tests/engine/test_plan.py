"""Plans are data: well-formed or refused with a one-line reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dr_runbooks.engine.plan import Plan, Step


def step(name: str, *depends_on: str) -> Step:
    return Step(name=name, action="dr_runbooks.engine.plan:Plan", description=name, depends_on=depends_on)


def test_a_cycle_is_refused() -> None:
    with pytest.raises(ValidationError, match="cycle"):
        Plan(runbook="x", description="x", steps=(step("a", "b"), step("b", "a")))


def test_an_unknown_dependency_is_refused() -> None:
    with pytest.raises(ValidationError, match="step 'a' depends on unknown steps: ghost"):
        Plan(runbook="x", description="x", steps=(step("a", "ghost"),))


def test_duplicate_step_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="duplicate step names: a"):
        Plan(runbook="x", description="x", steps=(step("a"), step("a")))


def test_a_plan_round_trips_through_json() -> None:
    plan = Plan(runbook="x", description="x", steps=(step("a"), step("b", "a")))
    assert Plan.model_validate_json(plan.model_dump_json()) == plan


def test_an_action_that_does_not_import_fails_before_anything_runs() -> None:
    plan = Plan(
        runbook="x", description="x", steps=(Step(name="a", action="dr_runbooks.nowhere:nothing", description="a"),)
    )
    with pytest.raises(ModuleNotFoundError):
        plan.verify_actions()
