"""Two versioned chart archives in two regions (moto in-process) that a test fills to state its case.

Until the sandbox's replication emulation is used here, "replicated" means the test wrote the same bytes to both
buckets; a paused replication is a write to the source only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dr_runbooks.verify.compare import Side


@dataclass
class Archives:
    source: Side
    replica: Side

    def put(self, key: str, body: bytes = b"scan", *, replicate: bool = True) -> None:
        for side in (self.source, self.replica) if replicate else (self.source,):
            side.client.put_object(Bucket=side.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")

    def put_many(self, count: int, practices: int = 3) -> list[str]:
        keys = [f"charts/p{n % practices:03d}/pt{n:05d}/scan-{n}.pdf" for n in range(count)]
        for key in keys:
            self.put(key, key.encode())
        return keys


def _bucket(region: str, name: str) -> Side:
    client = boto3.client("s3", region_name=region)
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return Side(client=client, bucket=name)


@pytest.fixture
def archives() -> Iterator[Archives]:
    with mock_aws():
        yield Archives(source=_bucket("us-west-2", "charts-primary"), replica=_bucket("us-west-1", "charts-replica"))


@pytest.fixture
def kinds() -> Callable[[Any], dict[str, str]]:
    """`{key: kind}` of a report's differences: what most assertions are about."""
    return lambda report: {difference.key: difference.kind for difference in report.differences}
