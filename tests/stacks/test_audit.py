"""Audit: a multi-region, validated, encrypted trail with chart data events; GuardDuty and Config in both regions."""

from __future__ import annotations

from typing import Any

from stack_assembly import Estate


def _trail(estate: Estate) -> dict[str, Any]:
    return estate.only("audit", estate.config.primary_region, "AWS::CloudTrail::Trail")


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


def test_trail_bucket_has_object_lock_in_compliance_mode(estate: Estate) -> None:
    buckets = estate.resources("audit", estate.config.primary_region, "AWS::S3::Bucket").values()
    (bucket,) = [b["Properties"] for b in buckets if "-trail-" in b["Properties"].get("BucketName", "")]
    assert bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"


def test_guardduty_is_on_in_each_region(estate: Estate, region: str) -> None:
    assert estate.only("audit", region, "AWS::GuardDuty::Detector")["Enable"] is True


def test_config_records_into_the_evidence_bucket_in_each_region(estate: Estate, region: str) -> None:
    assert estate.only("audit", region, "AWS::Config::ConfigurationRecorder")["RecordingGroup"]["AllSupported"]
    channel = estate.only("audit", region, "AWS::Config::DeliveryChannel")
    assert channel["S3BucketName"] == estate.topology.in_region(region).evidence_bucket


def test_hipaa_conformance_pack_is_deployed_in_each_region(estate: Estate, region: str) -> None:
    pack = estate.only("audit", region, "AWS::Config::ConformancePack")
    assert "hipaa-security" in pack["ConformancePackName"]
    assert "S3_BUCKET_SSL_REQUESTS_ONLY" in pack["TemplateBody"]


def test_break_glass_use_raises_an_alarm_that_pages_on_call(estate: Estate) -> None:
    primary = estate.config.primary_region
    metric_filter = estate.only("audit", primary, "AWS::Logs::MetricFilter")
    assert estate.topology.role_arns["break-glass"] in metric_filter["FilterPattern"]
    alarm = estate.only("audit", primary, "AWS::CloudWatch::Alarm")
    assert alarm["AlarmName"].endswith("break-glass-assumed")
    assert alarm["AlarmActions"] == [estate.topology.in_region(primary).oncall_topic_arn]
