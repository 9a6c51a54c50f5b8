"""`drctl <runbook> --remote`: start the runbook's state machine in the target region and follow it from its journal.

The run id is chosen here and is the execution's name, so the execution, the journal and the evidence share one id.
The preflight, the data-loss acknowledgment and the confirmation happen on the caller's side first, exactly as for a
local run (the state machine gets what the preflight saw); the caller's MFA session starts the execution. Progress
is read from the same journal a local run writes (the target region's table), so the display is the same: a step
appears when its Lambda task journals its start and end.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dr_runbooks.engine.journal import LOCAL_RUNS, Journal, JournalNotFound, RunRecord, StepRecord, new_run_id
from dr_runbooks.engine.runner import Listener
from dr_runbooks.orchestration.catalog import RUNBOOKS
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology, state_machine_arn

#: Step Functions' terminal statuses; anything else is still going.
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass
class RemoteRun:
    run_id: str
    execution_arn: str
    status: str
    #: The journal as the run left it; None when the run never journaled (it failed before its first task ran).
    record: RunRecord | None
    error: str | None = None


def start(aws: AwsSession, topology: Topology, runbook: str, target: str, params: dict[str, Any],
          operator: str) -> tuple[str, str]:
    """Start the execution; a missing state machine (stack not deployed) is a refusal that changed nothing."""
    run_id = new_run_id(RUNBOOKS[runbook].label, target)
    payload = {"target_region": target, "run_id": run_id, "params": params, "operator": operator, "mfa": aws.mfa}
    try:
        started = aws.client("stepfunctions", target).start_execution(
            stateMachineArn=state_machine_arn(topology, target, runbook), name=run_id, input=json.dumps(payload))
    except ClientError as error:
        if error.response["Error"]["Code"] == "StateMachineDoesNotExist":
            raise Refused(f"no {runbook} state machine in {target}: deploy the orchestration stack, or run locally "
                          "without --remote") from None
        raise
    return run_id, started["executionArn"]


def follow(aws: AwsSession, topology: Topology, run_id: str, execution_arn: str, runbook: str, target: str,
           listener: Listener, poll_seconds: float = 2.0) -> RemoteRun:
    """Report each step as the journal shows it until the execution ends; then the journal's last word."""
    plan = RUNBOOKS[runbook].plan()
    journal = Journal(aws, target, topology.in_region(target).runbook_table, LOCAL_RUNS)
    shown: dict[str, str] = {}
    sfn = aws.client("stepfunctions", target)
    while True:
        execution = sfn.describe_execution(executionArn=execution_arn)
        record = _journal(journal, run_id)
        for name, step in (record.steps if record else {}).items():
            _show(listener, plan.step(name), step, shown)
        if execution["status"] in ENDED:
            error = " ".join(filter(None, (execution.get("error"), execution.get("cause")))) or None
            return RemoteRun(run_id, execution_arn, execution["status"], record, error)
        time.sleep(poll_seconds)


def _journal(journal: Journal, run_id: str) -> RunRecord | None:
    try:
        return journal.load(run_id)
    except JournalNotFound:
        return None


def _show(listener: Listener, step: Any, record: StepRecord, shown: dict[str, str]) -> None:
    before = shown.get(step.name)
    if before is None:
        listener.step_started(step)
    # A step between invocations ("waiting") has not ended: it shows once, when it does.
    if record.status in ("succeeded", "failed") and before != record.status:
        listener.step_ended(step, record)
    shown[step.name] = record.status
