"""Re-driving replication: the source's current version copied in place, bytes, checksum and metadata unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dr_runbooks.verify.compare import ReplicationComparison
from dr_runbooks.verify.model import Difference, ObjectState
from dr_runbooks.verify.repair import redrive, redrive_all


def _versions(side, key):
    return side.client.list_object_versions(Bucket=side.bucket, Prefix=key)["Versions"]


def test_a_redrive_makes_a_new_current_version_with_the_same_bytes_and_checksum(archives):
    source = archives.source
    source.client.put_object(Bucket=source.bucket, Key="charts/p000/a.pdf", Body=b"%PDF", ChecksumAlgorithm="SHA256",
                             ContentType="application/pdf", Metadata={"scan-id": "a"})
    before = source.client.head_object(Bucket=source.bucket, Key="charts/p000/a.pdf", ChecksumMode="ENABLED")
    repair = redrive(source.client, source.bucket, "charts/p000/a.pdf")
    after = source.client.head_object(Bucket=source.bucket, Key="charts/p000/a.pdf", ChecksumMode="ENABLED")
    assert repair.error is None and repair.source_version_id == before["VersionId"]
    assert after["VersionId"] == repair.new_version_id != before["VersionId"]
    assert (after["ChecksumSHA256"], after["ContentType"], after["Metadata"]) == (
        before["ChecksumSHA256"], "application/pdf", {"scan-id": "a"}
    )
    assert source.client.get_object(Bucket=source.bucket, Key="charts/p000/a.pdf")["Body"].read() == b"%PDF"


def test_a_redrive_under_object_lock_keeps_the_locked_version(archives):
    client = archives.source.client
    client.create_bucket(Bucket="locked", CreateBucketConfiguration={"LocationConstraint": "us-west-2"},
                         ObjectLockEnabledForBucket=True)
    client.put_object(Bucket="locked", Key="a.pdf", Body=b"x", ChecksumAlgorithm="SHA256", ObjectLockMode="COMPLIANCE",
                      ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1))
    assert redrive(client, "locked", "a.pdf").error is None
    assert len(client.list_object_versions(Bucket="locked")["Versions"]) == 2


def test_a_key_that_is_gone_is_reported_not_raised(archives):
    repair = redrive(archives.source.client, archives.source.bucket, "charts/nope.pdf")
    assert repair.new_version_id is None and "404" in repair.error


def test_only_differences_a_new_source_version_fixes_are_redriven(archives):
    archives.put("charts/p000/missing.pdf", replicate=False)
    archives.replica.client.put_object(Bucket=archives.replica.bucket, Key="charts/p000/extra.pdf", Body=b"x")
    report = ReplicationComparison(archives.source, archives.replica).run()
    repairs = redrive_all(archives.source.client, archives.source.bucket, report.differences)
    assert [repair.key for repair in repairs] == ["charts/p000/missing.pdf"]
    assert len(_versions(archives.source, "charts/p000/missing.pdf")) == 2


def test_a_delete_marker_is_never_redriven():
    marker = ObjectState(key="a", delete_marker=True)
    assert not Difference(key="a", kind="missing-on-replica", source=marker).repairable


def test_a_redrive_into_a_bucket_with_default_retention_is_accepted(archives):
    client = archives.source.client
    client.create_bucket(Bucket="defaults", CreateBucketConfiguration={"LocationConstraint": "us-west-2"},
                         ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(Bucket="defaults", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 7}}})
    client.put_object(Bucket="defaults", Key="a.pdf", Body=b"x", ChecksumAlgorithm="SHA256")
    assert redrive(client, "defaults", "a.pdf").error is None
