"""The chart archive: write-once, encrypted, private, TLS-only, logged, replicated both ways within the RTC window."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from stack_assembly import Estate

from stacks.archive import retention_days


def _bucket(estate: Estate, concern: str, region: str, name: str) -> dict[str, Any]:
    for resource in estate.resources(concern, region, "AWS::S3::Bucket").values():
        if resource["Properties"].get("BucketName") == name:
            return resource["Properties"]
    raise AssertionError(f"no bucket {name} in {concern}-{region}")


def _charts(estate: Estate, region: str) -> dict[str, Any]:
    return _bucket(estate, "archive", region, estate.topology.in_region(region).chart_bucket)


def _way_back_configuration(estate: Estate) -> dict[str, Any]:
    """The DR bucket's replication configuration as the archive-return stack puts it (PutBucketReplication's input)."""
    (call,) = estate.resources("archive-return", estate.config.dr_region, "Custom::AWS").values()
    separator, parts = call["Properties"]["Create"]["Fn::Join"]  # the role's ARN is the one token in it
    request = json.loads(separator.join(part if isinstance(part, str) else "ROLE" for part in parts))
    assert (request["service"], request["action"]) == ("S3", "putBucketReplication")
    assert request["parameters"]["Bucket"] == estate.topology.in_region(estate.config.dr_region).chart_bucket
    assert request["parameters"]["ReplicationConfiguration"]["Role"] == "ROLE"
    return request["parameters"]["ReplicationConfiguration"]


def _rule(estate: Estate, region: str) -> dict[str, Any]:
    """The region's chart replication rule: the primary's is its bucket's property, the DR's is put by a call."""
    if region == estate.config.primary_region:
        (rule,) = _charts(estate, region)["ReplicationConfiguration"]["Rules"]
    else:
        (rule,) = _way_back_configuration(estate)["Rules"]
    return rule


def test_chart_bucket_object_lock_is_compliance_mode_for_the_configured_years(estate: Estate, region: str) -> None:
    lock = _charts(estate, region)["ObjectLockConfiguration"]
    years = estate.config.retention_years
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": retention_days(years)}


def test_retention_in_days_never_falls_short_of_the_years() -> None:
    assert retention_days(7) == 7 * 365 + 2  # two leap days in any 7 years
    assert all(retention_days(years) >= years * 365 + years // 4 for years in range(7, 101))


def test_chart_bucket_is_versioned_with_kms_bucket_keys(estate: Estate, region: str) -> None:
    charts = _charts(estate, region)
    assert charts["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = charts["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["BucketKeyEnabled"] is True
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def test_chart_bucket_blocks_all_public_access(estate: Estate, region: str) -> None:
    assert set(_charts(estate, region)["PublicAccessBlockConfiguration"].values()) == {True}


def test_chart_bucket_denies_requests_without_tls(estate: Estate, region: str) -> None:
    template = estate.template("archive", region)
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": cdk.assertions.Match.array_with([
                    cdk.assertions.Match.object_like({
                        "Effect": "Deny",
                        "Action": "s3:*",
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    })
                ])
            }
        },
    )


def test_chart_bucket_logs_access_to_the_regions_log_bucket(estate: Estate, region: str) -> None:
    target = _charts(estate, region)["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    buckets = estate.resources("archive", region, "AWS::S3::Bucket")
    assert buckets[target]["Properties"]["BucketName"] == estate.topology.in_region(region).access_log_bucket


def test_replication_meets_the_15_minute_time_control_with_metrics(estate: Estate, region: str) -> None:
    destination = _rule(estate, region)["Destination"]
    assert destination["ReplicationTime"] == {"Status": "Enabled", "Time": {"Minutes": 15}}
    assert destination["Metrics"] == {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}


def test_replication_goes_to_the_partner_bucket_encrypted_with_the_partner_key(estate: Estate, region: str) -> None:
    partner = estate.topology.partner(region)
    destination = _rule(estate, region)["Destination"]
    assert destination["Bucket"] == f"arn:aws:s3:::{estate.topology.in_region(partner).chart_bucket}"
    alias = estate.topology.in_region(partner).kms_key_alias
    assert destination["EncryptionConfiguration"]["ReplicaKmsKeyID"] == (
        f"arn:aws:kms:{partner}:{estate.config.account}:{alias}"
    )


def test_replication_carries_delete_markers_and_replica_modifications(estate: Estate, region: str) -> None:
    rule = _rule(estate, region)
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert rule["SourceSelectionCriteria"]["ReplicaModifications"] == {"Status": "Enabled"}
    assert rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"] == {"Status": "Enabled"}


def test_charts_go_cold_after_the_configured_age_and_expire_only_after_retention(estate: Estate, region: str) -> None:
    (rule,) = _charts(estate, region)["LifecycleConfiguration"]["Rules"]
    cold = estate.config.archive_cold_after_days
    assert rule["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": cold}]
    keep = _charts(estate, region)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Days"]
    assert rule["ExpirationInDays"] >= keep
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] >= keep


def test_dr_chart_bucket_gets_its_way_back_rule_from_the_archive_return_stack_not_its_own_property(
    estate: Estate,
) -> None:
    assert "ReplicationConfiguration" not in _charts(estate, estate.config.dr_region)
    assert _rule(estate, estate.config.dr_region)["ID"] == f"charts-{estate.config.dr_region}-to-" \
        f"{estate.config.primary_region}"


def test_way_back_rule_is_removed_with_the_archive_return_stack(estate: Estate) -> None:
    (call,) = estate.resources("archive-return", estate.config.dr_region, "Custom::AWS").values()
    delete = json.loads(call["Properties"]["Delete"])
    assert (delete["action"], delete["parameters"]) == (
        "deleteBucketReplication", {"Bucket": estate.topology.in_region(estate.config.dr_region).chart_bucket})


def test_both_directions_have_the_same_rule_shape(estate: Estate) -> None:
    primary, dr = (_rule(estate, region) for region in estate.regions)
    assert {key: value for key, value in primary.items() if key not in ("Id", "Destination")} == {
        key: value for key, value in dr.items() if key not in ("ID", "Destination")}
    assert primary["Destination"].keys() == dr["Destination"].keys()
