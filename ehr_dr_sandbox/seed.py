"""Seed data: synthetic patients and their chart files (no real PHI), the files' SHA-256 held by the database.

Chart files go to the primary region's chart bucket, keyed `charts/<practice>/<patient>/<scan-id>.<ext>`, each
version with what a PutObject from the records app stores: SHA-256 additional checksum, content type, metadata
(`scan-id`, `patient-id`), the bucket's default SSE-KMS, and Object Lock retention until the patient's retention
date (last visit + retention, the minors' rule: `dr_runbooks.lifecycle.policy`), as `drctl retention sync` would have
set it; the patient row records that date as synced (`retained_until`). A patient whose date has passed has charts
whose lock has run out, as charts written years ago would: what `drctl dispose` rehearses on. Replication to the DR
region follows as for any write.

They are written in the server process, straight into moto's S3 state (action `charts-seed`), not through the S3
API: through the endpoint moto manages about 100 PutObject/s on 2 cores (the default 5,000 files took 50 s), far
from the 20 s budget; the data is the same, and `synthesize` is deterministic, so the client knows every key and
checksum without reading them back. Tests that need the API path (replication, checksums) use PutObject themselves.

The database half goes through the sandbox action `records-seed` (the PostgreSQL emulation registers it and writes
patients, users and scans with their object keys and checksums): when no emulation offers it, the seed writes the
chart files only and says so in its result. Everything is deterministic from `seed_value`: a key gets the same bytes
in a seed of any size, so seeding twice (`drctl sandbox seed`, any sizes) leaves every scan row's SHA-256 matching
its file; with another `seed_value` the files change and `records-seed` updates their scan rows to match.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from dr_runbooks.lifecycle.policy import RetentionPolicy
from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import Registry

if TYPE_CHECKING:
    from ehr_dr_sandbox.api import Sandbox

RECORDS_ACTION = "records-seed"
CHARTS_ACTION = "charts-seed"
PRACTICES = 10
#: Format, file extension, content type and magic bytes of the chart files (what a scanner produces).
FORMATS = (
    ("pdf", "application/pdf", b"%PDF-1.7\n"),
    ("tiff", "image/tiff", b"II*\x00"),
    ("jpeg", "image/jpeg", b"\xff\xd8\xff\xe0"),
)
GIVEN_NAMES = ("Alex", "Blake", "Casey", "Drew", "Emery", "Finley", "Gray", "Harper", "Indy", "Jordan")
FAMILY_NAMES = ("Synthetic", "Testperson", "Placeholder", "Example", "Sample", "Fixture", "Mock", "Dummy")


@dataclass(frozen=True)
class SyntheticPatient:
    patient_id: str
    practice: str
    given_name: str
    family_name: str
    birth_date: str
    last_visit: str
    retained_until: str | None = None


@dataclass(frozen=True)
class SyntheticScan:
    scan_id: str
    patient_id: str
    object_key: str
    sha256: str
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class SeedResult:
    patients: int
    files: int
    bytes: int
    seconds: float
    database: str


def synthesize(patients: int, files_per_patient: int, seed_value: int = 3, policy: RetentionPolicy | None = None,
               ) -> tuple[list[SyntheticPatient], list[tuple[SyntheticScan, bytes]]]:
    """The patients and their chart files (scan, body); the same arguments give the same data, and a patient or a
    file is the same in a seed of any size (patient N's attributes and scan S's bytes depend on `seed_value` only).
    With a `policy`, each patient carries its retention date."""
    rng = random.Random(seed_value)
    people, files = [], []
    for number in range(1, patients + 1):
        patient = SyntheticPatient(
            patient_id=f"pt-{number:06d}", practice=f"practice-{number % PRACTICES:02d}",
            given_name=rng.choice(GIVEN_NAMES), family_name=rng.choice(FAMILY_NAMES),
            birth_date=f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            last_visit=f"20{rng.randint(18, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        )
        if policy is not None:
            patient = replace(patient, retained_until=policy.retain_until(
                date.fromisoformat(patient.birth_date), date.fromisoformat(patient.last_visit)).isoformat())
        people.append(patient)
        for index in range(files_per_patient):
            ext, content_type, magic = FORMATS[(number + index) % len(FORMATS)]
            scan_id = f"scan-{number:06d}-{index:02d}"
            # Each file from its own generator: the same key gets the same bytes whatever the seed's size, so a
            # second seed rewrites a file only with its own content (and its scan row stays right).
            file_rng = random.Random(f"{seed_value}/{scan_id}")
            body = magic + file_rng.randbytes(file_rng.randint(512, 4096))
            files.append((SyntheticScan(
                scan_id=scan_id, patient_id=patient.patient_id,
                object_key=f"charts/{patient.practice}/{patient.patient_id}/{scan_id}.{ext}",
                sha256=hashlib.sha256(body).hexdigest(), content_type=content_type, size_bytes=len(body),
            ), body))
    return people, files


def seed(sandbox: Sandbox, patients: int = 1000, files_per_patient: int = 5, seed_value: int = 3) -> SeedResult:
    """Chart files (server side), then the database rows that name them."""
    if patients < 1 or files_per_patient < 0:
        raise ValueError(f"seed needs patients >= 1 and files per patient >= 0 (got {patients}, {files_per_patient})")
    started = time.monotonic()
    written = sandbox.action(CHARTS_ACTION, patients=patients, files_per_patient=files_per_patient,
                             seed_value=seed_value)
    people, files = synthesize(patients, files_per_patient, seed_value, RetentionPolicy.of(sandbox.config))
    database = _write_records(sandbox, people, [scan for scan, _ in files])
    return SeedResult(patients=len(people), files=written["files"], bytes=written["bytes"],
                      seconds=round(time.monotonic() - started, 2), database=database)


def _write_records(sandbox: Sandbox, people: list[SyntheticPatient], scans: list[SyntheticScan]) -> str:
    if RECORDS_ACTION not in sandbox.status()["actions"]:
        return "skipped: no database emulation offers the records-seed action"
    result: Any = sandbox.action(RECORDS_ACTION, patients=[asdict(p) for p in people],
                                 scans=[asdict(s) for s in scans])
    return f"written: {result}"


def write_charts(context: SandboxContext, people: list[SyntheticPatient],
                 files: list[tuple[SyntheticScan, bytes]]) -> dict[str, int]:
    """Store each file as a new version of the primary chart bucket, as PutObject would, locked until its patient's
    retention date (the bucket's default retention for a patient without one), and announce it."""
    region = context.config.primary_region
    bucket_name = context.topology.regions[region].chart_bucket
    s3 = context.backend("s3", region)
    bucket = s3.get_bucket(bucket_name)
    until = {patient.patient_id: patient.retained_until for patient in people}
    for scan, body in files:
        locked = bucket.has_default_lock
        retained = until.get(scan.patient_id)
        version = s3.put_object(
            bucket_name, scan.object_key, body,
            lock_mode=bucket.default_lock_mode if locked else None,
            lock_until=(f"{retained}T00:00:00Z" if retained else bucket.default_retention()) if locked else None,
            checksum_value=base64.b64encode(bytes.fromhex(scan.sha256)).decode(), disable_notification=True,
        )
        version.checksum_algorithm = "SHA256"
        version.set_metadata({"Content-Type": scan.content_type, "x-amz-meta-scan-id": scan.scan_id,
                              "x-amz-meta-patient-id": scan.patient_id})
        context.new_version(bucket_name, scan.object_key, version.version_id)
    return {"files": len(files), "bytes": sum(len(body) for _, body in files)}


def install(registry: Registry, context: SandboxContext) -> None:
    @registry.action(CHARTS_ACTION)
    def charts(arguments: dict[str, Any]) -> dict[str, int]:
        people, files = synthesize(int(arguments["patients"]), int(arguments["files_per_patient"]),
                                   int(arguments.get("seed_value", 3)), RetentionPolicy.of(context.config))
        return write_charts(context, people, files)
