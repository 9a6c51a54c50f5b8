"""The IAM actions each step of the on-call plans calls, on which resources of the topology: what `drctl evaluate`
simulates against the roles that run the steps, so a role that lost a permission is found before the outage.

Beside the plans (`plans.py`) because they describe the same steps: a step's `calls` say what it does for people, its
permissions here say what IAM must allow for it. `RUN` holds what every run does besides its steps (journal, lock,
evidence), `ON_AWS` what the runbook function adds (the line to on-call). Resources are templates filled from the
topology (`resources_for`): concrete ARNs, as `iam:SimulatePrincipalPolicy` evaluates statements against the ARN a
request would carry. A run id in an object key is a placeholder (`readiness-check`): the policies scope objects by
prefix. Context keys the policies' conditions test (`cloudwatch:namespace`, `s3:prefix`) are given as the call would
give them.

Who calls: `drctl` runs every step as the dr-operator role; on AWS the runbook function of the target region runs the
steps, except those that connect to a records database (`Step.database`), which the database function of that
database's region runs (stacks/orchestration.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from dr_runbooks.topology import (
    TRAFFIC_GATE_NAMESPACE,
    Topology,
    database_function_name,
    runbook_function_name,
)

#: The object-key placeholder for a run id.
RUN_ID_PLACEHOLDER = "readiness-check"


class Permission(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: str
    #: An ARN template: `{name}` from `resources_for`.
    resource: str
    #: Condition keys the request carries (`iam:SimulatePrincipalPolicy` ContextEntries).
    context: tuple[tuple[str, str], ...] = ()


def _p(action: str, resource: str, **context: str) -> Permission:
    return Permission(action=action, resource=resource,
                      context=tuple((key.replace("__", ":"), value) for key, value in context.items()))


def _database(region: str) -> tuple[Permission, ...]:
    """A step connecting to `region`'s records database: find its endpoint, read the secret."""
    return (_p("rds:DescribeDBClusters", f"{{{region}_cluster_arn}}"),
            _p("secretsmanager:GetSecretValue", f"{{{region}_secret_arn}}"))


_GATES = (
    _p("cloudwatch:PutMetricData", "*", cloudwatch__namespace=TRAFFIC_GATE_NAMESPACE),
    _p("cloudwatch:DescribeAlarms", "{target_gate_alarm_arn}"),
    _p("dynamodb:PutItem", "{target_table_arn}"),
)
_CONFIRM_DNS = (_p("route53:TestDNSAnswer", "*"),)
_ARCHIVE_WRITABLE = (_p("s3:GetReplicationConfiguration", "{target_bucket_arn}"),
                     _p("s3:PutObject", f"{{target_bucket_arn}}/dr-probe/{RUN_ID_PLACEHOLDER}"))
_GLOBAL_CLUSTER = (_p("rds:DescribeGlobalClusters", "{global_cluster_arn}"),)

#: What every run does outside its steps, in the target region: journal and lock, evidence.
RUN: tuple[Permission, ...] = (
    *(_p(f"dynamodb:{action}", "{target_table_arn}") for action in ("GetItem", "PutItem", "UpdateItem",
                                                                     "DeleteItem", "Query")),
    _p("s3:PutObject", f"{{target_evidence_arn}}/{RUN_ID_PLACEHOLDER}.json"),
)
#: What a run on Step Functions does besides: the runbook function's line to on-call when it finishes.
ON_AWS: tuple[Permission, ...] = (_p("sns:Publish", "{target_topic_arn}"),)
#: Finding the newest canary and heartbeat objects: a listing of each prefix (`canary.newest_object`).
_NEWEST_OBJECTS = tuple(_p("s3:ListBucket", "{target_bucket_arn}", s3__prefix=prefix)
                        for prefix in ("dr-canary/", "dr-heartbeat/"))

