"""Emptying a scratch bucket: any number of versions, and a version S3 will not delete is an error naming it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from dr_runbooks.drills import scratch

REGION = "us-west-1"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket="scratch-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket="scratch-bucket", VersioningConfiguration={"Status": "Enabled"})
        yield client


def test_a_bucket_of_more_than_a_thousand_versions_and_delete_markers_is_emptied_and_deleted(s3: Any) -> None:
    for number in range(1100):
        s3.put_object(Bucket="scratch-bucket", Key=f"charts/{number % 700}.pdf", Body=b"%PDF")
    s3.delete_object(Bucket="scratch-bucket", Key="charts/1.pdf")  # a delete marker too

    scratch.delete_bucket(s3, "scratch-bucket")

    assert "scratch-bucket" not in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]


def test_a_version_s3_refuses_to_delete_fails_naming_it_instead_of_looping() -> None:
    client = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    version = {"Key": "charts/held.pdf", "VersionId": "v1", "IsLatest": True, "LastModified": "2026-01-01T00:00:00Z",
               "Size": 1, "ETag": "e", "StorageClass": "STANDARD"}
    with Stubber(client) as stub:
        stub.add_response("list_object_versions", {"Versions": [version]}, {"Bucket": "b", "MaxKeys": 1000})
        stub.add_response("delete_objects", {"Errors": [{"Key": "charts/held.pdf", "VersionId": "v1",
                                                         "Code": "AccessDenied", "Message": "Access Denied"}]})
        with pytest.raises(RuntimeError, match=r"1 versions of b could not be deleted, e.g. charts/held.pdf \(v1\): "
                                               r"AccessDenied"):
            scratch.empty_bucket(client, "b")
