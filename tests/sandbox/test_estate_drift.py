"""The sandbox's estate held against the synthesized CDK templates: same names, same data-protection settings.

moto's CloudFormation silently skips most resource types, so the sandbox provisions by API instead; this test is what
keeps the two from drifting apart. It synthesizes the app with the sandbox's config (`sandbox_overrides`) and compares,
region by region, what a runbook relies on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.provision import sandbox_overrides

REGIONS = ("us-east-1", "us-west-1")
CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    from stacks.app import build_app, cdk_json_context

    context = cdk_json_context()
    app = build_app({**context, **sandbox_overrides(context)}, str(tmp_path_factory.mktemp("cdk.out")))
    return {stack.stack_name: stack.template for stack in app.synth().stacks}


def deployed(templates: dict[str, dict[str, Any]], region: str, resource_type: str) -> list[dict[str, Any]]:
    """Properties of every resource of a type in the region's stacks."""
    return [resource["Properties"] for name, template in templates.items() if name.endswith(f"-{region}")
            for resource in template["Resources"].values() if resource["Type"] == resource_type]


def bucket(templates: dict[str, dict[str, Any]], region: str, name: str) -> dict[str, Any]:
    return next(b for b in deployed(templates, region, "AWS::S3::Bucket") if b.get("BucketName") == name)


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("kind", ["chart_bucket", "evidence_bucket", "access_log_bucket"])
def test_buckets_have_the_deployed_versioning_lock_and_encryption(sandbox: Sandbox, templates, region, kind):
    name = getattr(sandbox.topology.regions[region], kind)
    template = bucket(templates, region, name)
    s3 = sandbox.client("s3", region)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == template["VersioningConfiguration"]["Status"]
    algorithm = template["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
        "SSEAlgorithm"]
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == algorithm
    if "ObjectLockConfiguration" in template:
        wanted = template["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
        lock = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
        assert (lock["Mode"], lock["Days"]) == (wanted["Mode"], wanted["Days"])


def replication_rules(templates: dict[str, dict[str, Any]], region: str, name: str) -> list[dict[str, Any]]:
    """The bucket's rules as deployed: its own property, or the PutBucketReplication call that a stack of the region
    makes once both buckets exist (the DR chart bucket's way back, stacks/archive_return.py)."""
    own = bucket(templates, region, name).get("ReplicationConfiguration")
    if own is not None:
        return own["Rules"]
    calls = [call["Create"] for call in deployed(templates, region, "Custom::AWS")]
    for create in calls:
        separator, parts = create["Fn::Join"] if isinstance(create, dict) else ("", [create])
        request = json.loads(separator.join(part if isinstance(part, str) else "ROLE" for part in parts))
        if request["action"] == "putBucketReplication" and request["parameters"]["Bucket"] == name:
            return request["parameters"]["ReplicationConfiguration"]["Rules"]
    raise AssertionError(f"no replication rule deployed for {name}")


@pytest.mark.parametrize("region", REGIONS)
def test_chart_replication_matches_the_deployed_rule(sandbox: Sandbox, templates, region):
    name = sandbox.topology.regions[region].chart_bucket
    wanted = replication_rules(templates, region, name)
    rules = sandbox.client("s3", region).get_bucket_replication(Bucket=name)["ReplicationConfiguration"]["Rules"]

    def essentials(rule: dict[str, Any]) -> tuple:
        destination = rule["Destination"]
        return (rule.get("Id") or rule.get("ID"), rule["Status"], int(rule["Priority"]), rule["Filter"],
                rule["DeleteMarkerReplication"], rule["SourceSelectionCriteria"], destination["Bucket"],
                destination["EncryptionConfiguration"], destination["ReplicationTime"], destination["Metrics"])

    assert [essentials(rule) for rule in rules] == [essentials(rule) for rule in wanted]


@pytest.mark.parametrize("region", REGIONS)
def test_names_of_tables_alarms_vaults_topics_keys_and_clusters_match(sandbox: Sandbox, templates, region):
    here = sandbox.topology.regions[region]
    table = sandbox.client("dynamodb", region).describe_table(TableName=here.runbook_table)["Table"]
    [deployed_table] = deployed(templates, region, "AWS::DynamoDB::Table")
    assert (table["TableName"], table["KeySchema"]) == (deployed_table["TableName"], deployed_table["KeySchema"])
    alarms = {a["AlarmName"] for a in deployed(templates, region, "AWS::CloudWatch::Alarm")}
    assert set(here.alarm_names) <= alarms
    assert {v["BackupVaultName"] for v in deployed(templates, region, "AWS::Backup::BackupVault")} == {
        here.backup_vault}
    assert {t["TopicName"] for t in deployed(templates, region, "AWS::SNS::Topic")} == {
        here.oncall_topic_arn.rpartition(":")[2]}
    assert {a["AliasName"] for a in deployed(templates, region, "AWS::KMS::Alias")} == {here.kms_key_alias}
    assert {c["DBClusterIdentifier"] for c in deployed(templates, region, "AWS::RDS::DBCluster")} == {
        here.db_cluster_id}


def test_global_cluster_and_secret_names_match(sandbox: Sandbox, templates):
    topology = sandbox.topology
    [global_cluster] = deployed(templates, topology.primary_region, "AWS::RDS::GlobalCluster")
    assert global_cluster["GlobalClusterIdentifier"] == topology.global_cluster_id
    [secret] = deployed(templates, topology.primary_region, "AWS::SecretsManager::Secret")
    assert secret["Name"] == topology.db_secret_name
    assert [r["Region"] for r in secret["ReplicaRegions"]] == [topology.dr_region]


@pytest.mark.parametrize("region", REGIONS)
def test_gate_alarms_match_the_deployed_metric_and_missing_data_rule(sandbox: Sandbox, templates, region):
    gate = next(g for g in sandbox.topology.traffic.gates.values() if g.alarm_region == region)
    wanted = next(a for a in deployed(templates, region, "AWS::CloudWatch::Alarm") if a["AlarmName"] == gate.alarm_name)
    alarm = sandbox.client("cloudwatch", region).describe_alarms(AlarmNames=[gate.alarm_name])["MetricAlarms"][0]
    fields = ("Namespace", "MetricName", "Threshold", "ComparisonOperator", "TreatMissingData", "EvaluationPeriods")
    assert {f: alarm[f] for f in fields} == {f: wanted[f] for f in fields}
    assert alarm["Dimensions"] == wanted["Dimensions"]


def test_each_record_has_the_deployed_health_check_types(sandbox: Sandbox, templates):
    stack = next(t for name, t in templates.items() if name.endswith(f"-traffic-{sandbox.config.primary_region}"))
    deployed_types = sorted(r["Properties"]["HealthCheckConfig"]["Type"] for r in stack["Resources"].values()
                            if r["Type"] == "AWS::Route53::HealthCheck")
    checks = sandbox.client("route53").list_health_checks()["HealthChecks"]
    assert sorted(c["HealthCheckConfig"]["Type"] for c in checks) == deployed_types
    records = [r["Properties"] for r in stack["Resources"].values() if r["Type"] == "AWS::Route53::RecordSet"]
    assert json.dumps(sorted(r["Failover"] for r in records)) == json.dumps(["PRIMARY", "SECONDARY"])


@pytest.mark.parametrize("region", REGIONS)
def test_regional_alarms_watch_the_deployed_metrics_with_the_deployed_thresholds(sandbox: Sandbox, templates,
                                                                                 region):
    here = sandbox.topology.regions[region]
    wanted = {a["AlarmName"]: a for a in deployed(templates, region, "AWS::CloudWatch::Alarm")}
    alarms = sandbox.client("cloudwatch", region).describe_alarms(AlarmNames=list(here.alarm_names))["MetricAlarms"]
    fields = ("Namespace", "MetricName", "Statistic", "Period", "Threshold", "ComparisonOperator", "TreatMissingData",
              "EvaluationPeriods")

    def shape(alarm: dict[str, Any]) -> tuple:
        dimensions = sorted((d["Name"], d["Value"]) for d in alarm.get("Dimensions") or [])
        return (*(alarm[f] for f in fields), dimensions)

    assert {a["AlarmName"]: shape(a) for a in alarms} == {name: shape(wanted[name]) for name in here.alarm_names}


@pytest.mark.parametrize("region", REGIONS)
def test_backup_plans_have_the_deployed_name_rules_and_copies(sandbox: Sandbox, templates, region):
    [wanted] = [p["BackupPlan"] for p in deployed(templates, region, "AWS::Backup::BackupPlan")]
    backup = sandbox.client("backup", region)
    [summary] = [p for p in backup.list_backup_plans()["BackupPlansList"]
                 if p["BackupPlanName"] == wanted["BackupPlanName"]]
    plan = backup.get_backup_plan(BackupPlanId=summary["BackupPlanId"])["BackupPlan"]

    def shape(rule: dict[str, Any]) -> tuple:
        copies = [(c["DestinationBackupVaultArn"], c["Lifecycle"]["DeleteAfterDays"]) for c in rule["CopyActions"]]
        return (rule["RuleName"], rule["ScheduleExpression"], rule["Lifecycle"]["DeleteAfterDays"],
                bool(rule.get("EnableContinuousBackup")), copies)

    assert sorted(map(shape, plan["Rules"])) == sorted(map(shape, wanted["BackupPlanRule"]))
