"""Audit: a multi-region, validated, encrypted trail with chart and evidence data events whose logs also land in the DR
region; GuardDuty, Config with the HIPAA Security rules in both regions."""

from __future__ import annotations

import json
from typing import Any

from stack_assembly import Estate

from stacks.hipaa_conformance_pack import DEPLOYED_RULES, ESTATE_RULES, EXCLUDED_RULES, RULE_PARAMETERS
from stacks.hipaa_official_rules import OFFICIAL_HIPAA_SECURITY_RULES


def _trail(estate: Estate) -> dict[str, Any]:
    return estate.only("audit", estate.config.primary_region, "AWS::CloudTrail::Trail")


def _trail_bucket(estate: Estate, region: str) -> dict[str, Any]:
    buckets = estate.resources("audit", region, "AWS::S3::Bucket").values()
    (bucket,) = [b["Properties"] for b in buckets if "-trail-" in b["Properties"].get("BucketName", "")]
    return bucket


def _key_alias_arn(estate: Estate, region: str) -> str:
    return f"arn:aws:kms:{region}:{estate.config.account}:{estate.topology.in_region(region).kms_key_alias}"


def test_trail_is_multi_region_with_log_file_validation(estate: Estate) -> None:
    trail = _trail(estate)
    assert trail["IsMultiRegionTrail"] is True
    assert trail["EnableLogFileValidation"] is True
    assert trail["IncludeGlobalServiceEvents"] is True
    assert trail["IsLogging"] is True


def test_trail_is_encrypted_and_delivers_to_cloudwatch_logs(estate: Estate) -> None:
    trail = _trail(estate)
    assert "KMSKeyId" in trail
    assert "CloudWatchLogsLogGroupArn" in trail and "CloudWatchLogsRoleArn" in trail


def test_trail_logs_every_read_and_write_of_both_chart_and_evidence_buckets(estate: Estate) -> None:
    (selector,) = _trail(estate)["EventSelectors"]
    assert selector["ReadWriteType"] == "All"
    (data,) = selector["DataResources"]
    assert data["Type"] == "AWS::S3::Object"
    assert set(data["Values"]) == {f"arn:aws:s3:::{bucket}/" for r in estate.topology.regions.values()
                                   for bucket in (r.chart_bucket, r.evidence_bucket)}


def test_each_region_has_a_trail_bucket_in_it_with_object_lock_in_compliance_mode(estate: Estate, region: str) -> None:
    bucket = _trail_bucket(estate, region)
    assert bucket["BucketName"].endswith(f"-{region}")
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"


def test_each_trail_bucket_is_encrypted_with_its_own_regions_key(estate: Estate, region: str) -> None:
    (rule,) = _trail_bucket(estate, region)["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key_import = rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::ImportValue"]
    assert f"keys-{region}" in key_import


def test_primary_trail_bucket_replicates_to_the_dr_trail_bucket_with_rtc_and_the_dr_key(estate: Estate) -> None:
    primary, dr = estate.regions
    (rule,) = _trail_bucket(estate, primary)["ReplicationConfiguration"]["Rules"]
    destination = rule["Destination"]
    assert destination["Bucket"] == f"arn:aws:s3:::{_trail_bucket(estate, dr)['BucketName']}"
    assert destination["EncryptionConfiguration"]["ReplicaKmsKeyID"] == _key_alias_arn(estate, dr)
    assert destination["ReplicationTime"] == {"Status": "Enabled", "Time": {"Minutes": 15}}
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}


def test_trail_replication_never_carries_a_deletion_to_the_dr_copy(estate: Estate) -> None:
    (rule,) = _trail_bucket(estate, estate.config.primary_region)["ReplicationConfiguration"]["Rules"]
    assert rule["DeleteMarkerReplication"] == {"Status": "Disabled"}
    assert "ReplicationConfiguration" not in _trail_bucket(estate, estate.config.dr_region)


def test_dr_region_has_its_own_trail_delivering_its_events_to_the_dr_trail_bucket(estate: Estate) -> None:
    dr = estate.config.dr_region
    trail = estate.only("audit", dr, "AWS::CloudTrail::Trail")
    assert trail["IsMultiRegionTrail"] is False and trail["IsLogging"] is True
    assert trail["EnableLogFileValidation"] is True and "KMSKeyId" in trail
    assert trail["S3BucketName"] == {"Ref": next(iter(
        lid for lid, b in estate.resources("audit", dr, "AWS::S3::Bucket").items()
        if "-trail-" in b["Properties"].get("BucketName", "")))}
    assert trail["S3KeyPrefix"] == "dr-trail"


def test_dr_trail_logs_data_events_of_the_dr_regions_chart_and_evidence_buckets(estate: Estate) -> None:
    dr = estate.topology.in_region(estate.config.dr_region)
    (selector,) = estate.only("audit", estate.config.dr_region, "AWS::CloudTrail::Trail")["EventSelectors"]
    (data,) = selector["DataResources"]
    assert set(data["Values"]) == {f"arn:aws:s3:::{dr.chart_bucket}/", f"arn:aws:s3:::{dr.evidence_bucket}/"}


