"""The S3 Batch Operations path of a retention sync: manifests and CreateJob requests as AWS documents them.

moto has no S3 Control CreateJob (it answers 404), so the requests are checked with botocore's Stubber: it fails the
test when a request's parameters differ from what is expected, and validates them against the service model.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import boto3
import pytest
from botocore.stub import Stubber

from dr_runbooks.lifecycle import batch
from dr_runbooks.lifecycle.archive import ChartVersion

EAST, WEST = "us-east-1", "us-west-1"
UNTIL = date(2033, 11, 29)


def _version(region: str, key: str, version_id: str = "v1") -> ChartVersion:
    return ChartVersion(region, f"charts-{region}", key, version_id)


def _client(service: str) -> object:
    return boto3.client(service, region_name=EAST, aws_access_key_id="testing", aws_secret_access_key="testing")


def test_a_manifest_lists_bucket_url_encoded_key_and_version_per_line():
    body = batch.manifest([_version(EAST, "charts/p-01/pt-1/scan a+b.pdf", "3HL4kqtJ")])
    assert body == b"charts-us-east-1,charts/p-01/pt-1/scan%20a%2Bb.pdf,3HL4kqtJ\n"


def test_a_sync_needs_one_job_per_region_and_retention_date():
    other = date(2040, 8, 20)
    groups = batch.group({UNTIL: [_version(EAST, "a"), _version(WEST, "a"), _version(EAST, "b")],
                          other: [_version(EAST, "c")]})
    assert {name: len(versions) for name, versions in groups.items()} == {
        (EAST, UNTIL): 2, (WEST, UNTIL): 1, (EAST, other): 1}


def test_submit_writes_the_manifest_and_creates_a_compliance_retention_job_from_it():
    s3, s3control = _client("s3"), _client("s3control")
    versions = [_version(EAST, "charts/p-01/pt-1/scan-1.pdf"), _version(EAST, "charts/p-01/pt-1/scan-2.pdf")]
    key = f"{batch.MANIFEST_PREFIX}/run-1/{EAST}-{UNTIL.isoformat()}.csv"
    with Stubber(s3) as s3_stub, Stubber(s3control) as control_stub:
        s3_stub.add_response("put_object", {"ETag": '"abc123"'}, {
            "Bucket": "evidence-us-east-1", "Key": key, "Body": batch.manifest(versions),
            "ContentMD5": batch.content_md5(batch.manifest(versions))})
        control_stub.add_response("create_job", {"JobId": "job-1"}, {
            "AccountId": "123456789012", "ConfirmationRequired": False, "Priority": 10,
            "RoleArn": "arn:aws:iam::123456789012:role/retention-batch",
            "ClientRequestToken": batch.request_token("run-1", EAST, UNTIL),
            "Description": f"run-1: retain 2 chart versions until {UNTIL.isoformat()}",
            "Operation": {"S3PutObjectRetention": {"Retention": {
                "Mode": "COMPLIANCE", "RetainUntilDate": datetime(2033, 11, 29, tzinfo=UTC)}}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key", "VersionId"]},
                         "Location": {"ObjectArn": f"arn:aws:s3:::evidence-us-east-1/{key}", "ETag": "abc123"}},
            "Report": {"Enabled": True, "Bucket": "arn:aws:s3:::evidence-us-east-1",
                       "Prefix": f"{batch.REPORT_PREFIX}/run-1", "Format": "Report_CSV_20180820",
                       "ReportScope": "FailedTasksOnly"}})

        job = batch.submit(s3, s3control, account="123456789012", region=EAST, run_id="run-1", until=UNTIL,
                           versions=versions, evidence_bucket="evidence-us-east-1",
                           role_arn="arn:aws:iam::123456789012:role/retention-batch")

        s3_stub.assert_no_pending_responses()
        control_stub.assert_no_pending_responses()
    assert (job.job_id, job.versions, job.manifest_key) == ("job-1", 2, key)


def test_a_resumed_submission_names_the_same_job_and_another_date_another():
    assert batch.request_token("run-1", EAST, UNTIL) == batch.request_token("run-1", EAST, UNTIL)
    assert batch.request_token("run-1", EAST, UNTIL) != batch.request_token("run-1", WEST, UNTIL)
    assert batch.request_token("run-1", EAST, UNTIL) != batch.request_token("run-1", EAST, date(2040, 1, 1))


@pytest.mark.parametrize(("state", "done"), [("Active", False), ("Complete", True), ("Failed", True)])
def test_a_jobs_status_and_task_counts_come_from_describe_job(state, done):
    s3control = _client("s3control")
    with Stubber(s3control) as stub:
        stub.add_response("describe_job", {"Job": {"JobId": "job-1", "Status": state, "ProgressSummary": {
            "TotalNumberOfTasks": 10, "NumberOfTasksSucceeded": 8, "NumberOfTasksFailed": 2}}},
                          {"AccountId": "123456789012", "JobId": "job-1"})
        seen = batch.status(s3control, "123456789012", "job-1")
    assert (seen["status"] in batch.DONE_STATES, seen["succeeded"], seen["failed"]) == (done, 8, 2)