#: runbook -> step -> the permissions it needs.
PERMISSIONS: dict[str, dict[str, tuple[Permission, ...]]] = {
    "switchover": {
        "canary-row": _database("source"),
        "canary-object": (_p("s3:PutObject", f"{{source_bucket_arn}}/dr-canary/{RUN_ID_PLACEHOLDER}"),),
        "aurora-switchover": (_p("rds:SwitchoverGlobalCluster", "{global_cluster_arn}"),
                              _p("rds:SwitchoverGlobalCluster", "{target_cluster_arn}"), *_GLOBAL_CLUSTER),
        "canary-object-arrived": (_p("s3:GetObject", f"{{target_bucket_arn}}/dr-canary/{RUN_ID_PLACEHOLDER}"),),
        "canary-row-arrived": _database("target"),
        "archive-writable": _ARCHIVE_WRITABLE,
        "shift-traffic": _GATES,
        "confirm-dns": _CONFIRM_DNS,
        "record-objectives": (),
    },
    "failover": {
        "find-last-canaries": (*_database("target"), *_NEWEST_OBJECTS),
        "aurora-failover": (_p("rds:FailoverGlobalCluster", "{global_cluster_arn}"),
                            _p("rds:FailoverGlobalCluster", "{target_cluster_arn}"), *_GLOBAL_CLUSTER),
        "archive-writable": _ARCHIVE_WRITABLE,
        "shift-traffic": _GATES,
        "confirm-dns": _CONFIRM_DNS,
        "writer-canary": _database("target"),
        "record-objectives": (),
    },
    "failback": {
        "reattached": (*_GLOBAL_CLUSTER, _p("cloudwatch:GetMetricStatistics", "*")),
        "keep-lost-writes": (_p("rds:DescribeDBClusterSnapshots", "{target_cluster_arn}"),),
        "canary-row": _database("source"),
        "canary-object": (_p("s3:PutObject", f"{{source_bucket_arn}}/dr-canary/{RUN_ID_PLACEHOLDER}"),),
        "canary-row-arrived": _database("target"),
        "canary-object-arrived": (_p("s3:GetObject", f"{{target_bucket_arn}}/dr-canary/{RUN_ID_PLACEHOLDER}"),),
        "shift-traffic": _GATES,
        "confirm-dns": _CONFIRM_DNS,
    },
}


def resources_for(topology: Topology, target: str) -> dict[str, str]:
    """The names the templates use, for a run toward `target`. A secret's ARN ends in six characters AWS chose; the
    policies match them with `-*`, so any six stand for them here."""
    account, source = topology.account, topology.partner(target)
    names = {"account": account,
             "global_cluster_arn": f"arn:aws:rds::{account}:global-cluster:{topology.global_cluster_id}"}
    for role, region in (("target", target), ("source", source)):
        here = topology.in_region(region)
        names |= {
            f"{role}_cluster_arn": f"arn:aws:rds:{region}:{account}:cluster:{here.db_cluster_id}",
            f"{role}_secret_arn": f"arn:aws:secretsmanager:{region}:{account}:secret:{topology.db_secret_name}-AbCdEf",
            f"{role}_bucket_arn": f"arn:aws:s3:::{here.chart_bucket}",
            f"{role}_evidence_arn": f"arn:aws:s3:::{here.evidence_bucket}",
            f"{role}_table_arn": f"arn:aws:dynamodb:{region}:{account}:table/{here.runbook_table}",
            f"{role}_topic_arn": here.oncall_topic_arn,
        }
    gate = topology.traffic.gates[source] if topology.traffic else None
    names["target_gate_alarm_arn"] = (f"arn:aws:cloudwatch:{gate.alarm_region}:{account}:alarm:{gate.alarm_name}"
                                      if gate else f"arn:aws:cloudwatch:{target}:{account}:alarm:*")
    return names


def function_role_arn(topology: Topology, region: str, database: bool) -> str:
    """The role of the runbook (or database) function of `region`: `<function name>-<region>` (stacks/orchestration)."""
    name = (database_function_name if database else runbook_function_name)(topology.env_name)
    return f"arn:aws:iam::{topology.account}:role/{name}-{region}"
