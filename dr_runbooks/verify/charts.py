"""Chart files against the records database: each chart's current version, in both regions, against the SHA-256 its
scan row holds.

Why a second check beside `verify replication`: that one compares the two copies with each other, so a bad write to
either copy that replicates (two-way replication carries a write to the DR copy back to the primary) leaves them equal,
and wrong. The scan row, written when the chart was scanned, is the truth both copies are held to.

Per scan row and region: HeadObject with `ChecksumMode=ENABLED` gives the current version (or, on a 404, whether a
delete marker is current: `x-amz-delete-marker`, as the HeadObject API reference documents) and the SHA-256 S3 stored
with it. A corrupted object written with its own new checksum has a self-consistent S3 checksum; that checksum still
differs from the row, so the stored checksum catches every bad *write*. What it cannot catch is bytes that no longer
match the checksum stored beside them (at rest, or a writer whose wrong checksum was accepted): `read_bytes` hashes
what a reader gets (GetObject), which also proves the object decrypts. An object stored without a full-object SHA-256
(written with none, or a multipart upload's composite checksum of its parts) is read either way.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel

from dr_runbooks.runbooks.canary import Database
from dr_runbooks.verify.compare import Side
from dr_runbooks.verify.digest import object_sha256

DEFAULT_SAMPLE = 1000
DEFAULT_CONCURRENCY = 8
#: Scan rows read per query with `--all` (keyset pages on the unique object_key index: memory stays bounded).
PAGE = 1000
#: S3 Replication Time Control replicates 99.99% of new objects within 15 minutes ("Meeting compliance requirements
#: with S3 Replication Time Control"): a chart absent from a region although its row is younger is `pending`, not lost.
REPLICATION_WINDOW = timedelta(minutes=15)

Method = Literal["stored-checksum", "bytes"]
FindingKind = Literal["missing", "deleted", "corrupted", "pending"]
#: Findings that fail the check (`pending` is reported, and expected to clear).
FAILING: frozenset[str] = frozenset({"missing", "deleted", "corrupted"})


@dataclass(frozen=True)
class ScanRow:
    key: str
    sha256: str
    scanned_at: datetime


class ChartFinding(BaseModel):
    key: str
    region: str
    kind: FindingKind
    expected_sha256: str
    found_sha256: str | None = None


class RegionResult(BaseModel):
    """What one region's chart bucket held for the rows checked."""

    region: str
    bucket: str
    checked: int = 0
    read: int = 0
    counts: dict[str, int] = {}


class ChartsReport(BaseModel):
    """The outcome of `drctl verify charts`, also its `--output json`."""

    run_id: str
    database_region: str
    method: Method
    sampled: bool
    sample_seed: str | None
    scan_rows: int
    checked: int
    regions: list[RegionResult]
    findings: list[ChartFinding]
    requests: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.checked > 0 and not any(finding.kind in FAILING for finding in self.findings)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return counts

    def findings_digest(self) -> str:
        """SHA-256 of the findings as sorted `region kind key` lines: the sealed evidence names no key (keys name
        patients), yet whoever holds this run's `--output json` can show it is the list the evidence counted."""
        lines = sorted(f"{f.region}\t{f.kind}\t{f.key}" for f in self.findings)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True)
class Look:
    """A key's current state in one bucket: an object (with the SHA-256 of its bytes), a delete marker, or nothing."""

    state: Literal["object", "deleted", "absent"]
    sha256: str | None = None
    read: bool = False


def count_rows(database: Database) -> int:
    return int(database.execute("SELECT count(*) FROM scans").fetchone()[0])


def sampled_rows(database: Database, seed: str, size: int) -> Iterator[list[ScanRow]]:
    """`size` rows chosen by the order of md5(seed || key): random, the same for the same seed and rows, and chosen
    in the database (a top-N sort, no key list in this process however large the table)."""
    rows = database.execute("SELECT object_key, sha256, scanned_at FROM scans ORDER BY md5(%s || object_key), "
                            "object_key LIMIT %s", (seed, size)).fetchall()
    for start in range(0, len(rows), PAGE):
        yield [ScanRow(*row) for row in rows[start:start + PAGE]]


