"""The readiness checks: each one asks whether one thing a failover relies on holds now, and says why not.

A check returns the one line that says what it saw when it passes and raises `NotReady` with the reason when it does
not; an AWS error it cannot judge through (a dark region, a denied read) is the evaluation's to report as unknown.
Region checks run once per region with that region's clients; estate checks read each region through its own clients
(the target's data, the source's replication). They reuse what the runbooks check before they move anything (the
preflight, the gate rule, the lock, the canary freshness), so evaluate says what a failover would find.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.drills import plans as drills
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.store import S3EvidenceBucket
from dr_runbooks.observe import probes, traffic
from dr_runbooks.orchestration.catalog import deployed_in
from dr_runbooks.readiness.schedule import longest_gap
from dr_runbooks.runbooks import canary, preflight
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import (
    Topology,
    database_function_name,
    parameter_name,
    runbook_function_name,
    state_machine_arn,
    state_machine_name,
)

#: What a backup or copy job may take beyond its rule's schedule before its recovery point counts as late.
BACKUP_JOB_ALLOWANCE = timedelta(hours=2)
#: What a scheduled drill may take (and its retries) beyond its schedule before it counts as missed.
DRILL_ALLOWANCE = timedelta(days=1)
#: The two data sets the DR vault must hold copies of (AWS Backup's resource types): records, chart archive.
DATA_SETS = {"Aurora": "records cluster", "S3": "chart archive"}
#: The drills whose last run must have passed within their schedule: runbook -> the label its run ids carry.
SCHEDULED_DRILLS = {drills.RESTORE_DRILL: drills.RESTORE_LABEL, drills.GAME_DAY: drills.GAME_DAY_LABEL}


class NotReady(Exception):
    """The check failed; `str()` is the reason the operator reads."""


@dataclass(frozen=True)
class Scope:
    """What every check gets: probe clients, the topology, who writes and where a failover would go, the runbooks
    evaluated, and the moment of the evaluation."""

    aws: AwsSession
    topology: Topology
    writer: str | None
    target: str
    runbooks: tuple[str, ...]
    now: datetime
    #: How the newest heartbeat/canary row of a region's database is read when not by connecting from here: on AWS
    #: the runbook function is outside the records VPC and asks the database function of that region.
    newest_row: Callable[[str], datetime | None] | None = None

    @property
    def source(self) -> str:
        return self.topology.partner(self.target)

    def client(self, service: str, region: str) -> Any:
        return self.aws.client(service, region, probe=True)


def _refusal(check: Callable[[], Any]) -> Any:
    """A preflight's refusal is this check's failure."""
    try:
        return check()
    except Refused as refused:
        raise NotReady(str(refused)) from None


# --- region checks -------------------------------------------------------------------------------------------


#: The error codes AWS answers a read of a resource that does not exist with, by service.
_NOT_FOUND = frozenset({"NoSuchBucket", "404", "DBClusterNotFoundFault", "ResourceNotFoundException", "NotFound"})


def resources(scope: Scope, region: str) -> str:
    """The topology's names exist here, in the states the runbooks need."""
    here, client = scope.topology.in_region(region), scope.client
    problems = []

    def read(what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ClientError as error:
            if error.response["Error"]["Code"] not in _NOT_FOUND:
                raise
            problems.append(f"{what} does not exist")
            return None

    for bucket in (here.chart_bucket, here.evidence_bucket):
        found = read(f"bucket {bucket}",
                     lambda bucket=bucket: client("s3", region).get_bucket_versioning(Bucket=bucket))
        if found is not None and found.get("Status") != "Enabled":
            problems.append(f"bucket {bucket} versioning is {found.get('Status') or 'off'}")
    cluster = read(f"cluster {here.db_cluster_id}", lambda: probes.db_cluster(client("rds", region),
                                                                               here.db_cluster_id))
    if cluster is not None and cluster["Status"] != "available":
        problems.append(f"cluster {here.db_cluster_id} is {cluster['Status']}")
    read(f"vault {here.backup_vault}", lambda: client("backup", region).describe_backup_vault(
        BackupVaultName=here.backup_vault))
    table = read(f"table {here.runbook_table}", lambda: client("dynamodb", region).describe_table(
        TableName=here.runbook_table))
    if table is not None and table["Table"]["TableStatus"] != "ACTIVE":
        problems.append(f"table {here.runbook_table} is {table['Table']['TableStatus']}")
    read(f"topic {here.oncall_topic_arn}", lambda: client("sns", region).get_topic_attributes(
        TopicArn=here.oncall_topic_arn))
    if problems:
        raise NotReady("; ".join(problems))
    return "buckets, cluster, vault, runbook table and on-call topic exist as the topology names them"


def keys(scope: Scope, region: str) -> str:
    alias = scope.topology.in_region(region).kms_key_alias
    key = scope.client("kms", region).describe_key(KeyId=alias)["KeyMetadata"]
    if not key.get("Enabled") or key.get("KeyState") != "Enabled":
        raise NotReady(f"key {alias} is {key.get('KeyState')}: nothing encrypted with it can be read")
    return f"{alias} enabled"


def secrets(scope: Scope, region: str) -> str:
    """The database secret is here (a failover reads it in the target), and a replica is in sync."""
    name, partner = scope.topology.db_secret_name, scope.topology.partner(region)
    secret = scope.client("secretsmanager", region).describe_secret(SecretId=name)
    if secret.get("DeletedDate"):
        raise NotReady(f"secret {name} is scheduled for deletion")
    replicas = {replica["Region"]: replica for replica in secret.get("ReplicationStatus", ())}
    if partner in replicas and replicas[partner].get("Status") != "InSync":
        raise NotReady(f"secret {name}'s replica in {partner} is {replicas[partner].get('Status')}: "
                       f"{replicas[partner].get('StatusMessage', '')}".rstrip(": "))
    return f"{name} present" + (f", replica in {partner} in sync" if partner in replicas else "")


def alarms(scope: Scope, region: str) -> str:
    """Every alarm of the region exists and notifies the region's on-call topic."""
    here = scope.topology.in_region(region)
    cloudwatch = scope.client("cloudwatch", region)
    # One alarm a call: DescribeAlarms naming several is authorized on every alarm (`alarm:*`), one on that alarm.
    found = {alarm["AlarmName"]: alarm for name in here.alarm_names
             for alarm in cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]}
    missing = [name for name in here.alarm_names if name not in found]
    unwired = [name for name, alarm in found.items() if here.oncall_topic_arn not in alarm.get("AlarmActions", ())]
    if missing or unwired:
        raise NotReady("; ".join(filter(None, (missing and f"missing: {', '.join(missing)}",
                                               unwired and f"not wired to {here.oncall_topic_arn}: "
                                                           f"{', '.join(sorted(unwired))}"))))
    return f"{len(found)} alarms notify {here.oncall_topic_arn.rpartition(':')[2]}"


