"""Reading a generated state machine back, independently of how it was generated: which steps it runs in which order,
and running it in-process (Task, Parallel, Choice (StringEquals, IsPresent), Wait, Succeed and Fail states, nested
executions, JSONPath `$`/`$.a.b` parameters, catches), which is what Step Functions does with it and what moto cannot
do without Docker for the Lambda tasks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def step_tasks(branch: dict[str, Any]) -> list[str]:
    """The steps (task states with a `step` parameter) of a branch, nested ones included."""
    found: list[str] = []
    for state in branch["States"].values():
        if state["Type"] == "Task" and "step" in state["Parameters"]:
            found.append(state["Parameters"]["step"])
        for inner in state.get("Branches", ()):
            found += step_tasks(inner)
    return found


def enforced_order(branch: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (earlier, later) pair of steps the branch enforces: along its `Next` chain, and inside its Parallels."""
    pairs: set[tuple[str, str]] = set()
    seen: list[str] = []
    name: str | None = branch["StartAt"]
    while name is not None:
        state = branch["States"][name]
        here = step_tasks({"States": {name: state}})
        pairs |= {(before, after) for before in seen for after in here}
        for inner in state.get("Branches", ()):
            pairs |= enforced_order(inner)
        seen += here
        name = state.get("Next") or state.get("Default")
    return pairs


def new_context() -> dict[str, Any]:
    """The context object (`$$`) of an execution run in-process: a new id and its start time, as Step Functions
    gives them to every state of the execution."""
    return {"Execution": {"Id": f"arn:aws:states:us-west-1:123456789012:execution:machine:{uuid.uuid4()}",
                          "StartTime": datetime.now(UTC).isoformat().replace("+00:00", "Z")}}


def _resolve(template: dict[str, Any], data: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            found: Any = (context or {}) if value.startswith("$$.") else data
            for part in value.removeprefix("$$").removeprefix("$").strip(".").split("."):
                found = found[part] if part else found
            resolved[key.removesuffix(".$")] = found
        else:
            resolved[key] = value
    return resolved


def _set(data: dict[str, Any], path: str | None, value: Any) -> dict[str, Any]:
    if path is None:
        return data
    return {**data, path.removeprefix("$."): value}


class Failed(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


def _found(data: dict[str, Any], path: str) -> Any:
    return _resolve({"v.$": path}, data)["v"]


def _chosen(data: dict[str, Any], rule: dict[str, Any]) -> bool:
    """A Choice rule: `StringEquals` or `IsPresent` on its `Variable`."""
    try:
        found = _found(data, rule["Variable"])
    except (KeyError, TypeError):
        return rule.get("IsPresent") is False
    if "IsPresent" in rule:
        return bool(rule["IsPresent"])
    return bool(found == rule["StringEquals"])


#: A nested execution: (state machine ARN, execution name, input) -> the child's output.
StartChild = Callable[[str, str, dict[str, Any]], Any]


def _no_children(arn: str, _name: str, _input: dict[str, Any]) -> Any:
    raise AssertionError(f"no child machine expected, got {arn}")


def run(branch: dict[str, Any], data: dict[str, Any], invoke: Callable[[dict[str, Any]], Any],
        start_child: StartChild = _no_children, waits: list[int] | None = None,
        context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a definition (or branch) to its end; a task's exception becomes an error named as its class. `waits`
    collects the seconds of every Wait state passed (nothing sleeps); `context` is the execution's `$$` (a new one
    for a definition run from its start)."""
    context = context or new_context()
    name: str | None = branch["StartAt"]
    while name is not None:
        state = branch["States"][name]
        following = None if state.get("End") else state.get("Next")
        try:
            if state["Type"] == "Task" and state["Resource"].startswith("arn:aws:states:::states:startExecution"):
                given = _resolve(state["Parameters"], data, context)
                data = _set(data, state.get("ResultPath", "$"),
                            start_child(given["StateMachineArn"], given["Name"], given["Input"]))
            elif state["Type"] == "Task":
                data = _set(data, state.get("ResultPath", "$"), invoke(_resolve(state["Parameters"], data, context)))
            elif state["Type"] == "Parallel":
                results = [run(inner, data, invoke, start_child, waits, context) for inner in state["Branches"]]
                data = _set(data, state.get("ResultPath", "$"), results)
            elif state["Type"] == "Choice":
                chosen = [c["Next"] for c in state["Choices"] if _chosen(data, c)]
                following = (chosen or [state["Default"]])[0]
            elif state["Type"] == "Wait":
                if waits is not None:
                    waits.append(_found(data, state["SecondsPath"]))
            elif state["Type"] == "Fail":
                raise Failed(state["Error"], state["Cause"])
            elif state["Type"] == "Succeed":
                return data
        except Exception as error:
            catch = next((c for c in state.get("Catch", ()) if "States.ALL" in c["ErrorEquals"]), None)
            if catch is None or state["Type"] == "Fail":
                raise
            failure = error if isinstance(error, Failed) else Failed(type(error).__name__, str(error))
            data = _set(data, catch["ResultPath"], {"Error": failure.error, "Cause": failure.cause})
            name = catch["Next"]
            continue
        name = following
    return data


def new_context_event() -> dict[str, Any]:
    """What a `start` task receives from a new execution's context object (for tests that invoke it directly)."""
    execution = new_context()["Execution"]
    return {"execution": execution["Id"], "started": execution["StartTime"]}
