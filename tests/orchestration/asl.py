"""Reading a generated state machine back, independently of how it was generated: which steps it runs in which order,
and running it in-process (Task and Parallel states, JSONPath `$`/`$.a.b` parameters, one catch), which is what
Step Functions does with it and what moto cannot do without Docker for the Lambda tasks."""

from __future__ import annotations

from collections.abc import Callable
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
        name = state.get("Next")
    return pairs


def _resolve(template: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            found: Any = data
            for part in value.removeprefix("$").strip(".").split("."):
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


def run(branch: dict[str, Any], data: dict[str, Any], invoke: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Run a definition (or branch) to its end; a task's exception becomes an error named as its class."""
    name: str | None = branch["StartAt"]
    while name is not None:
        state = branch["States"][name]
        try:
            if state["Type"] == "Task":
                data = _set(data, state.get("ResultPath", "$"), invoke(_resolve(state["Parameters"], data)))
            elif state["Type"] == "Parallel":
                results = [run(inner, data, invoke) for inner in state["Branches"]]
                data = _set(data, state.get("ResultPath", "$"), results)
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
        name = None if state.get("End") else state.get("Next")
    return data