def orchestration(scope: Scope, region: str) -> str:
    """The state machines of the runbooks deployed here and both functions exist (`drctl <runbook> --remote`)."""
    topology = scope.topology
    wanted = [name for name in deployed_in(region, topology.dr_region) if name in scope.runbooks]
    sfn, functions = scope.client("stepfunctions", region), scope.client("lambda", region)
    missing = []
    for runbook in wanted:
        try:
            sfn.describe_state_machine(stateMachineArn=state_machine_arn(topology, region, runbook))
        except ClientError as error:
            if error.response["Error"]["Code"] != "StateMachineDoesNotExist":
                raise
            missing.append(f"state machine {state_machine_name(topology.env_name, runbook)}")
    for function in (runbook_function_name(topology.env_name), database_function_name(topology.env_name)):
        try:
            functions.get_function(FunctionName=function)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            missing.append(f"function {function}")
    if missing:
        raise NotReady(f"missing in {region}: {', '.join(missing)}")
    return f"{len(wanted)} state machines and both functions exist"


def s3_replication(scope: Scope, region: str) -> str:
    """Replication from this region's chart bucket to the partner's: enabled, RTC on, nothing failed or backed up
    (S3 publishes the RTC metrics in the source region)."""
    here, there = scope.topology.in_region(region), scope.topology.in_region(scope.topology.partner(region))
    rules = [rule for rule in probes.s3_replication(scope.client("s3", region), scope.client("cloudwatch", region),
                                                    here.chart_bucket) if rule.destination_bucket == there.chart_bucket]
    rule = rules[0] if rules else None
    problem = preflight.replication_problem(rule, here.chart_bucket, there.chart_bucket, there.region)
    if problem:
        raise NotReady(problem)
    assert rule is not None
    if not rule.time_control:
        raise NotReady(f"S3 replication rule {rule.rule_id} has Replication Time Control off: no 15-minute promise "
                       "and no latency metrics")
    return (f"{rule.rule_id} enabled with RTC; pending {rule.pending_operations or 0:.0f}, failed "
            f"{rule.failed_operations or 0:.0f}")


REGION_CHECKS: dict[str, Callable[[Scope, str], str]] = {
    "resources": resources, "keys": keys, "secrets": secrets, "alarms": alarms, "orchestration": orchestration,
    "s3-replication": s3_replication,
}


