"""A runbook as data: steps, their dependencies, timeouts and polling policy.

A plan holds no code, only the import path of each step's action. That is what lets the same plan object be run
here by `engine.runner` (independent steps in threads) and, later, be turned into a Step Functions state machine
whose Lambda tasks import the same action and call it with a run context rebuilt from the journal.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from dr_runbooks.engine.context import RunContext

#: A step that overruns its timeout by this much is declared failed without waiting for it any longer (the engine's
#: threads and the Step Functions task timeouts alike).
TIMEOUT_GRACE_SECONDS = 1.0
#: What a step action returns: JSON-serialisable outputs that later steps (and a resumed run) read from the journal.
Outputs = dict[str, Any]
Action = Callable[["RunContext"], Outputs | None]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PollPolicy(_Frozen):
    """How a step polls a status transition: exponential backoff with jitter between `initial` and `maximum`."""

    initial_seconds: float = Field(1.0, gt=0)
    maximum_seconds: float = Field(10.0, gt=0)


class ChildRun(_Frozen):
    """A step that runs a whole other runbook as its own run (own run id, lock, journal, evidence): a game day's legs.
    Here the step's action runs it; on Step Functions the step is a nested execution of that runbook's machine."""

    runbook: str
    target: Literal["primary", "dr"] = Field(description="the region the child run targets, by role")


class Step(_Frozen):
    """One step of a runbook. Its action checks its own preconditions and is idempotent: re-running it after it
    succeeded changes nothing, which is what makes resuming a crashed run safe."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    action: str = Field(pattern=r"^[\w.]+:\w+$", description="module:function, called with the run context")
    description: str
    depends_on: tuple[str, ...] = ()
    timeout_seconds: float = Field(300.0, gt=0)
    changes: bool = Field(False, description="whether the step writes anything (dry runs list those writes)")
    calls: tuple[str, ...] = Field((), description="the AWS calls it makes, templates filled from the run context")
    poll: PollPolicy = PollPolicy()
    database: Literal["target", "source"] | None = Field(
        None, description="the region whose records database the step connects to: on AWS such a step runs inside "
                          "that region's records VPC, every other step outside any VPC")
    child: ChildRun | None = None

    def resolve(self) -> Action:
        """The action function; an import error here is a bug in the plan, raised before anything runs."""
        module, _, function = self.action.partition(":")
        return getattr(importlib.import_module(module), function)


class Plan(_Frozen):
    runbook: str
    description: str
    steps: tuple[Step, ...]
    #: Whether a run takes the runbook lock of its target region; a plan whose children take it themselves does not.
    locks: bool = True

    @model_validator(mode="after")
    def _well_formed(self) -> Plan:
        names = [step.name for step in self.steps]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate step names: {', '.join(duplicates)}")
        for step in self.steps:
            unknown = sorted(set(step.depends_on) - set(names))
            if unknown:
                raise ValueError(f"step {step.name!r} depends on unknown steps: {', '.join(unknown)}")
        try:
            tuple(TopologicalSorter(self.graph()).static_order())
        except CycleError as error:
            raise ValueError(f"steps depend on each other in a cycle: {' -> '.join(error.args[1])}") from None
        return self

    def graph(self) -> dict[str, tuple[str, ...]]:
        return {step.name: step.depends_on for step in self.steps}

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"plan {self.runbook!r} has no step {name!r}")

    def verify_actions(self) -> None:
        """Import every action now, so a typo fails before the lock is taken rather than halfway through a failover."""
        for step in self.steps:
            step.resolve()
