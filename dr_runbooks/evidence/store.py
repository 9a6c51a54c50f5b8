"""Where evidence is kept: a local evidence dir and, on AWS, the Object Lock evidence bucket of a region.

Each record is one JSON object named `<environment>/<sequence:08d>-<run_id>.json`, so a plain listing returns a chain
in order and the newest record is the last name. Nothing is ever overwritten: the local dir creates files exclusively,
and the bucket write carries COMPLIANCE-mode Object Lock retention for `EVIDENCE_RETENTION_YEARS` (45 CFR
164.316(b)(2): documentation is kept 6 years), so not even the account root can delete or replace it before then.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from dr_runbooks.evidence.chain import EvidenceError, seal, verify_chain
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.topology import Topology

EVIDENCE_RETENTION_YEARS = 6
DEFAULT_EVIDENCE_DIR = Path(".ehr-dr/evidence")


def object_name(record: EvidenceRecord) -> str:
    return f"{record.environment}/{record.sequence:08d}-{record.run_id}.json"


def retain_until(now: datetime, years: int) -> datetime:
    """`now` plus whole calendar years (29 February falls back to 28 February)."""
    try:
        return now.replace(year=now.year + years)
    except ValueError:
        return now.replace(year=now.year + years, day=28)


class EvidenceStore(Protocol):
    """A place that keeps records by name and never overwrites one."""

    def put(self, name: str, body: bytes) -> None: ...

    def names(self, environment: str) -> list[str]: ...

    def get(self, name: str) -> bytes: ...


class LocalEvidenceDir:
    """`<root>/<environment>/<sequence>-<run_id>.json`; the default root is `.ehr-dr/evidence` in the working dir."""

    def __init__(self, root: Path = DEFAULT_EVIDENCE_DIR):
        self.root = root

    def __repr__(self) -> str:
        return f"evidence dir {self.root}"

    def put(self, name: str, body: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("xb") as file:
                file.write(body)
        except FileExistsError:
            raise EvidenceError(f"{path} already exists: evidence is never overwritten") from None

    def names(self, environment: str) -> list[str]:
        folder = self.root / environment
        return sorted(f"{environment}/{path.name}" for path in folder.glob("*.json")) if folder.is_dir() else []

    def get(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class S3EvidenceBucket:
    """An Object Lock bucket; every record is written with COMPLIANCE retention and a SHA-256 checksum."""

    def __init__(self, client: Any, bucket: str, retention_years: int = EVIDENCE_RETENTION_YEARS):
        self.client = client
        self.bucket = bucket
        self.retention_years = retention_years

    def __repr__(self) -> str:
        return f"evidence bucket s3://{self.bucket}"

    @classmethod
    def of_region(cls, topology: Topology, region: str, session: Any) -> S3EvidenceBucket:
        """The evidence bucket the topology names in `region`, through a client of that region."""
        bucket = topology.in_region(region).evidence_bucket
        return cls(session.client("s3", region_name=region), bucket)

    def put(self, name: str, body: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=name,
            Body=body,
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=retain_until(datetime.now(UTC), self.retention_years),
        )

    def names(self, environment: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{environment}/")
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def get(self, name: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()


class EvidenceLog:
    """The chain of one environment, written to every store; the first store is the one read back.

    Appending refuses when the stores' newest records differ (say, a laptop's evidence dir that missed a run made
    elsewhere): a record linked to the wrong predecessor would be a fork that no verifier could tell from tampering.
    """

    def __init__(self, environment: str, stores: Sequence[EvidenceStore]):
        if not stores:
            raise ValueError("an evidence log needs at least one store")
        self.environment = environment
        self.stores = tuple(stores)

    def append(self, record: EvidenceRecord) -> EvidenceRecord:
        """Seal `record` as the newest of the chain, write it to every store, and return the sealed record."""
        if record.environment != self.environment:
            raise EvidenceError(
                f"run {record.run_id} is for environment {record.environment!r}, not {self.environment!r}"
            )
        tails = {repr(store): (store.names(self.environment) or [None])[-1] for store in self.stores}
        if len(set(tails.values())) > 1:
            listing = "; ".join(f"{store}: {tail or 'empty'}" for store, tail in tails.items())
            raise EvidenceError(f"evidence stores disagree on the newest record ({listing})")
        tail = next(iter(tails.values()))
        previous = None if tail is None else self._parse(self.stores[0], tail)
        sealed = seal(record, previous)
        body = sealed.model_dump_json(indent=2).encode()
        for store in self.stores:
            store.put(object_name(sealed), body)
        return sealed

    def load_chain(self) -> list[EvidenceRecord]:
        """Every record of the environment, oldest first, as kept in the first store."""
        store = self.stores[0]
        return [self._parse(store, name) for name in store.names(self.environment)]

    def verify_chain(self) -> list[str]:
        """The chain's breaks (see `chain.verify_chain`); empty when intact."""
        return verify_chain(self.load_chain())

    @staticmethod
    def _parse(store: EvidenceStore, name: str) -> EvidenceRecord:
        try:
            return EvidenceRecord.model_validate_json(store.get(name))
        except ValueError as error:
            first = str(error).splitlines()[0]
            raise EvidenceError(f"{store}: {name} is not an evidence record ({first})") from None