# --- estate checks -------------------------------------------------------------------------------------------


def topology(scope: Scope) -> str:
    """The topology each region publishes is the same, and the one this evaluation uses."""
    texts = {region: scope.client("ssm", region).get_parameter(Name=parameter_name(scope.topology.env_name))[
        "Parameter"]["Value"] for region in scope.topology.regions}
    expected = json.loads(scope.topology.to_json())
    for region, text in texts.items():
        differs = sorted(key for key, value in json.loads(text).items() if expected.get(key) != value)
        differs += sorted(set(expected) - set(json.loads(text)))
        if differs:
            other = scope.topology.partner(region)
            raise NotReady(f"the topology in {region} differs from {other}'s in {', '.join(differs)}: redeploy the "
                           f"stacks of {region}")
    return f"identical in {' and '.join(texts)}"


def aurora(scope: Scope) -> str:
    """The target is a healthy, connected secondary lagging within the RPO, and the heartbeat it holds is fresh."""
    target, rpo = scope.target, scope.topology.rpo_minutes * 60
    seen = _refusal(lambda: preflight.observe_database(scope.aws, scope.topology, target))
    _refusal(lambda: preflight.healthy_secondary(scope.topology, target, seen))
    _refusal(lambda: preflight.lag_within_rpo(scope.topology, target, seen))
    cluster = probes.global_cluster(scope.client("rds", target), scope.topology.global_cluster_id)
    resyncing = [member.cluster_id for member in cluster.members if not member.connected]
    if resyncing:
        raise NotReady(f"members not connected: {', '.join(resyncing)}")
    if scope.newest_row is None:
        fresh = preflight.target_freshness(scope.aws, scope.topology, target)
    else:
        newest = canary.newest_object(scope.client("s3", target), scope.topology.in_region(target).chart_bucket)
        fresh = canary.freshness_of(scope.newest_row(target), newest, datetime.now(UTC))
    loss = fresh["expected_data_loss_seconds"]
    if loss is None:
        raise NotReady(f"nothing bounds a failover's loss in {target}: newest heartbeat row "
                       f"{fresh['newest_row_at']}, object {fresh['newest_object_at']}"
                       + (f" ({fresh['row_error']})" if fresh.get("row_error") else ""))
    if loss > rpo:
        raise NotReady(f"the newest heartbeat {target} holds is {loss:.0f} s old, beyond the RPO of {rpo} s")
    return (f"{target} connected, lag {seen['observed_lag_seconds']:.1f} s, newest heartbeat {loss:.0f} s old "
            f"(RPO {rpo} s)")


def traffic_gates(scope: Scope) -> str:
    """A failover to the target would let it into DNS: the gates as the regions know them (`traffic.read_gates`), the
    gate rule applied from the target alone (`traffic.failover_forecast`)."""
    topology = scope.topology
    if topology.traffic is None:
        return "traffic is not managed in this environment"
    alarms_seen: dict[str, dict[str, str] | None] = {}
    records: dict[str, dict[str, dict[str, Any]] | None] = {}
    for region, here in topology.regions.items():
        names = [gate.alarm_name for gate in topology.traffic.gates.values() if gate.alarm_region == region]
        try:
            alarms_seen[region] = probes.alarm_states(scope.client("cloudwatch", region), names)
            records[region] = traffic.gate_records(scope.client("dynamodb", region), here.runbook_table,
                                                   topology.env_name)
        except (ClientError, BotoCoreError):
            alarms_seen[region] = records[region] = None
    forecast = traffic.failover_forecast(topology, scope.target, traffic.read_gates(topology, alarms_seen, records))
    if forecast.lets_target_in is not True:
        raise NotReady(forecast.sentence)
    return forecast.sentence


