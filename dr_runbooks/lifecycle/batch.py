"""Archive-scale retention changes through S3 Batch Operations, AWS's engine for them, instead of a call per version.

AWS (S3 User Guide, "Using S3 Object Lock retention with S3 Batch Operations"; S3 Control API, CreateJob with the
`S3PutObjectRetention` operation): one job applies one retention (mode and retain-until date) to every object version
its manifest lists (a CSV of bucket, key, version id: keys URL-encoded), in the job's region, as the role it is given
(which needs `s3:PutObjectRetention` on the objects, `s3:GetBucketObjectLockConfiguration` on the bucket and read of
the manifest). So a sync groups the versions to extend by region and retention date (patients seen the same day share
one date; a minor's is their own), writes one manifest per group into the region's evidence bucket (Object Lock: the
manifest stays as evidence of what was extended), and creates one job per group, named by a client request token
derived from the run, region and date so a resumed step does not start a second job. A version whose retention is
already longer fails in the job (compliance mode never shortens): expected, counted in the job's progress.

moto has no S3 Control CreateJob (it answers 404); the path is tested with botocore's Stubber.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

from dr_runbooks.lifecycle.archive import ChartVersion
from dr_runbooks.lifecycle.policy import start_of

MANIFEST_FORMAT = "S3BatchOperations_CSV_20180820"
MANIFEST_PREFIX = "lifecycle/manifests"
REPORT_PREFIX = "lifecycle/batch-reports"
#: Terminal states of a Batch Operations job (S3 Control API, JobDescriptor Status).
DONE_STATES = ("Complete", "Failed", "Cancelled")


@dataclass(frozen=True)
class RetentionJob:
    region: str
    until: date
    versions: int
    manifest_key: str
    job_id: str


def manifest(versions: Iterable[ChartVersion]) -> bytes:
    """The CSV manifest: `bucket,key,version id` per line, keys URL-encoded as Batch Operations requires."""
    return "".join(f"{v.bucket},{quote(v.key, safe='/')},{v.version_id}\n" for v in versions).encode()


def request_token(run_id: str, region: str, until: date) -> str:
    """CreateJob's idempotency token: the same run, region and date always name the same job."""
    return hashlib.sha256(f"{run_id}/{region}/{until.isoformat()}".encode()).hexdigest()[:64]


def submit(s3: Any, s3control: Any, *, account: str, region: str, run_id: str, until: date,
           versions: list[ChartVersion], evidence_bucket: str, role_arn: str) -> RetentionJob:
    """Write the manifest of `versions` (all in `region`) and create the job that retains them until `until`."""
    key = f"{MANIFEST_PREFIX}/{run_id}/{region}-{until.isoformat()}.csv"
    body = manifest(versions)
    etag = s3.put_object(Bucket=evidence_bucket, Key=key, Body=body,
                         ContentMD5=content_md5(body))["ETag"].strip('"')
    job = s3control.create_job(
        AccountId=account, ConfirmationRequired=False, Priority=10, RoleArn=role_arn,
        ClientRequestToken=request_token(run_id, region, until),
        Description=f"{run_id}: retain {len(versions)} chart versions until {until.isoformat()}",
        Operation={"S3PutObjectRetention": {"Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": start_of(until)}}},
        Manifest={"Spec": {"Format": MANIFEST_FORMAT, "Fields": ["Bucket", "Key", "VersionId"]},
                  "Location": {"ObjectArn": f"arn:aws:s3:::{evidence_bucket}/{key}", "ETag": etag}},
        Report={"Enabled": True, "Bucket": f"arn:aws:s3:::{evidence_bucket}", "Prefix": f"{REPORT_PREFIX}/{run_id}",
                "Format": "Report_CSV_20180820", "ReportScope": "FailedTasksOnly"},
    )
    return RetentionJob(region=region, until=until, versions=len(versions), manifest_key=key, job_id=job["JobId"])


def status(s3control: Any, account: str, job_id: str) -> dict[str, Any]:
    """The job's status and task counts (DescribeJob)."""
    job = s3control.describe_job(AccountId=account, JobId=job_id)["Job"]
    progress = job.get("ProgressSummary", {})
    return {"status": job["Status"], "succeeded": progress.get("NumberOfTasksSucceeded", 0),
            "failed": progress.get("NumberOfTasksFailed", 0), "total": progress.get("TotalNumberOfTasks", 0)}


def group(versions_by_date: dict[date, list[ChartVersion]]) -> dict[tuple[str, date], list[ChartVersion]]:
    """The jobs a sync needs: one per region and retention date."""
    groups: dict[tuple[str, date], list[ChartVersion]] = {}
    for until, versions in versions_by_date.items():
        for version in versions:
            groups.setdefault((version.region, until), []).append(version)
    return groups


def content_md5(body: bytes) -> str:
    """PutObject into an Object Lock bucket needs an integrity header (S3 API Reference, PutObject)."""
    return base64.b64encode(hashlib.md5(body).digest()).decode()
