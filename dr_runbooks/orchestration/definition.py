"""A runbook's Step Functions definition (Amazon States Language), generated from the same plan the engine runs.

Shape: `start-run` (preflight when the caller gave none, lock, run record; or, when the preflight finds nothing for
this region to do, `run-skipped`: succeeded, nothing started) -> the plan's steps, nested in `Parallel`
states exactly as the plan's dependencies allow (see `shape`) -> `finish-run` (journal the outcome, release the lock,
write the evidence, tell on-call). Any failure inside the steps is caught once, around all of them, and still goes
through `finish-run`, then to a `Fail` state, so a failed drill is a FAILED execution (that is what the alarm counts).

A step is one of three shapes:
- a Lambda task (`action: step`), the common case;
- a *polled* task, for a step that may wait longer than one Lambda invocation (an Aurora switchover, an hour-long
  restore): the task hands back `{"status": "waiting", "wait_seconds": n}` before its invocation ends, a `Choice`
  sends it through a `Wait` of n seconds and back to the same task, which resumes from the step's checkpoint; the
  step's own timeout still bounds the whole loop (the handler fails it from the journal's first start);
- a *child* run (a game day's leg): a nested execution of the child runbook's state machine in this region
  (`startExecution.sync:2`: Step Functions waits for it), then a task that journals the leg from the child's journal;
  a failed child is caught there, journaled, and fails the step.

Retries mirror the engine's: a step is never re-run after it failed (botocore's retries already happened inside it);
only Lambda's own service faults, where the step's code never ran or may be safely run again (steps are idempotent),
are retried.
"""

from __future__ import annotations

import math
from typing import Any

from dr_runbooks.engine.plan import TIMEOUT_GRACE_SECONDS, Plan, Step
from dr_runbooks.orchestration.shape import Leaf, Sequence, Shape, Together, shape_of, steps_of

#: Lambda's hard limit on one invocation.
LAMBDA_MAX_SECONDS = 900
#: A polled step hands back this long before its invocation would end (journal writes, the reply).
HANDBACK_SECONDS = 60
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
#: Step Functions' integration that starts a nested execution and waits for it, output parsed as JSON.
NESTED_EXECUTION = "arn:aws:states:::states:startExecution.sync:2"
START, STARTED, STEPS, FINISH, FINISH_FAILED, FAILED, DONE, SKIPPED = (
    "start-run", "started?", "run-steps", "finish-run", "finish-failed-run", "run-failed", "run-succeeded",
    "run-skipped")
#: Where the state machine keeps what `start-run` returned (run id, children), a polled step's reply, a child's
#: output or error, a caught error.
RUN_PATH, POLL_PATH, CHILD_PATH, ERROR_PATH = "$.run", "$.poll", "$.child", "$.error"
WAITING = "waiting"


def task_timeout(step: Step) -> int:
    return math.ceil(step.timeout_seconds + TIMEOUT_GRACE_SECONDS)


def polled(step: Step) -> bool:
    """Whether the step may outlast one invocation, so its task must be able to hand back and be called again."""
    return task_timeout(step) > LAMBDA_MAX_SECONDS - HANDBACK_SECONDS


def child_key(step: Step) -> str:
    """The key of a child step under `$.run.children` (JSONPath wants no hyphens)."""
    return step.name.replace("-", "_")