def recovery_points(scope: Scope) -> str:
    """The DR vault (the target's) holds copies of both data sets newer than the source's backup rules promise, no
    copy job toward it failed since, and its vault lock is on."""
    topology, target, source = scope.topology, scope.target, scope.source
    vault, source_vault = topology.in_region(target).backup_vault, topology.in_region(source).backup_vault
    vault_arn = f"arn:aws:backup:{target}:{topology.account}:backup-vault:{vault}"
    promise = _backup_promise(scope.client("backup", source), vault_arn)
    backup = scope.client("backup", target)
    if not backup.describe_backup_vault(BackupVaultName=vault).get("Locked"):
        raise NotReady(f"vault {vault} has no vault lock: its recovery points can be deleted")
    newest: dict[str, datetime] = {}
    for page in backup.get_paginator("list_recovery_points_by_backup_vault").paginate(BackupVaultName=vault):
        for point in page["RecoveryPoints"]:
            copied = str(point.get("SourceBackupVaultArn", "")).endswith(f":backup-vault:{source_vault}")
            kind = point.get("ResourceType")
            if copied and point.get("Status") == "COMPLETED" and kind in DATA_SETS:
                newest[kind] = max(newest.get(kind, point["CreationDate"]), point["CreationDate"])
    late = []
    for kind, data_set in DATA_SETS.items():
        age = scope.now - newest[kind] if kind in newest else None
        if age is None or age > promise:
            late.append(f"{data_set}: " + ("no copy" if age is None else f"newest copy {_hours(age)} old"))
    if late:
        raise NotReady(f"in {vault}, {'; '.join(late)}; the backup rules of {source} promise one every "
                       f"{_hours(promise - BACKUP_JOB_ALLOWANCE)} (+{_hours(BACKUP_JOB_ALLOWANCE)} for the jobs)")
    failed = [job for job in scope.client("backup", source).list_copy_jobs(ByState="FAILED")["CopyJobs"]
              if job.get("DestinationBackupVaultArn") == vault_arn and job["CreationDate"] > scope.now - promise]
    if failed:
        raise NotReady(f"{len(failed)} copy jobs to {vault} failed in the last {_hours(promise)}: "
                       f"{failed[0].get('StatusMessage') or failed[0]['CopyJobId']}")
    return (f"{vault} locked; newest copies: " + ", ".join(
        f"{DATA_SETS[kind]} {_hours(scope.now - when)} old" for kind, when in sorted(newest.items())))


def _backup_promise(backup: Any, vault_arn: str) -> timedelta:
    """The most frequent schedule of the rules that copy into `vault_arn`, plus the jobs' allowance."""
    gaps = []
    for plan in backup.list_backup_plans()["BackupPlansList"]:
        for rule in backup.get_backup_plan(BackupPlanId=plan["BackupPlanId"])["BackupPlan"]["Rules"]:
            if any(action["DestinationBackupVaultArn"] == vault_arn for action in rule.get("CopyActions", ())):
                gaps.append(longest_gap(rule["ScheduleExpression"]))
    if not gaps:
        raise NotReady(f"no backup rule copies into {vault_arn.rpartition(':')[2]}")
    return min(gaps) + BACKUP_JOB_ALLOWANCE


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def lock(scope: Scope) -> str:
    """The runbook lock is free, or held by a live run (one in progress): a dead holder blocks every runbook."""
    runbook_lock = RunLock.of_environment(scope.aws, scope.topology, scope.target)
    holders = runbook_lock.holders()
    dead = [holder for holder in holders if not holder.alive]
    if dead:
        raise NotReady(runbook_lock.describe(dead[0]))
    if holders:
        return f"held by live run {holders[0].run_id}"
    return "free"


def drills_passed(scope: Scope) -> str:
    """The last restore drill and game day passed within their schedules (EventBridge Scheduler's, in the DR region,
    where they run and keep their evidence). A disabled schedule promises nothing."""
    dr = scope.topology.dr_region
    scheduler = scope.client("scheduler", dr)
    evidence = S3EvidenceBucket(scope.client("s3", dr), scope.topology.in_region(dr).evidence_bucket)
    names = evidence.names(scope.topology.env_name)
    said, late = [], []
    for runbook, label in SCHEDULED_DRILLS.items():
        name = state_machine_name(scope.topology.env_name, runbook)
        try:
            schedule = scheduler.get_schedule(Name=name)
        except scheduler.exceptions.ResourceNotFoundException:
            late.append(f"{runbook}: no schedule {name} in {dr}")
            continue
        if schedule.get("State") != "ENABLED":
            said.append(f"{runbook} not scheduled")
            continue
        due = scope.now - longest_gap(schedule["ScheduleExpression"]) - DRILL_ALLOWANCE
        last = _last_passed(evidence, [name for name in names if f"-{label}-" in name.rpartition("/")[2]])
        if last is None or last.ended_at < due:
            late.append(f"{runbook}: " + ("no passed run" if last is None else f"last passed {last.ended_at:%Y-%m-%d}")
                        + f", schedule {schedule['ScheduleExpression']}")
        else:
            said.append(f"{runbook} passed {_hours(scope.now - last.ended_at)} ago")
    if late:
        raise NotReady("; ".join(late))
    return "; ".join(said)


def _last_passed(evidence: S3EvidenceBucket, names: list[str]) -> EvidenceRecord | None:
    """The newest record among `names` that passed (names sort oldest first)."""
    for name in reversed(names):
        record = EvidenceRecord.model_validate_json(evidence.get(name))
        if record.passed:
            return record
    return None
