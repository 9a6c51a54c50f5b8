"""The orchestration stack's resources in the sandbox: the runbook state machines, the two functions of each region,
and the schedules (of the scheduled runbooks where their machines are, the heartbeat and the readiness
evaluation in both), by the stacks' names.

They exist so that what looks for them finds them (`drctl evaluate`, `drctl <runbook> --remote`), as deployed by
`stacks/orchestration.py`: each state machine's definition is generated from its plan (`orchestration.definition`),
each schedule carries the config's expression and state. Nothing here runs them: moto stores a function's code
without running it (Lambda invoke needs Docker) and EventBridge Scheduler never fires in moto; the sandbox's own
threads play the heartbeat and the backup plans instead. The functions' roles are created if absent (Lambda refuses a
role that does not exist: "The role defined for the function cannot be assumed by Lambda"), trusted by Lambda only.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.orchestration.catalog import EVALUATION_RATE, RUNBOOKS, SCHEDULED, deployed_in
from dr_runbooks.orchestration.definition import definition
from dr_runbooks.topology import (
    Topology,
    database_function_name,
    evaluation_schedule_name,
    heartbeat_schedule_name,
    runbook_function_name,
    state_machine_arn,
    state_machine_name,
)

_LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"Service": "lambda.amazonaws.com"}}]}


def _code() -> bytes:
    """A zip holding the handler's module path (moto keeps it; nothing runs it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("dr_runbooks/orchestration/handler.py", "# the runbook package is deployed by the stacks\n")
    return buffer.getvalue()


def _role(iam: Any, name: str) -> str:
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(_LAMBDA_TRUST))["Role"]["Arn"]


def provision(aws: Callable[[str, str], Any], config: DeploymentConfig, topology: Topology, region: str) -> None:
    account, env_name = topology.account, topology.env_name
    functions = {}
    for name in (runbook_function_name(env_name), database_function_name(env_name)):
        role = _role(aws("iam", region), f"{name}-{region}")
        functions[name] = aws("lambda", region).create_function(
            FunctionName=name, Runtime="python3.11", Role=role, Handler="dr_runbooks.orchestration.handler.handler",
            Code={"ZipFile": _code()}, Timeout=900, MemorySize=512)["FunctionArn"]
    machines = {runbook: state_machine_arn(topology, region, runbook) for runbook in RUNBOOKS}
    states_role = f"arn:aws:iam::{account}:role/{state_machine_name(env_name, 'states')}-{region}"
    for runbook, entry in deployed_in(region, topology.dr_region).items():
        aws("stepfunctions", region).create_state_machine(
            name=state_machine_name(env_name, runbook), roleArn=states_role,
            definition=json.dumps(definition(entry.plan(), functions[runbook_function_name(env_name)], machines)))
    scheduler_role = f"arn:aws:iam::{account}:role/{state_machine_name(env_name, 'scheduler')}-{region}"

    def schedule(name: str, expression: str, target: str, payload: dict[str, Any], enabled: bool = True) -> None:
        aws("scheduler", region).create_schedule(
            Name=name, ScheduleExpression=expression, ScheduleExpressionTimezone=config.schedule_timezone,
            FlexibleTimeWindow={"Mode": "OFF"}, State="ENABLED" if enabled else "DISABLED",
            Target={"Arn": target, "RoleArn": scheduler_role, "Input": json.dumps(payload)})

    schedule(heartbeat_schedule_name(env_name), "rate(1 minute)", functions[database_function_name(env_name)],
             {"action": "heartbeat"})
    schedule(evaluation_schedule_name(env_name), EVALUATION_RATE, functions[runbook_function_name(env_name)],
             {"action": "evaluate"})
    for runbook, key in SCHEDULED:
        if runbook in deployed_in(region, topology.dr_region):
            schedule(state_machine_name(env_name, runbook), getattr(config, f"{key}_schedule"), machines[runbook],
                     {"target_region": region, "operator": "eventbridge-scheduler"},
                     enabled=getattr(config, f"{key}_enabled"))