def test_guardduty_is_on_in_each_region(estate: Estate, region: str) -> None:
    assert estate.only("audit", region, "AWS::GuardDuty::Detector")["Enable"] is True


def test_config_records_into_the_evidence_bucket_in_each_region(estate: Estate, region: str) -> None:
    assert estate.only("audit", region, "AWS::Config::ConfigurationRecorder")["RecordingGroup"]["AllSupported"]
    channel = estate.only("audit", region, "AWS::Config::DeliveryChannel")
    assert channel["S3BucketName"] == estate.topology.in_region(region).evidence_bucket


def _pack_rules(estate: Estate, region: str) -> dict[str, dict[str, Any]]:
    pack = estate.only("audit", region, "AWS::Config::ConformancePack")
    assert "hipaa-security" in pack["ConformancePackName"]
    rules = json.loads(pack["TemplateBody"])["Resources"].values()
    return {rule["Properties"]["Source"]["SourceIdentifier"]: rule["Properties"] for rule in rules}


def test_every_deployed_hipaa_rule_is_in_the_pack_in_each_region(estate: Estate, region: str) -> None:
    assert set(_pack_rules(estate, region)) == {*DEPLOYED_RULES, *ESTATE_RULES}


def test_deployed_and_excluded_rules_are_exactly_the_official_pack() -> None:
    assert len(OFFICIAL_HIPAA_SECURITY_RULES) == 130
    assert not set(DEPLOYED_RULES) & set(EXCLUDED_RULES)
    assert sorted([*DEPLOYED_RULES, *EXCLUDED_RULES]) == sorted(OFFICIAL_HIPAA_SECURITY_RULES)


def test_every_excluded_rule_has_a_reason() -> None:
    assert all(len(reason.split()) >= 4 for reason in EXCLUDED_RULES.values())


def test_the_issues_missing_rules_are_deployed() -> None:
    assert {"S3_BUCKET_DEFAULT_LOCK_ENABLED", "BACKUP_RECOVERY_POINT_MANUAL_DELETION_DISABLED",
            "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK", "AURORA_RESOURCES_PROTECTED_BY_BACKUP_PLAN",
            "RDS_SNAPSHOT_ENCRYPTED", "CLOUDTRAIL_S3_DATAEVENTS_ENABLED", "MFA_ENABLED_FOR_IAM_CONSOLE_ACCESS",
            "IAM_PASSWORD_POLICY", "ACCESS_KEYS_ROTATED", "VPC_DEFAULT_SECURITY_GROUP_CLOSED",
            "SECRETSMANAGER_USING_CMK"} <= set(DEPLOYED_RULES)


def test_parameters_go_only_to_deployed_rules() -> None:
    assert set(RULE_PARAMETERS) <= set(DEPLOYED_RULES)


def test_backup_rule_checks_the_plans_own_hourly_frequency_and_shortest_retention(estate: Estate, region: str) -> None:
    parameters = _pack_rules(estate, region)["BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK"]["InputParameters"]
    plan = estate.only("backup", region, "AWS::Backup::BackupPlan")["BackupPlan"]
    shortest = min(rule["Lifecycle"]["DeleteAfterDays"] for rule in plan["BackupPlanRule"])
    assert parameters == {"requiredFrequencyValue": "1", "requiredFrequencyUnit": "hours",
                          "requiredRetentionDays": str(shortest)}


def test_break_glass_use_raises_an_alarm_that_pages_on_call(estate: Estate) -> None:
    primary = estate.config.primary_region
    metric_filter = estate.only("audit", primary, "AWS::Logs::MetricFilter")
    assert estate.topology.role_arns["break-glass"] in metric_filter["FilterPattern"]
    alarm = estate.only("audit", primary, "AWS::CloudWatch::Alarm")
    assert alarm["AlarmName"].endswith("break-glass-assumed")
    assert alarm["AlarmActions"] == [estate.topology.in_region(primary).oncall_topic_arn]


def test_security_hub_is_on_in_each_region_with_the_default_standards(estate: Estate, region: str) -> None:
    assert estate.only("audit", region, "AWS::SecurityHub::Hub")["EnableDefaultStandards"] is True


def test_security_hub_aggregates_the_primary_regions_findings_into_the_dr_region(estate: Estate) -> None:
    primary, dr = estate.regions
    aggregator = estate.only("audit", dr, "AWS::SecurityHub::FindingAggregator")
    assert aggregator == {"RegionLinkingMode": "SPECIFIED_REGIONS", "Regions": [primary]}
    assert not estate.resources("audit", primary, "AWS::SecurityHub::FindingAggregator")


def test_inspector_scans_lambda_functions_in_each_region(estate: Estate, region: str) -> None:
    (enabler,) = estate.resources("audit", region, "Custom::AWS").values()
    create = json.loads(enabler["Properties"]["Create"])
    assert (create["service"], create["action"]) == ("Inspector2", "enable")
    assert create["parameters"] == {"accountIds": [estate.config.account], "resourceTypes": ["LAMBDA"]}