def definition(plan: Plan, function_arn: str, machine_arns: dict[str, str] | None = None) -> dict[str, Any]:
    """The state machine of `plan`: every task invokes `function_arn` (the handler); a child step starts the machine
    `machine_arns[child runbook]` of this region."""
    machines = machine_arns or {}
    missing = sorted({step.child.runbook for step in plan.steps if step.child and step.child.runbook not in machines})
    if missing:
        raise ValueError(f"plan {plan.runbook}: no state machine given for its child runbooks: {', '.join(missing)}")
    body = _Branches(plan, function_arn, machines).branch(shape_of(plan))
    return {
        "Comment": f"{plan.runbook}: {plan.description} (generated from the plan; do not edit)",
        "StartAt": START,
        "States": {
            START: {**_lambda(function_arn, {"action": "start", "runbook": plan.runbook, "input.$": "$",
                                             "execution.$": "$$.Execution.Id",
                                             "started.$": "$$.Execution.StartTime"}, 120),
                    "ResultPath": RUN_PATH, "Next": STARTED},
            # A preflight that found nothing for this region to do (`catalog.Skipped`): succeeded, nothing started.
            STARTED: {"Type": "Choice", "Default": STEPS, "Choices": [
                {"Variable": f"{RUN_PATH}.skipped", "IsPresent": True, "Next": SKIPPED}]},
            SKIPPED: {"Type": "Succeed", "Comment": "the preflight found nothing to do here ($.run.skipped: why)"},
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


class _Branches:
    def __init__(self, plan: Plan, function_arn: str, machines: dict[str, str]) -> None:
        self.plan, self.function_arn, self.machines = plan, function_arn, machines

    def branch(self, shape: Shape) -> dict[str, Any]:
        """`{"StartAt", "States"}` of a shape: a sequence chains its parts, the last one ends the branch."""
        parts = shape.parts if isinstance(shape, Sequence) else (shape,)
        names = [_name(part) for part in parts]
        states: dict[str, Any] = {}
        for index, part in enumerate(parts):
            after = names[index + 1] if index + 1 < len(parts) else None
            if isinstance(part, Leaf):
                states.update(self._step(self.plan.step(part.step), after))
            else:
                states[names[index]] = _then({"Type": "Parallel", "ResultPath": None,
                                               "Branches": [self.branch(inner) for inner in part.branches]}, after)
        return {"StartAt": names[0], "States": states}

    def _step(self, step: Step, after: str | None) -> dict[str, Any]:
        """The states of one step, the first named as the step; `after` is the state that follows (None: the end)."""
        payload = {"action": "step", "step": step.name, "run_id.$": f"{RUN_PATH}.run_id"}
        task = {**_lambda(self.function_arn, payload, min(task_timeout(step), LAMBDA_MAX_SECONDS)),
                "Comment": step.description, "ResultPath": None}
        if step.child is not None:
            return self._child(step, task, after)
        if not polled(step):
            return {step.name: _then(task, after)}
        check, wait, done = f"{step.name}: waiting?", f"{step.name}: wait", f"{step.name}: done"
        states = {
            step.name: {**task, "ResultPath": POLL_PATH, "Next": check},
            check: {"Type": "Choice", "Default": after or done, "Choices": [
                {"Variable": f"{POLL_PATH}.status", "StringEquals": WAITING, "Next": wait}]},
            wait: {"Type": "Wait", "SecondsPath": f"{POLL_PATH}.wait_seconds", "Next": step.name},
        }
        if after is None:
            states[done] = {"Type": "Succeed"}
        return states

    def _child(self, step: Step, task: dict[str, Any], after: str | None) -> dict[str, Any]:
        assert step.child is not None
        key, journal = child_key(step), f"{step.name}: journal"
        nested = {
            "Type": "Task", "Resource": NESTED_EXECUTION, "Comment": f"the {step.child.runbook} run of this step",
            "Parameters": {"StateMachineArn": self.machines[step.child.runbook],
                           "Name.$": f"{RUN_PATH}.children.{key}.run_id",
                           "Input.$": f"{RUN_PATH}.children.{key}.input"},
            "TimeoutSeconds": task_timeout(step), "ResultPath": CHILD_PATH, "Next": journal,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": CHILD_PATH, "Next": journal}],
        }
        task["Parameters"] = {**task["Parameters"], "action": "child-ended", "child.$": CHILD_PATH}
        return {step.name: nested, journal: _then(task, after)}


def _then(state: dict[str, Any], after: str | None) -> dict[str, Any]:
    return {**state, "Next": after} if after else {**state, "End": True}


def _name(shape: Shape) -> str:
    """A step's first state is named as the step; a parallel group after the first step of each branch (unique, since
    a step starts one branch only)."""
    if isinstance(shape, Leaf):
        return shape.step
    branches = shape.branches if isinstance(shape, Together) else (shape,)
    return f"together: {' + '.join(steps_of(branch)[0] for branch in branches)}"[:80]