def all_rows(database: Database) -> Iterator[list[ScanRow]]:
    """Every row, a page at a time in key order."""
    after = ""
    while True:
        rows = database.execute("SELECT object_key, sha256, scanned_at FROM scans WHERE object_key > %s "
                                "ORDER BY object_key LIMIT %s", (after, PAGE)).fetchall()
        if not rows:
            return
        yield [ScanRow(*row) for row in rows]
        after = rows[-1][0]


def stored_sha256(head: dict[str, Any]) -> str | None:
    """Hex of the SHA-256 S3 stored with the object, when it is a digest of the whole object: None when it was
    written without one, or for a multipart upload's composite checksum (a checksum of the parts' checksums: type
    COMPOSITE, value suffixed `-<parts>`; "Checking object integrity in Amazon S3")."""
    value = head.get("ChecksumSHA256")
    if not value or head.get("ChecksumType") == "COMPOSITE" or "-" in value:
        return None
    return base64.b64decode(value).hex()


def look(side: Side, key: str, read_bytes: bool) -> Look:
    """One HeadObject; one GetObject of that same version when bytes are to be read or no usable checksum is stored."""
    try:
        head = side.client.head_object(Bucket=side.bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchKey"):
            raise
        headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return Look("deleted" if headers.get("x-amz-delete-marker") == "true" else "absent")
    stored = None if read_bytes else stored_sha256(head)
    if stored is not None:
        return Look("object", stored)
    digest = object_sha256(side.client, side.bucket, key, head.get("VersionId"))
    return Look("absent", read=True) if digest is None else Look("object", digest, read=True)


def judge(row: ScanRow, region: str, found: Look, pending_since: datetime) -> ChartFinding | None:
    """The finding for one row in one region (None: the current version's bytes are the row's)."""
    if found.state == "object":
        if found.sha256 == row.sha256:
            return None
        kind: FindingKind = "corrupted"
    elif found.state == "deleted":
        kind = "deleted"
    else:
        kind = "pending" if row.scanned_at >= pending_since else "missing"
    return ChartFinding(key=row.key, region=region, kind=kind, expected_sha256=row.sha256, found_sha256=found.sha256)


class Progress:
    """What the check reports as it goes; the CLI draws it, tests ignore it."""

    def total(self, rows: int) -> None:
        """The number of rows to check is known."""

    def checked(self, rows: int) -> None:
        """`rows` more rows were checked in every region."""


@dataclass
class ChartCheck:
    """One check of `batches` of scan rows against every archive of `sides`; `run()` gives the regions' results and
    the findings."""

    sides: Sequence[Side]
    read_bytes: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    progress: Progress | None = None

    def run(self, batches: Iterable[list[ScanRow]]) -> tuple[int, list[RegionResult], list[ChartFinding], float]:
        started = time.monotonic()
        pending_since = datetime.now(UTC) - REPLICATION_WINDOW
        progress = self.progress or Progress()
        results = [RegionResult(region=side.client.meta.region_name, bucket=side.bucket) for side in self.sides]
        findings: list[ChartFinding] = []
        checked = 0
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="verify-charts") as pool:
            for batch in batches:
                # Both regions' requests in one queue: neither region waits for the other's batch to finish.
                pairs = [(result, side, row) for side, result in zip(self.sides, results, strict=True) for row in batch]
                looks = pool.map(lambda pair: look(pair[1], pair[2].key, self.read_bytes), pairs)
                for (result, _, row), found in zip(pairs, looks, strict=True):
                    result.checked += 1
                    result.read += found.read
                    finding = judge(row, result.region, found, pending_since)
                    if finding is not None:
                        result.counts[finding.kind] = result.counts.get(finding.kind, 0) + 1
                        findings.append(finding)
                checked += len(batch)
                progress.checked(len(batch))
        return checked, results, sorted(findings, key=lambda f: (f.key, f.region)), time.monotonic() - started
