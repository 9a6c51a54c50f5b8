"""The permissions check: every call the evaluated plans declare (`runbooks.permissions`), simulated with
`iam:SimulatePrincipalPolicy` for each role that would make it, on the topology's ARNs toward the target.

Who would make it: the dr-operator role (`drctl` runs every step as it), and on AWS the runbook function of the target
region, or for a step that connects to a records database the database function of that database's region. One
simulation per (role, resource, context), with every action declared on that resource: AWS evaluates each action
named against each resource given, so mixing resources would ask about pairs no step makes (IAM API Reference,
SimulatePrincipalPolicy: "ResourceArns").
"""

from __future__ import annotations

from collections import defaultdict

from botocore.exceptions import ClientError

from dr_runbooks.orchestration.catalog import RUNBOOKS
from dr_runbooks.readiness.checks import NotReady, Scope
from dr_runbooks.runbooks.permissions import (
    ON_AWS,
    PERMISSIONS,
    RUN,
    RUNS_IN,
    Permission,
    function_role_arn,
    resources_for,
)

#: How many denials the reason lists before it counts the rest.
SHOWN_DENIALS = 5

_Key = tuple[str, str, tuple[tuple[str, str], ...]]


def _wanted(scope: Scope) -> dict[_Key, dict[str, list[str]]]:
    """(role, resource, context) -> action -> the steps that need it ("<runbook> step <name>")."""
    topology = scope.topology
    operator = topology.role_arns["dr-operator"]
    wanted: dict[_Key, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))

    def need(permission: Permission, roles: tuple[str, ...], who: str, names: dict[str, str]) -> None:
        for role in roles:
            key = (role, permission.resource.format(**names), permission.context)
            wanted[key][permission.action].append(who)

    for runbook in scope.runbooks:
        if runbook not in PERMISSIONS:
            continue
        declared, plan = PERMISSIONS[runbook], RUNBOOKS[runbook].plan()
        undeclared = [step.name for step in plan.steps if step.name not in declared]
        if undeclared:
            raise NotReady(f"{runbook} steps without a permissions declaration: {', '.join(undeclared)}")
        # The region a run goes toward: the failover target, the DR region (drills), or the writer (retention sync).
        target = {"target": scope.target, "dr": topology.dr_region, "writer": scope.source}[RUNS_IN.get(runbook,
                                                                                                       "target")]
        names = resources_for(topology, target)
        for step in plan.steps:
            region = target if step.database != "source" else topology.partner(target)
            function = function_role_arn(topology, region, database=step.database is not None)
            for permission in declared[step.name]:
                need(permission, (operator, function), f"{runbook} step {step.name}", names)
        function = function_role_arn(topology, target, database=False)
        for permission in RUN:
            need(permission, (operator, function), f"{runbook} (journal, lock, evidence)", names)
        for permission in ON_AWS:
            need(permission, (function,), f"{runbook} (on-call line)", names)
    return wanted


def permissions(scope: Scope) -> str:
    iam = scope.client("iam", scope.target)
    wanted = _wanted(scope)
    denials: list[str] = []
    for (role, resource, context), actions in wanted.items():
        arguments = {"PolicySourceArn": role, "ActionNames": sorted(actions)}
        if resource != "*":
            arguments["ResourceArns"] = [resource]
        if context:
            arguments["ContextEntries"] = [{"ContextKeyName": name, "ContextKeyValues": [value],
                                            "ContextKeyType": "string"} for name, value in context]
        try:
            pages = list(iam.get_paginator("simulate_principal_policy").paginate(**arguments))
        except ClientError as error:
            if error.response["Error"]["Code"] != "NoSuchEntity":
                raise
            denials.append(f"role {role.rpartition('/')[2]} does not exist")
            continue
        for page in pages:
            for result in page["EvaluationResults"]:
                if result["EvalDecision"] != "allowed":
                    action = result["EvalActionName"]
                    denials.append(f"{actions[action][0]}: {action} on {resource} denied to "
                                   f"{role.rpartition('/')[2]} ({result['EvalDecision']})")
    if denials:
        unique = list(dict.fromkeys(denials))
        more = f"; and {len(unique) - SHOWN_DENIALS} more" if len(unique) > SHOWN_DENIALS else ""
        raise NotReady("; ".join(unique[:SHOWN_DENIALS]) + more)
    roles = {role for role, _, _ in wanted}
    calls = sum(len(actions) for actions in wanted.values())
    if not wanted:
        return "no runbook with declared permissions evaluated"
    runbooks = ", ".join(runbook for runbook in scope.runbooks if runbook in PERMISSIONS)
    return f"{calls} declared calls allowed for {len(roles)} roles ({runbooks})"
