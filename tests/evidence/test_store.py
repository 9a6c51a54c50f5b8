"""Evidence storage: the local dir and the Object Lock bucket keep the chain; nothing is overwritten."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.evidence.chain import EvidenceError
from dr_runbooks.evidence.store import EvidenceLog, LocalEvidenceDir, S3EvidenceBucket, object_name, retain_until
from dr_runbooks.topology import build_topology


@pytest.fixture
def local(tmp_path):
    return LocalEvidenceDir(tmp_path / "evidence")


@pytest.fixture
def bucket():
    topology = build_topology(DeploymentConfig(env_name="demo", account="123456789012"))
    with mock_aws():
        session = boto3.session.Session(region_name="us-west-1")
        name = topology.in_region("us-west-1").evidence_bucket
        session.client("s3", region_name="us-west-1").create_bucket(
            Bucket=name,
            CreateBucketConfiguration={"LocationConstraint": "us-west-1"},
            ObjectLockEnabledForBucket=True,
        )
        yield S3EvidenceBucket.of_region(topology, "us-west-1", session)


def test_appended_records_load_back_as_an_intact_chain(local, make_record):
    log = EvidenceLog("demo", [local])
    appended = [log.append(make_record(run_id=f"run-{number}")) for number in range(3)]
    assert log.load_chain() == appended
    assert log.verify_chain() == []


def test_a_record_edited_on_disk_is_found(local, make_record):
    log = EvidenceLog("demo", [local])
    record = log.append(make_record())
    path = local.root / object_name(record)
    path.write_text(path.read_text().replace('"downtime_seconds": 120.0', '"downtime_seconds": 0.0'))
    assert log.verify_chain() == ["record 0 (run run-1) was edited: its content no longer matches its hash"]


def test_a_record_deleted_from_disk_is_found(local, make_record):
    log = EvidenceLog("demo", [local])
    first = log.append(make_record(run_id="a"))
    log.append(make_record(run_id="b"))
    (local.root / object_name(first)).unlink()
    assert "record 1 (run b) is at position 0" in log.verify_chain()[0]


def test_a_file_that_is_not_a_record_is_a_one_line_error(local, make_record):
    log = EvidenceLog("demo", [local])
    log.append(make_record())
    (local.root / "demo" / "00000001-junk.json").write_text("{}")
    with pytest.raises(EvidenceError, match=r"00000001-junk.json is not an evidence record") as raised:
        log.load_chain()
    assert "\n" not in str(raised.value)


def test_the_local_dir_never_overwrites_a_record(local):
    local.put("demo/00000000-a.json", b"{}")
    with pytest.raises(EvidenceError, match="never overwritten"):
        local.put("demo/00000000-a.json", b"[]")
    assert local.get("demo/00000000-a.json") == b"{}"


def test_a_record_of_another_environment_is_refused_and_nothing_written(local, make_record):
    with pytest.raises(EvidenceError, match="not 'demo'"):
        EvidenceLog("demo", [local]).append(make_record(environment="prod"))
    assert not local.root.exists()


def test_the_bucket_copy_carries_six_years_of_compliance_retention(bucket, make_record):
    record = EvidenceLog("demo", [bucket]).append(make_record())
    head = bucket.client.head_object(Bucket=bucket.bucket, Key=object_name(record))
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].year == datetime.now(UTC).year + 6


def test_the_bucket_copy_cannot_be_deleted(bucket, make_record):
    record = EvidenceLog("demo", [bucket]).append(make_record())
    version = bucket.client.head_object(Bucket=bucket.bucket, Key=object_name(record))["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        bucket.client.delete_object(Bucket=bucket.bucket, Key=object_name(record), VersionId=version)


def test_the_chain_reads_back_from_the_bucket(bucket, local, make_record):
    log = EvidenceLog("demo", [local, bucket])
    log.append(make_record(run_id="a"))
    log.append(make_record(run_id="b"))
    assert EvidenceLog("demo", [bucket]).load_chain() == log.load_chain()


def test_stores_that_disagree_on_the_newest_record_refuse_an_append(bucket, local, make_record):
    EvidenceLog("demo", [bucket]).append(make_record(run_id="elsewhere"))
    with pytest.raises(EvidenceError, match="evidence stores disagree on the newest record"):
        EvidenceLog("demo", [local, bucket]).append(make_record(run_id="here"))
    assert local.names("demo") == []


def test_retention_from_29_february_ends_on_28_february():
    assert retain_until(datetime(2028, 2, 29, tzinfo=UTC), 6) == datetime(2034, 2, 28, tzinfo=UTC)
