"""A runbook's Step Functions definition (Amazon States Language), generated from the same plan the engine runs.

Shape: `start-run` (journal and lock, as `drctl` does before the first step) -> the plan's steps as Lambda tasks,
nested in `Parallel` states exactly as the plan's dependencies allow (see `shape`) -> `finish-run` (journal the outcome,
release the lock, write the evidence, tell on-call). Any failure inside the steps is caught once, around all of them,
and still goes through `finish-run`, then to a `Fail` state, so a failed drill is a FAILED execution (that is what the
alarm counts).

Retries mirror the engine's: a step is never re-run after it failed (botocore's retries already happened inside it);
only Lambda's own service faults, where the step's code never ran or may be safely run again (steps are idempotent),
are retried. Each task's timeout is the step's timeout plus the engine's grace.
"""

from __future__ import annotations

import math
from typing import Any

from dr_runbooks.engine.plan import Plan, Step
from dr_runbooks.engine.runner import TIMEOUT_GRACE_SECONDS
from dr_runbooks.orchestration.shape import Leaf, Sequence, Shape, Together, shape_of, steps_of

#: Lambda's hard limit on one invocation: a step that may take longer cannot be one task.
LAMBDA_MAX_SECONDS = 900
#: Faults of the Lambda service itself (throttling, a failed start): the step's code did not finish, retrying is safe.
LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
SERVICE_RETRY: dict[str, Any] = {
    "ErrorEquals": list(LAMBDA_SERVICE_ERRORS), "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2.0,
    "JitterStrategy": "FULL",
}
START, STEPS, FINISH, FINISH_FAILED, FAILED, DONE = (
    "start-run", "run-steps", "finish-run", "finish-failed-run", "run-failed", "run-succeeded")
#: Where the state machine keeps the run id `start-run` returns, and the caught error.
RUN_PATH, ERROR_PATH = "$.run", "$.error"


def task_timeout(step: Step) -> int:
    return math.ceil(step.timeout_seconds + TIMEOUT_GRACE_SECONDS)


def definition(plan: Plan, function_arn: str) -> dict[str, Any]:
    """The state machine of `plan`, every task invoking `function_arn` (the handler) with the step's name."""
    too_long = [step.name for step in plan.steps if task_timeout(step) > LAMBDA_MAX_SECONDS + TIMEOUT_GRACE_SECONDS]
    if too_long:
        raise ValueError(f"plan {plan.runbook}: steps longer than Lambda's {LAMBDA_MAX_SECONDS} s: "
                         f"{', '.join(too_long)}")
    body = _branch(shape_of(plan), plan, function_arn)
    return {
        "Comment": f"{plan.runbook}: {plan.description} (generated from the plan; do not edit)",
        "StartAt": START,
        "States": {
            START: {**_lambda(function_arn, {"action": "start", "runbook": plan.runbook, "input.$": "$"}, 60),
                    "ResultPath": RUN_PATH, "Next": STEPS},
            STEPS: {"Type": "Parallel", "Comment": "every step of the plan; a failure anywhere is caught here once",
                    "Branches": [body], "ResultPath": None, "Next": FINISH,
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": ERROR_PATH, "Next": FINISH_FAILED}]},
            FINISH: {**_lambda(function_arn, _finish_payload(), 300), "ResultPath": None, "Next": DONE},
            FINISH_FAILED: {**_lambda(function_arn, {**_finish_payload(), "error.$": ERROR_PATH}, 300),
                            "ResultPath": None, "Next": FAILED},
            DONE: {"Type": "Succeed"},
            FAILED: {"Type": "Fail", "Error": "RunbookFailed", "Cause": f"a step of {plan.runbook} failed"},
        },
    }


def _finish_payload() -> dict[str, Any]:
    return {"action": "finish", "run_id.$": f"{RUN_PATH}.run_id"}


def _lambda(function_arn: str, payload: dict[str, Any], timeout: int) -> dict[str, Any]:
    return {"Type": "Task", "Resource": function_arn, "Parameters": payload, "TimeoutSeconds": timeout,
            "Retry": [SERVICE_RETRY]}


def _branch(shape: Shape, plan: Plan, function_arn: str) -> dict[str, Any]:
    """`{"StartAt", "States"}` of a shape: a sequence chains its parts, the last one ends the branch."""
    parts = shape.parts if isinstance(shape, Sequence) else (shape,)
    states: dict[str, Any] = {}
    names = [_name(part) for part in parts]
    for index, part in enumerate(parts):
        state = (_step_task(plan.step(part.step), function_arn) if isinstance(part, Leaf)
                 else _parallel(part, plan, function_arn))  # type: ignore[arg-type]
        state.update({"Next": names[index + 1]} if index + 1 < len(parts) else {"End": True})
        states[names[index]] = state
    return {"StartAt": names[0], "States": states}


def _parallel(shape: Together, plan: Plan, function_arn: str) -> dict[str, Any]:
    return {"Type": "Parallel", "Branches": [_branch(branch, plan, function_arn) for branch in shape.branches],
            "ResultPath": None}


def _step_task(step: Step, function_arn: str) -> dict[str, Any]:
    payload = {"action": "step", "step": step.name, "run_id.$": f"{RUN_PATH}.run_id"}
    return {**_lambda(function_arn, payload, task_timeout(step)), "Comment": step.description, "ResultPath": None}


def _name(shape: Shape) -> str:
    """A step's state is named as the step; a parallel group after the first step of each branch (unique, since a
    step starts one branch only)."""
    if isinstance(shape, Leaf):
        return shape.step
    branches = shape.branches if isinstance(shape, Together) else (shape,)
    return f"together: {' + '.join(steps_of(branch)[0] for branch in branches)}"[:80]
