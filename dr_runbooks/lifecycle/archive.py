"""The archive side of the lifecycle: every version of a patient's charts, in both regions' chart buckets.

Why both regions, written one by one: S3 replication copies a version's Object Lock retention and legal hold with the
version when it replicates it ("What does Amazon S3 replicate?": "S3 Object Lock retention information, if there is
any"), but that page lists no later change of retention or legal hold on the source among what replicates (it names
ACL updates and tags only), and a DELETE of a specific version is never replicated ("it doesn't replicate the deletion
in the destination buckets"). So each region's copy is extended, held, released and deleted by its own calls, and
verified in its own region; a change replica modification sync did carry over is found already made (idempotent).

Retention is only ever extended: the current retain-until is read first (GetObjectRetention, authorized as
`s3:GetObjectRetention`, which reads no chart: HeadObject would be authorized as `s3:GetObject`, the chart itself),
and PutObjectRetention is sent only when it is earlier than the date wanted. In compliance mode AWS refuses to
shorten it anyway. Holds and disposal read the legal hold too, with HeadObject ("Object Lock considerations").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dr_runbooks.topology import Topology

#: A client of a service in a region: `RunContext.client` or `AwsSession.client`.
Clients = Callable[[str, str], Any]


@dataclass(frozen=True)
class ChartVersion:
    region: str
    bucket: str
    key: str
    version_id: str
    delete_marker: bool = False

    @property
    def line(self) -> str:
        """What the certificate's digest covers for this version: where it was, exactly."""
        return f"{self.region} {self.bucket} {self.key} {self.version_id}"


@dataclass(frozen=True)
class Lock:
    retain_until: datetime | None
    legal_hold: bool

    def blocks_deletion(self, now: datetime) -> bool:
        return self.legal_hold or (self.retain_until is not None and self.retain_until > now)


def chart_versions(clients: Clients, topology: Topology, prefix: str) -> list[ChartVersion]:
    """Every version and delete marker under `prefix` in both chart buckets (ListObjectVersions, every page)."""
    found: list[ChartVersion] = []
    for region, resources in topology.regions.items():
        pages = clients("s3", region).get_paginator("list_object_versions").paginate(
            Bucket=resources.chart_bucket, Prefix=prefix)
        for page in pages:
            found += [ChartVersion(region, resources.chart_bucket, item["Key"], item["VersionId"])
                      for item in page.get("Versions", [])]
            found += [ChartVersion(region, resources.chart_bucket, item["Key"], item["VersionId"], delete_marker=True)
                      for item in page.get("DeleteMarkers", [])]
    return found


def lock_of(clients: Clients, version: ChartVersion) -> Lock:
    """The version's retain-until and legal hold (HeadObject; a delete marker has neither)."""
    if version.delete_marker:
        return Lock(None, False)
    head = clients("s3", version.region).head_object(Bucket=version.bucket, Key=version.key,
                                                     VersionId=version.version_id)
    return Lock(head.get("ObjectLockRetainUntilDate"), head.get("ObjectLockLegalHoldStatus") == "ON")


def retain_until(clients: Clients, version: ChartVersion) -> datetime | None:
    """The version's retain-until (GetObjectRetention; None when it has none: S3 answers
    NoSuchObjectLockConfiguration)."""
    try:
        retention = clients("s3", version.region).get_object_retention(
            Bucket=version.bucket, Key=version.key, VersionId=version.version_id)["Retention"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchObjectLockConfiguration":
            return None
        raise
    return retention.get("RetainUntilDate")


def extend_retention(clients: Clients, version: ChartVersion, until: datetime) -> bool:
    """Retain the version at least until `until` in compliance mode; whether it had to be extended."""
    if version.delete_marker:
        return False
    current = retain_until(clients, version)
    if current is not None and current >= until:
        return False
    clients("s3", version.region).put_object_retention(
        Bucket=version.bucket, Key=version.key, VersionId=version.version_id,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
    return True


def set_legal_hold(clients: Clients, version: ChartVersion, on: bool) -> bool:
    """Place (`on`) or clear the version's legal hold; whether it changed."""
    if version.delete_marker or lock_of(clients, version).legal_hold == on:
        return False
    clients("s3", version.region).put_object_legal_hold(
        Bucket=version.bucket, Key=version.key, VersionId=version.version_id,
        LegalHold={"Status": "ON" if on else "OFF"})
    return True


def delete_version(clients: Clients, version: ChartVersion) -> None:
    """DeleteObject of this version id: permanent (no delete marker), refused by S3 while the version is locked."""
    clients("s3", version.region).delete_object(Bucket=version.bucket, Key=version.key, VersionId=version.version_id)


def keys_digest(versions: Iterable[ChartVersion]) -> str:
    """SHA-256 over the sorted lines (region, bucket, key, version id) of the versions: what a certificate names."""
    return hashlib.sha256("\n".join(sorted(version.line for version in versions)).encode()).hexdigest()
