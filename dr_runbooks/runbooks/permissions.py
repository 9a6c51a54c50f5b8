"""The IAM actions each step of the orchestrated plans (on-call, drills, retention sync) calls, on which resources
of the topology: what `drctl evaluate` simulates against the roles that run the steps, so a role that lost a
permission is found before the outage.

Beside the plans (`plans.py`) because they describe the same steps: a step's `calls` say what it does for people, its
permissions here say what IAM must allow for it. `RUN` holds what every run does besides its steps (journal, lock,
evidence), `ON_AWS` what the runbook function adds (the line to on-call). Resources are templates filled from the
topology (`resources_for`): concrete ARNs, as `iam:SimulatePrincipalPolicy` evaluates statements against the ARN a
request would carry. A run id in an object key is a placeholder (`readiness-check`): the policies scope objects by
prefix. Context keys the policies' conditions test (`cloudwatch:namespace`, `s3:prefix`) are given as the call would
give them.

Who calls: `drctl` runs every step as the dr-operator role; on AWS the runbook function of the target region runs the
steps, except those that connect to a records database (`Step.database`), which the database function of that
database's region runs (stacks/orchestration.py). The target of a drill is the DR region, of the retention sync the
writer's region (`RUNS_IN`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from dr_runbooks.topology import (
    TRAFFIC_GATE_NAMESPACE,
    Topology,
    database_function_name,
    drill_scratch_instance_name,
    drill_scratch_prefix,
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


# --- the drills and the retention sync ------------------------------------------------------------------------------
# Scratch resources are named `<drill_scratch_prefix>` + the run (`scratch_*`); the policies scope them by that prefix.

#: Finding scratch resources (`drills.scratch`): every cluster (DescribeDBClusters names none: `cluster:*`), the DB
#: instances of a cluster (a filter: `db:*`), every bucket.
_FIND_SCRATCH = (_p("rds:DescribeDBClusters", "{target_any_cluster_arn}"),
                 _p("rds:DescribeDBInstances", "{target_any_db_arn}"),
                 _p("s3:ListAllMyBuckets", "*"))
#: Removing them (`scratch.remove`): the instance, then the cluster; the bucket's versions listed, deleted
#: (DeleteObjects: s3:DeleteObject(Version) per key), then the bucket.
_REMOVE_SCRATCH = (
    *_FIND_SCRATCH,
    _p("rds:DeleteDBInstance", "{scratch_db_arn}"),
    _p("rds:DeleteDBCluster", "{scratch_cluster_arn}"),
    _p("s3:ListBucketVersions", "{scratch_bucket_arn}"),
    _p("s3:DeleteObject", f"{{scratch_bucket_arn}}/charts/{RUN_ID_PLACEHOLDER}"),
    _p("s3:DeleteObjectVersion", f"{{scratch_bucket_arn}}/charts/{RUN_ID_PLACEHOLDER}"),
    _p("s3:DeleteBucket", "{scratch_bucket_arn}"),
)
#: A restore job (`drills.restore._restore`): the recovery point's metadata, the job started on it with the DR backup
#: role passed to AWS Backup, its status (DescribeRestoreJob has no resource-level permission).
def _restore(point: str) -> tuple[Permission, ...]:
    return (_p("backup:GetRecoveryPointRestoreMetadata", point), _p("backup:StartRestoreJob", point),
            _p("iam:PassRole", "{target_backup_role_arn}", iam__PassedToService="backup.amazonaws.com"),
            _p("backup:DescribeRestoreJob", "*"))


#: Logging in to the scratch cluster (`restore._restored_endpoint`): an available instance, a fresh master password.
_SCRATCH_LOGIN = (_p("rds:DescribeDBInstances", "{target_any_db_arn}"),
                  _p("rds:ModifyDBCluster", "{scratch_cluster_arn}"),
                  _p("rds:DescribeDBClusters", "{scratch_cluster_arn}"))
#: Comparing both chart archives (`verify.compare`, current listing): ListObjectsV2 of each, then ListObjectVersions
#: of each for a key on one side only.
_COMPARE_ARCHIVES = tuple(_p(action, f"{{{side}_bucket_arn}}") for side in ("target", "source")
                          for action in ("s3:ListBucket", "s3:ListBucketVersions"))
#: A game day's leg: on AWS the state machine starts the child's execution (its own role); the step reads the child's
#: journal in the leg's region and, from a terminal, seals its evidence there.
def _leg(region: str) -> tuple[Permission, ...]:
    return (*(_p(f"dynamodb:{action}", f"{{{region}_table_arn}}") for action in ("GetItem", "Query")),
            _p("s3:ListBucket", f"{{{region}_evidence_arn}}"))


#: The retention sync's manifest of moved patients, in the run's (the writer's) evidence bucket.
_MANIFEST = f"{{target_evidence_arn}}/lifecycle/moved/{RUN_ID_PLACEHOLDER}.json"
_CHART_VERSION = f"charts/{RUN_ID_PLACEHOLDER}"

PERMISSIONS |= {
    "restore-drill": {
        "clean-leftovers": _REMOVE_SCRATCH,
        "pick-recovery-points": (_p("backup:ListRecoveryPointsByBackupVault", "{target_vault_arn}"),),
        "restore-database": (_p("rds:DescribeDBClusters", "{target_any_cluster_arn}"),
                             _p("rds:DescribeDBClusters", "{target_cluster_arn}"),
                             *_restore("{database_recovery_point_arn}"),
                             _p("rds:AddTagsToResource", "{scratch_cluster_arn}")),
        "restore-archive": (_p("s3:ListAllMyBuckets", "*"), *_restore("{archive_recovery_point_arn}"),
                            _p("s3:PutBucketTagging", "{scratch_bucket_arn}")),
        "add-instance": (_p("rds:DescribeDBInstances", "{target_any_db_arn}"),
                         _p("rds:DescribeDBClusters", "{scratch_cluster_arn}"),
                         _p("rds:CreateDBInstance", "{scratch_db_arn}"),
                         _p("rds:DescribeDBInstances", "{scratch_db_arn}")),
        "validate-records": (*_SCRATCH_LOGIN, *_database("target")),
        "validate-charts": (*_SCRATCH_LOGIN, _p("s3:GetObject", f"{{scratch_bucket_arn}}/{_CHART_VERSION}")),
        "teardown": _REMOVE_SCRATCH,
        "verdict": (),
    },
    "verify-replication": {
        "compare-archives": _COMPARE_ARCHIVES,
        "verdict": (),
    },
    "game-day": {
        "switchover-to-dr": _leg("target"),
        "verify-replication": _COMPARE_ARCHIVES,
        "serve-from-dr": (*_database("target"), _p("s3:GetObject", f"{{target_bucket_arn}}/{_CHART_VERSION}")),
        "switchover-to-primary": _leg("source"),
        "verdict": (),
    },
    "retention-sync": {
        "find-moved": (*_database("target"), _p("s3:PutObject", _MANIFEST)),
        # Each version's retention read (GetObjectRetention) and extended; the same action covers a named version.
        "extend-retention": (_p("s3:GetObject", _MANIFEST),
                             *(_p(action, f"{{{side}_bucket_arn}}/{_CHART_VERSION}") for side in ("target", "source")
                               for action in ("s3:GetObjectRetention", "s3:PutObjectRetention")),
                             *(_p("s3:ListBucketVersions", f"{{{side}_bucket_arn}}") for side in ("target", "source"))),
        "mark-synced": (*_database("target"), _p("s3:GetObject", _MANIFEST)),
    },
}
#: Where a runbook's run goes, which fills the `target_*` names: the failover target (the on-call plans, the
#: default), the DR region (the drills, deployed there), or the region whose database writes (the retention sync).
RUNS_IN: dict[str, Literal["target", "dr", "writer"]] = {
    "restore-drill": "dr", "verify-replication": "dr", "game-day": "dr", "retention-sync": "writer"}


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
            f"{role}_vault_arn": f"arn:aws:backup:{region}:{account}:backup-vault:{here.backup_vault}",
            f"{role}_backup_role_arn": here.backup_role_arn,
            f"{role}_any_cluster_arn": f"arn:aws:rds:{region}:{account}:cluster:*",
            f"{role}_any_db_arn": f"arn:aws:rds:{region}:{account}:db:*",
        }
    scratch = f"{drill_scratch_prefix(topology.env_name)}{RUN_ID_PLACEHOLDER}"
    names |= {
        "scratch_cluster_arn": f"arn:aws:rds:{target}:{account}:cluster:{scratch}",
        "scratch_db_arn": f"arn:aws:rds:{target}:{account}:db:{drill_scratch_instance_name(scratch)}",
        "scratch_bucket_arn": f"arn:aws:s3:::{scratch}",
        # Recovery points in the vault: an Aurora one is a cluster snapshot AWS Backup names, an S3 one its own.
        "database_recovery_point_arn": f"arn:aws:rds:{target}:{account}:cluster-snapshot:awsbackup:job-"
                                       f"{RUN_ID_PLACEHOLDER}",
        "archive_recovery_point_arn": f"arn:aws:backup:{target}:{account}:recovery-point:{RUN_ID_PLACEHOLDER}",
    }
    gate = topology.traffic.gates[source] if topology.traffic else None
    names["target_gate_alarm_arn"] = (f"arn:aws:cloudwatch:{gate.alarm_region}:{account}:alarm:{gate.alarm_name}"
                                      if gate else f"arn:aws:cloudwatch:{target}:{account}:alarm:*")
    return names


def function_role_arn(topology: Topology, region: str, database: bool) -> str:
    """The role of the runbook (or database) function of `region`: `<function name>-<region>` (stacks/orchestration)."""
    name = (database_function_name if database else runbook_function_name)(topology.env_name)
    return f"arn:aws:iam::{topology.account}:role/{name}-{region}"
