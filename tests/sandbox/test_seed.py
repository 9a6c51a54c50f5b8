"""Seed data: synthetic, deterministic, stored as PutObject would store it, replicated, checksums right."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from dr_runbooks.lifecycle.policy import RetentionPolicy
from dr_runbooks.runbooks import canary
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.seed import GIVEN_NAMES, seed, synthesize

EAST, WEST = "us-east-1", "us-west-1"


@pytest.fixture(scope="module")
def seeded(sandbox: Sandbox):
    result = sandbox.seed(patients=12, files_per_patient=3)
    sandbox.action("replication-drain", timeout=30)
    return result


def test_seed_reports_what_it_wrote(seeded):
    assert (seeded.patients, seeded.files) == (12, 36)
    assert seeded.bytes > 36 * 512


def test_the_seed_writes_the_records_naming_each_file_through_the_database_emulation(seeded):
    assert seeded.database.startswith("written: ")
    assert "'patients': 12" in seeded.database and "'scans': 36" in seeded.database


def test_chart_keys_follow_the_archive_layout(seeded, sandbox):
    bucket = sandbox.topology.regions[EAST].chart_bucket
    keys = [o["Key"] for o in sandbox.client("s3", EAST).list_objects_v2(Bucket=bucket, Prefix="charts/practice-")[
        "Contents"]]
    assert len(keys) == 36
    assert all(re.fullmatch(r"charts/practice-\d\d/pt-\d{6}/scan-\d{6}-\d\d\.(pdf|tiff|jpeg)", key) for key in keys)


def test_each_file_carries_the_sha256_the_records_hold(seeded, sandbox):
    _, files = synthesize(12, 3)
    scan, body = files[7]
    bucket = sandbox.topology.regions[EAST].chart_bucket
    stored = sandbox.client("s3", EAST).get_object(Bucket=bucket, Key=scan.object_key, ChecksumMode="ENABLED")
    data = stored["Body"].read()
    assert data == body
    assert hashlib.sha256(data).hexdigest() == scan.sha256
    assert base64.b64decode(stored["ChecksumSHA256"]).hex() == scan.sha256
    assert stored["ContentType"] == scan.content_type
    assert stored["Metadata"] == {"scan-id": scan.scan_id, "patient-id": scan.patient_id}


def test_seeded_files_are_encrypted_and_locked_until_their_patients_retention_date(seeded, sandbox):
    people, files = synthesize(12, 3, policy=RetentionPolicy.of(sandbox.config))
    bucket = sandbox.topology.regions[EAST].chart_bucket
    head = sandbox.client("s3", EAST).head_object(Bucket=bucket, Key=files[0][0].object_key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ObjectLockMode"] == "COMPLIANCE"
    patient = next(p for p in people if p.patient_id == files[0][0].patient_id)
    assert head["ObjectLockRetainUntilDate"].date().isoformat() == patient.retained_until


def test_seeded_files_replicate_to_the_dr_region(seeded, sandbox):
    _, files = synthesize(12, 3)
    scan = files[-1][0]
    replica = sandbox.client("s3", WEST).head_object(Bucket=sandbox.topology.regions[WEST].chart_bucket,
                                                     Key=scan.object_key)
    assert replica["ReplicationStatus"] == "REPLICA"


def test_synthetic_data_is_deterministic_and_not_real_people():
    first, second = synthesize(5, 2), synthesize(5, 2)
    assert first == second
    assert all(patient.given_name in GIVEN_NAMES for patient in first[0])


def test_seed_refuses_a_bad_size(sandbox):
    with pytest.raises(ValueError, match="patients >= 1"):
        sandbox.seed(patients=0)


def scan_rows_against_their_charts(sandbox: Sandbox) -> tuple[int, list[str]]:
    """How many scan rows the writer holds, and those whose SHA-256 is not that of their chart's current bytes."""
    port = sandbox.status()["database"]["ports"][EAST]
    endpoint = canary.DbEndpoint(host="127.0.0.1", port=port, database=sandbox.topology.database_name,
                                 username="postgres", password="")
    with canary.connect(endpoint) as connection:
        rows = connection.execute("SELECT object_key, sha256 FROM scans").fetchall()
    s3, bucket = sandbox.client("s3", EAST), sandbox.topology.regions[EAST].chart_bucket
    wrong = [key for key, sha256 in rows
             if hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest() != sha256]
    return len(rows), wrong


def test_seeding_again_at_another_size_leaves_every_scan_rows_sha256_that_of_its_chart(seeded, sandbox):
    sandbox.seed(patients=15, files_per_patient=2)  # the first 12 patients' first 2 files again, and new ones

    rows, wrong = scan_rows_against_their_charts(sandbox)
    assert rows == 36 + 3 * 2 and wrong == []


def test_a_seed_with_another_seed_value_updates_the_scan_rows_of_the_charts_it_rewrote(seeded, sandbox):
    result = seed(sandbox, patients=2, files_per_patient=1, seed_value=4)

    assert "'scans': 2" in result.database
    rows, wrong = scan_rows_against_their_charts(sandbox)
    assert rows == 42 and wrong == []
