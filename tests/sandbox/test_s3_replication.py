"""S3 cross-region replication against AWS's documented behaviour (S3 User Guide, "Replicating objects")."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.s3_replication import matching_rules

EAST, WEST = "us-east-1", "us-west-1"


def drain(sandbox: Sandbox) -> None:
    sandbox.action("replication-drain", timeout=10)


@pytest.fixture(scope="module")
def charts(sandbox: Sandbox) -> tuple[str, str]:
    topology = sandbox.topology
    return topology.regions[EAST].chart_bucket, topology.regions[WEST].chart_bucket


def test_a_new_version_is_replicated_with_its_version_id_checksum_and_metadata(sandbox, charts):
    source, destination = charts
    body = b"%PDF-1.7 chart"
    put = sandbox.client("s3", EAST).put_object(Bucket=source, Key="charts/p1/pt1/s1.pdf", Body=body,
                                                 ChecksumAlgorithm="SHA256", Metadata={"scan-id": "s1"},
                                                 ContentType="application/pdf")
    drain(sandbox)
    replica = sandbox.client("s3", WEST).get_object(Bucket=destination, Key="charts/p1/pt1/s1.pdf",
                                                    ChecksumMode="ENABLED")
    assert replica["VersionId"] == put["VersionId"]
    assert replica["Body"].read() == body
    assert replica["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert replica["Metadata"] == {"scan-id": "s1"}
    assert replica["ContentType"] == "application/pdf"


def test_the_source_reports_completed_and_the_copy_reports_replica(sandbox, charts):
    source, destination = charts
    sandbox.client("s3", EAST).put_object(Bucket=source, Key="charts/status.pdf", Body=b"x")
    drain(sandbox)
    assert sandbox.client("s3", EAST).head_object(Bucket=source, Key="charts/status.pdf")["ReplicationStatus"] == (
        "COMPLETED")
    assert sandbox.client("s3", WEST).head_object(Bucket=destination, Key="charts/status.pdf")[
        "ReplicationStatus"] == "REPLICA"


def test_replicas_are_encrypted_with_the_destinations_key_and_keep_object_lock(sandbox, charts):
    source, destination = charts
    sandbox.client("s3", EAST).put_object(Bucket=source, Key="charts/locked.pdf", Body=b"x",
                                          ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate="2040-01-01")
    drain(sandbox)
    replica = sandbox.client("s3", WEST).head_object(Bucket=destination, Key="charts/locked.pdf")
    west_key = sandbox.client("kms", WEST).describe_key(KeyId=sandbox.topology.regions[WEST].kms_key_alias)
    assert replica["SSEKMSKeyId"] == west_key["KeyMetadata"]["Arn"]
    assert (replica["ObjectLockMode"], replica["ObjectLockRetainUntilDate"].year) == ("COMPLIANCE", 2040)


def test_replication_works_both_ways_and_a_replica_is_not_replicated_back(sandbox, charts):
    source, destination = charts
    east, west = sandbox.client("s3", EAST), sandbox.client("s3", WEST)
    west.put_object(Bucket=destination, Key="charts/from-west.pdf", Body=b"w")
    drain(sandbox)
    assert east.head_object(Bucket=source, Key="charts/from-west.pdf")["ReplicationStatus"] == "REPLICA"
    east.put_object(Bucket=source, Key="charts/ping.pdf", Body=b"e")
    drain(sandbox)
    for client, bucket in ((east, source), (west, destination)):
        for key in ("charts/from-west.pdf", "charts/ping.pdf"):
            assert len(client.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]) == 1


def test_a_delete_marker_is_replicated_when_the_rule_enables_it(sandbox, charts):
    source, destination = charts
    east, west = sandbox.client("s3", EAST), sandbox.client("s3", WEST)
    east.put_object(Bucket=source, Key="charts/gone.pdf", Body=b"x")
    drain(sandbox)
    marker = east.delete_object(Bucket=source, Key="charts/gone.pdf")
    drain(sandbox)
    versions = west.list_object_versions(Bucket=destination, Prefix="charts/gone.pdf")
    assert [m["VersionId"] for m in versions["DeleteMarkers"]] == [marker["VersionId"]]
    with pytest.raises(ClientError):
        west.head_object(Bucket=destination, Key="charts/gone.pdf")


def test_delete_markers_from_delete_objects_are_replicated(sandbox, charts):
    source, destination = charts
    east, west = sandbox.client("s3", EAST), sandbox.client("s3", WEST)
    for key in ("charts/batch/a.pdf", "charts/batch/b.pdf"):
        east.put_object(Bucket=source, Key=key, Body=b"x")
    drain(sandbox)
    east.delete_objects(Bucket=source, Delete={"Objects": [{"Key": "charts/batch/a.pdf"},
                                                           {"Key": "charts/batch/b.pdf"}]})
    drain(sandbox)
    markers = west.list_object_versions(Bucket=destination, Prefix="charts/batch/")["DeleteMarkers"]
    assert sorted(m["Key"] for m in markers) == ["charts/batch/a.pdf", "charts/batch/b.pdf"]


def test_deleting_a_specific_version_is_not_replicated(sandbox):
    bucket_east, bucket_west = "plain-east-versions", "plain-west-versions"
    east, west = two_buckets(sandbox, bucket_east, bucket_west, {
        "ID": "all", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Enabled"},
        "Destination": {"Bucket": f"arn:aws:s3:::{bucket_west}"}})
    version = east.put_object(Bucket=bucket_east, Key="k", Body=b"x")["VersionId"]
    drain(sandbox)
    east.delete_object(Bucket=bucket_east, Key="k", VersionId=version)
    drain(sandbox)
    assert west.get_object(Bucket=bucket_west, Key="k")["VersionId"] == version


def two_buckets(sandbox: Sandbox, east_name: str, west_name: str, *rules: dict):
    east, west = sandbox.client("s3", EAST), sandbox.client("s3", WEST)
    east.create_bucket(Bucket=east_name)
    west.create_bucket(Bucket=west_name, CreateBucketConfiguration={"LocationConstraint": WEST})
    for client, name in ((east, east_name), (west, west_name)):
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    east.put_bucket_replication(Bucket=east_name, ReplicationConfiguration={
        "Role": "arn:aws:iam::123456789012:role/r", "Rules": list(rules)})
    return east, west


def test_only_objects_matching_the_rules_filter_replicate(sandbox):
    east, west = two_buckets(sandbox, "filter-east", "filter-west", {
        "ID": "charts-only", "Status": "Enabled", "Priority": 1,
        "Filter": {"And": {"Prefix": "charts/", "Tags": [{"Key": "replicate", "Value": "yes"}]}},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": "arn:aws:s3:::filter-west"}})
    east.put_object(Bucket="filter-east", Key="charts/tagged", Body=b"x", Tagging="replicate=yes")
    east.put_object(Bucket="filter-east", Key="charts/untagged", Body=b"x")
    east.put_object(Bucket="filter-east", Key="logs/tagged", Body=b"x", Tagging="replicate=yes")
    drain(sandbox)
    assert [o["Key"] for o in west.list_objects_v2(Bucket="filter-west").get("Contents", [])] == ["charts/tagged"]
    assert "ReplicationStatus" not in east.head_object(Bucket="filter-east", Key="logs/tagged")


def test_a_disabled_rule_replicates_nothing(sandbox):
    east, west = two_buckets(sandbox, "disabled-east", "disabled-west", {
        "ID": "off", "Status": "Disabled", "Priority": 1, "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": "arn:aws:s3:::disabled-west"}})
    east.put_object(Bucket="disabled-east", Key="k", Body=b"x")
    drain(sandbox)
    assert west.list_objects_v2(Bucket="disabled-west")["KeyCount"] == 0


def test_delete_markers_are_not_replicated_when_the_rule_disables_it(sandbox):
    east, west = two_buckets(sandbox, "nodm-east", "nodm-west", {
        "ID": "no-delete-markers", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": "arn:aws:s3:::nodm-west"}})
    east.put_object(Bucket="nodm-east", Key="k", Body=b"x")
    drain(sandbox)
    east.delete_object(Bucket="nodm-east", Key="k")
    drain(sandbox)
    assert west.get_object(Bucket="nodm-west", Key="k")["Body"].read() == b"x"


def test_kms_encrypted_objects_replicate_only_when_the_rule_selects_them(sandbox):
    east, west = two_buckets(sandbox, "kms-east", "kms-west", {
        "ID": "no-kms", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": "arn:aws:s3:::kms-west"}})
    key = sandbox.client("kms", EAST).create_key()["KeyMetadata"]["Arn"]
    east.put_object(Bucket="kms-east", Key="kms", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    east.put_object(Bucket="kms-east", Key="plain", Body=b"x")
    drain(sandbox)
    assert [o["Key"] for o in west.list_objects_v2(Bucket="kms-west")["Contents"]] == ["plain"]


def test_copies_and_multipart_uploads_are_replicated(sandbox):
    # Plain buckets: moto refuses CopyObject into an Object Lock bucket (it wants a header boto3 does not send).
    east, west = two_buckets(sandbox, "copy-east", "copy-west", {
        "ID": "all", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": "arn:aws:s3:::copy-west"}})
    east.put_object(Bucket="copy-east", Key="original", Body=b"o")
    east.copy_object(Bucket="copy-east", Key="copy", CopySource={"Bucket": "copy-east", "Key": "original"})
    upload = east.create_multipart_upload(Bucket="copy-east", Key="big")
    part = east.upload_part(Bucket="copy-east", Key="big", UploadId=upload["UploadId"], PartNumber=1,
                            Body=b"t" * 1024)
    east.complete_multipart_upload(Bucket="copy-east", Key="big", UploadId=upload["UploadId"],
                                   MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    drain(sandbox)
    assert west.get_object(Bucket="copy-west", Key="copy")["Body"].read() == b"o"
    big = west.get_object(Bucket="copy-west", Key="big")
    assert (big["Body"].read(), big["ETag"]) == (b"t" * 1024, east.head_object(Bucket="copy-east", Key="big")["ETag"])


def test_paused_replication_holds_writes_pending_until_resumed(sandbox, sandbox_faults, charts):
    source, destination = charts
    east, west = sandbox.client("s3", EAST), sandbox.client("s3", WEST)
    sandbox_faults.pause_replication()
    east.put_object(Bucket=source, Key="charts/during-outage.pdf", Body=b"x")
    time.sleep(0.2)
    assert east.head_object(Bucket=source, Key="charts/during-outage.pdf")["ReplicationStatus"] == "PENDING"
    assert sandbox.status()["replication"]["backlog"] == 1
    with pytest.raises(ClientError):
        west.head_object(Bucket=destination, Key="charts/during-outage.pdf")
    sandbox_faults.resume_replication()
    drain(sandbox)
    assert west.head_object(Bucket=destination, Key="charts/during-outage.pdf")["ReplicationStatus"] == "REPLICA"


def test_a_lag_delays_replication_by_about_that_long(sandbox, charts):
    source = charts[0]
    sandbox.action("replication-lag", seconds=0.5)
    try:
        started = time.monotonic()
        sandbox.client("s3", EAST).put_object(Bucket=source, Key="charts/lagged.pdf", Body=b"x")
        drain(sandbox)
        assert time.monotonic() - started >= 0.5
    finally:
        sandbox.action("replication-lag", seconds=0)


def test_the_highest_priority_rule_wins_for_one_destination():
    configuration = {"Rule": [
        {"ID": "low", "Status": "Enabled", "Priority": "1", "Filter": {"Prefix": ""},
         "Destination": {"Bucket": "arn:aws:s3:::d"}},
        {"ID": "high", "Status": "Enabled", "Priority": "2", "Filter": {"Prefix": "charts/"},
         "Destination": {"Bucket": "arn:aws:s3:::d"}},
    ]}
    rules = matching_rules(configuration, "charts/x", {}, kms_encrypted=False, delete_marker=False)
    assert [rule["ID"] for rule in rules] == ["high"]


def test_a_legacy_rule_replicates_delete_markers_and_a_tag_rule_never_does():
    legacy = {"Rule": {"ID": "v1", "Status": "Enabled", "Prefix": "", "Destination": {"Bucket": "arn:aws:s3:::d"}}}
    tagged = {"Rule": {"ID": "tag", "Status": "Enabled", "Filter": {"Tag": {"Key": "a", "Value": "b"}},
                       "DeleteMarkerReplication": {"Status": "Enabled"}, "Destination": {"Bucket": "arn:aws:s3:::d"}}}
    assert matching_rules(legacy, "k", {}, kms_encrypted=False, delete_marker=True)
    assert not matching_rules(tagged, "k", {}, kms_encrypted=False, delete_marker=True)


def test_draining_a_paused_backlog_is_refused_with_a_clear_message(sandbox, sandbox_faults, charts):
    from ehr_dr_sandbox.faults import SandboxControlError

    sandbox_faults.pause_replication()
    sandbox.client("s3", EAST).put_object(Bucket=charts[0], Key="charts/paused.pdf", Body=b"x")
    with pytest.raises(SandboxControlError, match="replication is paused"):
        drain(sandbox)


def test_get_bucket_replication_answers_the_configuration_as_it_was_put(sandbox):
    rule = {"ID": "as-put", "Status": "Enabled", "Priority": 7, "Filter": {"Prefix": "charts/"},
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
            "Destination": {"Bucket": "arn:aws:s3:::roundtrip-west", "StorageClass": "STANDARD_IA"}}
    east, _ = two_buckets(sandbox, "roundtrip-east", "roundtrip-west", rule)
    answered = east.get_bucket_replication(Bucket="roundtrip-east")["ReplicationConfiguration"]
    assert answered == {"Role": "arn:aws:iam::123456789012:role/r", "Rules": [rule]}


def replication_metric(sandbox: Sandbox, source: str, destination: str, metric: str,
                       statistic: str = "Maximum") -> float:
    now = datetime.now(UTC)
    points = sandbox.client("cloudwatch", EAST).get_metric_statistics(
        Namespace="AWS/S3", MetricName=metric, StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1), Period=60, Statistics=[statistic],
        Dimensions=[{"Name": "SourceBucket", "Value": source}, {"Name": "DestinationBucket", "Value": destination},
                    {"Name": "RuleId", "Value": f"charts-{EAST}-to-{WEST}"}])["Datapoints"]
    return max(points, key=lambda point: point["Timestamp"])[statistic]


def test_rtc_metrics_show_the_backlog_while_paused_and_clear_after(sandbox, sandbox_faults, charts):
    source, destination = charts
    drain(sandbox)
    sandbox_faults.pause_replication()
    for number in range(3):
        sandbox.client("s3", EAST).put_object(Bucket=source, Key=f"charts/backlog/{number}.pdf", Body=b"x")
    time.sleep(0.3)
    assert replication_metric(sandbox, source, destination, "OperationsPendingReplication") == 3
    assert replication_metric(sandbox, source, destination, "ReplicationLatency") >= 0.3
    sandbox_faults.resume_replication()
    drain(sandbox)
    # One-minute resolution: the minute's Maximum still shows the backlog; a datapoint of 0 was put after it.
    assert replication_metric(sandbox, source, destination, "OperationsPendingReplication", "Minimum") == 0


def test_a_replica_key_that_does_not_exist_fails_the_replication(sandbox):
    east, west = two_buckets(sandbox, "nokey-east", "nokey-west", {
        "ID": "missing-key", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": "arn:aws:s3:::nokey-west", "EncryptionConfiguration": {
            "ReplicaKmsKeyID": "arn:aws:kms:us-west-1:123456789012:alias/none"}}})
    failed_before = sandbox.status()["replication"]["failed"]
    east.put_object(Bucket="nokey-east", Key="k", Body=b"x")
    drain(sandbox)
    assert east.head_object(Bucket="nokey-east", Key="k")["ReplicationStatus"] == "FAILED"
    assert west.list_objects_v2(Bucket="nokey-west")["KeyCount"] == 0
    assert sandbox.status()["replication"]["failed"] == failed_before + 1
