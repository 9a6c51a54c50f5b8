"""`drctl evaluate` on the sandbox: a healthy estate is ready; each break fails exactly its check, with its reason.

One sandbox for the module (`estate`: backups copied, a restore drill passed); each test breaks one thing, evaluates,
and puts it back before the next (in `finally`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import Result

from dr_runbooks.orchestration.catalog import RUNBOOKS
from dr_runbooks.orchestration.definition import definition
from dr_runbooks.readiness.evaluate import evaluate
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import (
    TRAFFIC_GATE_DIMENSION,
    TRAFFIC_GATE_METRIC,
    TRAFFIC_GATE_NAMESPACE,
    parameter_name,
    runbook_function_name,
    state_machine_arn,
    state_machine_name,
)
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.faults import FaultsClient

from .conftest import checks, evaluated, failing

Drctl = Callable[..., Result]


def test_a_healthy_estate_evaluates_ready(drctl: Drctl, estate: Sandbox) -> None:
    result = drctl("evaluate", "--output", "json")
    assert failing(result) == {}
    assert result.exit_code == 0
    assert evaluated(result)["verdict"] == f"READY to fail over to {estate.topology.dr_region}"


def test_every_check_is_a_line_of_the_table_with_its_verdict(drctl: Drctl, estate: Sandbox) -> None:
    result = drctl("evaluate")
    for line in ("permissions", "recovery-points", "s3-replication", "orchestration", "READY to fail over"):
        assert line in result.stdout


def test_an_unknown_runbook_is_refused_with_one_line(drctl: Drctl, estate: Sandbox) -> None:
    result = drctl("evaluate", "--runbook", "fail-over")
    assert result.exit_code == 2
    assert "unknown runbook 'fail-over'" in result.stderr


def test_a_disabled_replication_rule_fails_that_regions_replication_check(drctl: Drctl, estate: Sandbox) -> None:
    primary = estate.topology.in_region(estate.topology.primary_region)
    s3 = estate.client("s3", primary.region)
    configuration = s3.get_bucket_replication(Bucket=primary.chart_bucket)["ReplicationConfiguration"]
    disabled = {**configuration, "Rules": [{**rule, "Status": "Disabled"} for rule in configuration["Rules"]]}
    s3.put_bucket_replication(Bucket=primary.chart_bucket, ReplicationConfiguration=disabled)
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        s3.put_bucket_replication(Bucket=primary.chart_bucket, ReplicationConfiguration=configuration)
    assert result.exit_code == 1
    assert list(failing(result)) == [f"s3-replication ({primary.region})"]
    assert "is not enabled" in failing(result)[f"s3-replication ({primary.region})"]


def test_replication_paused_with_a_backlog_fails_the_replication_check(
    drctl: Drctl, estate: Sandbox, sandbox_faults: FaultsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the allowance for objects in flight shortened from 60 s to 1 s, so the backlog is old enough at once
    monkeypatch.setattr("dr_runbooks.runbooks.preflight.S3_IN_FLIGHT", timedelta(seconds=1))
    primary = estate.topology.in_region(estate.topology.primary_region)
    sandbox_faults.pause_replication()
    estate.client("s3", primary.region).put_object(Bucket=primary.chart_bucket, Key="charts/p1/x1/readiness.pdf",
                                                   Body=b"%PDF-1.7 readiness", ChecksumAlgorithm="SHA256")
    time.sleep(1.5)
    result = drctl("evaluate", "--output", "json")
    assert list(failing(result)) == [f"s3-replication ({primary.region})"]
    assert "1 pending operations" in failing(result)[f"s3-replication ({primary.region})"]


def test_a_closed_gate_of_the_target_fails_the_traffic_check(drctl: Drctl, estate: Sandbox) -> None:
    topology = estate.topology
    assert topology.traffic is not None
    gate = topology.traffic.gates[topology.dr_region]
    cloudwatch = estate.client("cloudwatch", gate.alarm_region)

    def put(value: float) -> None:
        cloudwatch.put_metric_data(Namespace=TRAFFIC_GATE_NAMESPACE, MetricData=[{
            "MetricName": TRAFFIC_GATE_METRIC, "Value": value,
            "Dimensions": [{"Name": TRAFFIC_GATE_DIMENSION, "Value": gate.dimension_value}]}])
        cloudwatch.set_alarm_state(AlarmName=gate.alarm_name, StateValue="ALARM" if value else "OK",
                                   StateReason="readiness test")

    put(1.0)
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        put(0.0)
    assert list(failing(result)) == ["traffic"]
    assert "DNS would stay on" in failing(result)["traffic"]


def test_a_lock_held_by_a_dead_run_fails_the_lock_check(drctl: Drctl, estate: Sandbox) -> None:
    topology = estate.topology
    dynamodb = estate.client("dynamodb", topology.dr_region)
    table, key = topology.in_region(topology.dr_region).runbook_table, {
        "pk": {"S": f"lock#{topology.env_name}"}, "sk": {"S": "lock"}}
    run_id, past = f"20261129T000000Z-failover-{topology.dr_region}-abcdef", time.time() - 3600
    dynamodb.put_item(TableName=table, Item={**key, "run_id": {"S": run_id}, "owner": {"S": "oncall"},
                                             "acquired_at": {"N": str(past)}, "expires_at": {"N": str(past + 60)}})
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        dynamodb.delete_item(TableName=table, Key=key)
    assert list(failing(result)) == ["lock"]
    assert f"drctl unlock --run-id {run_id}" in failing(result)["lock"]


def test_a_topology_changed_in_one_region_fails_the_topology_check(drctl: Drctl, estate: Sandbox) -> None:
    topology = estate.topology
    ssm, name = estate.client("ssm", topology.dr_region), parameter_name(topology.env_name)
    published = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Value=json.dumps({**json.loads(published), "rpo_minutes": 60}), Overwrite=True)
    try:
        result = drctl("evaluate", "--output", "json", "--region", topology.primary_region)
    finally:
        ssm.put_parameter(Name=name, Value=published, Overwrite=True)
    assert list(failing(result)) == ["topology"]
    assert failing(result)["topology"].startswith(f"the topology in {topology.dr_region} differs")
    assert "rpo_minutes" in failing(result)["topology"]


def test_copies_older_than_the_backup_rules_promise_fail_the_recovery_points_check(
    estate: Sandbox, sandbox_env: dict[str, str]
) -> None:
    """Evaluated four hours from now: the hourly rule promises a copy every hour, plus two for the jobs."""
    aws = AwsSession.from_options(endpoint_url=estate.endpoint_url)
    later = evaluate(aws, estate.topology, now=datetime.now(UTC) + timedelta(hours=4))
    failed = {check.name: check.reason for check in later.checks if check.verdict != "pass"}
    assert list(failed) == ["recovery-points"]
    vault = estate.topology.in_region(estate.topology.dr_region).backup_vault
    assert failed["recovery-points"].startswith(f"in {vault}, records cluster: newest copy 4.0 h old; chart archive: "
                                                "newest copy 4.0 h old; the backup rules of us-east-1 promise one "
                                                "every 1.0 h (+2.0 h for the jobs)")


def test_a_missing_state_machine_fails_that_regions_orchestration_check(drctl: Drctl, estate: Sandbox) -> None:
    topology, region = estate.topology, estate.topology.primary_region
    sfn = estate.client("stepfunctions", region)
    arn = state_machine_arn(topology, region, "failover")
    role = sfn.describe_state_machine(stateMachineArn=arn)["roleArn"]
    sfn.delete_state_machine(stateMachineArn=arn)
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        function = f"arn:aws:lambda:{region}:{topology.account}:function:{runbook_function_name(topology.env_name)}"
        sfn.create_state_machine(name=state_machine_name(topology.env_name, "failover"), roleArn=role,
                                 definition=json.dumps(definition(RUNBOOKS["failover"].plan(), function, {
                                     name: state_machine_arn(topology, region, name) for name in RUNBOOKS})))
    assert list(failing(result)) == [f"orchestration ({region})"]
    assert "state machine ehr-dr-demo-failover" in failing(result)[f"orchestration ({region})"]


def test_a_dark_region_is_reported_within_ten_seconds_not_fatal(
    drctl: Drctl, estate: Sandbox, sandbox_faults: FaultsClient
) -> None:
    primary = estate.topology.primary_region
    sandbox_faults.region_down(primary)
    started = time.monotonic()
    result = drctl("evaluate", "--output", "json")
    seconds = time.monotonic() - started
    assert result.exit_code == 1
    assert evaluated(result)["dark_regions"] == [primary]
    assert checks(result)[f"keys ({primary})"] == {**checks(result)[f"keys ({primary})"], "verdict": "unknown",
                                                   "reason": f"{primary} does not answer"}
    assert checks(result)[f"keys ({estate.topology.dr_region})"]["verdict"] == "pass"
    assert seconds < 10


def test_a_disabled_key_fails_that_regions_keys_check(drctl: Drctl, estate: Sandbox) -> None:
    region = estate.topology.primary_region
    kms, alias = estate.client("kms", region), estate.topology.in_region(region).kms_key_alias
    key_id = kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        kms.enable_key(KeyId=key_id)
    assert failing(result) == {f"keys ({region})": f"key {alias} is Disabled: nothing encrypted with it can be read"}


def test_an_alarm_no_longer_notifying_on_call_fails_that_regions_alarms_check(drctl: Drctl, estate: Sandbox) -> None:
    region = estate.topology.dr_region
    here = estate.topology.in_region(region)
    cloudwatch, name = estate.client("cloudwatch", region), here.alarm_names[0]
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    kept = {key: alarm[key] for key in ("AlarmName", "Namespace", "MetricName", "Statistic", "Period", "Threshold",
                                        "ComparisonOperator", "EvaluationPeriods", "Dimensions", "TreatMissingData",
                                        "AlarmActions", "OKActions")}
    cloudwatch.put_metric_alarm(**{**kept, "AlarmActions": [], "OKActions": []})
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        cloudwatch.put_metric_alarm(**kept)
    assert failing(result) == {f"alarms ({region})": f"not wired to {here.oncall_topic_arn}: {name}"}


def test_a_secret_scheduled_for_deletion_fails_that_regions_secrets_check(drctl: Drctl, estate: Sandbox) -> None:
    region = estate.topology.primary_region
    secrets, name = estate.client("secretsmanager", region), estate.topology.db_secret_name
    secrets.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        secrets.restore_secret(SecretId=name)
    assert failing(result) == {f"secrets ({region})": f"secret {name} is scheduled for deletion"}


def test_a_missing_on_call_topic_fails_that_regions_resources_check(drctl: Drctl, estate: Sandbox) -> None:
    region = estate.topology.dr_region
    here = estate.topology.in_region(region)
    sns = estate.client("sns", region)
    attributes = sns.get_topic_attributes(TopicArn=here.oncall_topic_arn)["Attributes"]
    sns.delete_topic(TopicArn=here.oncall_topic_arn)
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        sns.create_topic(Name=here.oncall_topic_arn.rpartition(":")[2],
                         Attributes={"KmsMasterKeyId": attributes["KmsMasterKeyId"]})
    assert failing(result) == {f"resources ({region})": f"topic {here.oncall_topic_arn} does not exist"}


def test_replication_without_rtc_fails_that_regions_replication_check(drctl: Drctl, estate: Sandbox) -> None:
    dr = estate.topology.in_region(estate.topology.dr_region)
    s3 = estate.client("s3", dr.region)
    configuration = s3.get_bucket_replication(Bucket=dr.chart_bucket)["ReplicationConfiguration"]
    without = {**configuration, "Rules": [
        {**rule, "Destination": {key: value for key, value in rule["Destination"].items()
                                 if key not in ("ReplicationTime", "Metrics")}} for rule in configuration["Rules"]]}
    s3.put_bucket_replication(Bucket=dr.chart_bucket, ReplicationConfiguration=without)
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        s3.put_bucket_replication(Bucket=dr.chart_bucket, ReplicationConfiguration=configuration)
    assert list(failing(result)) == [f"s3-replication ({dr.region})"]
    assert "Replication Time Control off" in failing(result)[f"s3-replication ({dr.region})"]


def test_a_permission_removed_from_the_operator_role_fails_the_permissions_check_naming_the_step(
    drctl: Drctl, estate: Sandbox
) -> None:
    """The sandbox's IAM holds the stacks' policies and simulates them (moto lacks iam:SimulatePrincipalPolicy)."""
    iam, role = estate.client("iam"), "ehr-dr-demo-dr-operator"
    action = "rds:FailoverGlobalCluster"
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        document = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])[
            "PolicyVersion"]["Document"]
        document = json.loads(document) if isinstance(document, str) else document
        if any(action in json.dumps(statement) for statement in document["Statement"]):
            break
    else:
        raise AssertionError(f"no policy of {role} allows {action}")

    def without(statement: dict[str, Any]) -> dict[str, Any]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        return {**statement, "Action": [name for name in actions if name != action]}

    narrowed = {**document, "Statement": [without(statement) for statement in document["Statement"]
                                          if without(statement)["Action"]]}
    new = iam.create_policy_version(PolicyArn=policy["Arn"], PolicyDocument=json.dumps(narrowed),
                                    SetAsDefault=True)["PolicyVersion"]["VersionId"]
    try:
        result = drctl("evaluate", "--runbook", "failover", "--output", "json")
    finally:
        iam.set_default_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        iam.delete_policy_version(PolicyArn=policy["Arn"], VersionId=new)
    cluster = estate.topology.in_region(estate.topology.dr_region).db_cluster_id
    assert result.exit_code == 1
    assert list(failing(result)) == ["permissions"]
    denials = failing(result)["permissions"].split("; ")
    assert sorted(denials) == sorted(
        f"failover step aurora-failover: {action} on {resource} denied to {role} (implicitDeny)"
        for resource in (f"arn:aws:rds::123456789012:global-cluster:{estate.topology.global_cluster_id}",
                         f"arn:aws:rds:us-west-1:123456789012:cluster:{cluster}"))


def test_a_switchover_in_flight_fails_the_aurora_check(
    drctl: Drctl, estate: Sandbox, aurora_timings: Callable[..., Any]
) -> None:
    """A switchover held `pending` (then cancelled, the writer unchanged): Aurora is already moving the writer."""
    topology = estate.topology
    aurora_timings(pending_seconds=5.0)
    estate.action("aurora-cancel")
    target = topology.in_region(topology.dr_region)
    estate.client("rds", topology.primary_region).switchover_global_cluster(
        GlobalClusterIdentifier=topology.global_cluster_id,
        TargetDbClusterIdentifier=f"arn:aws:rds:{target.region}:{topology.account}:cluster:{target.db_cluster_id}")
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        rds, deadline = estate.client("rds", topology.dr_region), time.monotonic() + 30
        while rds.describe_global_clusters(GlobalClusterIdentifier=topology.global_cluster_id)["GlobalClusters"][0].get(
                "FailoverState", {}).get("Status") and time.monotonic() < deadline:
            time.sleep(0.2)
    assert list(failing(result)) == ["aurora"]
    assert failing(result)["aurora"].startswith("Aurora is already moving the writer (FailoverState pending)")


def test_a_game_day_scheduled_but_never_passed_fails_the_drills_check(drctl: Drctl, estate: Sandbox) -> None:
    topology = estate.topology
    scheduler = estate.client("scheduler", topology.dr_region)
    name = state_machine_name(topology.env_name, "game-day")
    schedule = scheduler.get_schedule(Name=name)
    kept = {key: schedule[key] for key in ("Name", "ScheduleExpression", "ScheduleExpressionTimezone",
                                           "FlexibleTimeWindow", "Target", "State")}
    scheduler.update_schedule(**{**kept, "State": "ENABLED"})
    try:
        result = drctl("evaluate", "--output", "json")
    finally:
        scheduler.update_schedule(**kept)
    assert failing(result) == {"drills": f"game-day: no passed run, schedule {schedule['ScheduleExpression']}"}
