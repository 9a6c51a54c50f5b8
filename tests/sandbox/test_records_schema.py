"""The records schema and the database half of seeding: idempotent DDL, fast idempotent COPY seeding, bad input."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from ehr_dr_sandbox.postgres_pair import PostgresPair, pair_state_dir, running_pair
from ehr_dr_sandbox.records_schema import TABLES, apply_schema, ensure_database, seed_records


@pytest.fixture(scope="module")
def pair() -> Iterator[PostgresPair]:
    with pair_state_dir() as state_dir, running_pair(state_dir, "us-east-1", "us-west-1") as pair:
        with pair.writer().connect() as admin:
            ensure_database(admin, "records", "ehr_admin")
        yield pair


@pytest.fixture
def conn(pair: PostgresPair) -> Iterator[psycopg.Connection[Any]]:
    with pair.writer().connect("records") as conn:
        conn.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES) + " CASCADE")
        apply_schema(conn)
        yield conn


def patients(count: int) -> list[dict[str, Any]]:
    return [{"patient_id": f"pt-{n:06d}", "practice": f"practice-{n % 10:02d}", "given_name": "Alex",
             "family_name": "Synthetic", "birth_date": "1970-01-02", "last_visit": "2025-06-30",
             "retained_until": "2032-06-30"}
            for n in range(1, count + 1)]


def scans(count_patients: int, per_patient: int) -> list[dict[str, Any]]:
    return [{"scan_id": f"scan-{n:06d}-{i:02d}", "patient_id": f"pt-{n:06d}",
             "object_key": f"charts/practice-{n % 10:02d}/pt-{n:06d}/scan-{n:06d}-{i:02d}.pdf",
             "sha256": hashlib.sha256(f"{n}-{i}".encode()).hexdigest(), "content_type": "application/pdf",
             "size_bytes": 1000 + i}
            for n in range(1, count_patients + 1) for i in range(per_patient)]


def count(conn: psycopg.Connection[Any], table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_schema_holds_the_records_tables_and_the_runbooks_canary(conn: psycopg.Connection[Any]) -> None:
    names = {row[0] for row in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert set(TABLES) <= names


def test_applying_the_schema_again_keeps_the_rows(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO dr_canary (run_id, region) VALUES ('run-1', 'us-east-1')")
    apply_schema(conn)
    assert count(conn, "dr_canary") == 1


def test_canary_accepts_the_runbooks_insert_once_per_run(conn: psycopg.Connection[Any]) -> None:
    for _ in range(2):
        conn.execute("INSERT INTO dr_canary (run_id, region, written_at) VALUES ('run-2', 'us-east-1', now()) "
                     "ON CONFLICT (run_id) DO NOTHING")
    assert count(conn, "dr_canary") == 1


def test_seeding_writes_patients_scans_with_checksums_staff_and_views(conn: psycopg.Connection[Any]) -> None:
    seeded = seed_records(conn, patients(100), scans(100, 5))
    assert (seeded.patients, seeded.scans, seeded.users, seeded.views) == (100, 500, 5, 1000)
    key, digest = conn.execute("SELECT object_key, sha256 FROM scans WHERE scan_id = 'scan-000007-03'").fetchone()
    assert (key, digest) == ("charts/practice-07/pt-000007/scan-000007-03.pdf", hashlib.sha256(b"7-3").hexdigest())


def test_seeding_the_same_records_twice_adds_nothing(conn: psycopg.Connection[Any]) -> None:
    seed_records(conn, patients(20), scans(20, 2))
    again = seed_records(conn, patients(20), scans(20, 2))
    assert (again.patients, again.scans, again.users, again.views) == (0, 0, 0, 0)
    assert count(conn, "view_history") == 80


def test_seeding_reaches_the_standby(pair: PostgresPair, conn: psycopg.Connection[Any]) -> None:
    seed_records(conn, patients(10), scans(10, 1))
    pair.wait_caught_up()
    assert pair.node("us-west-1").query_one("SELECT count(*) FROM scans", dbname="records") == 10


def test_a_scan_of_an_unknown_patient_is_refused_and_nothing_is_written(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ValueError, match="scans name 1 unknown patient"):
        seed_records(conn, patients(2), scans(3, 1))
    assert count(conn, "patients") == 0


def test_a_malformed_checksum_is_refused_and_nothing_is_written(conn: psycopg.Connection[Any]) -> None:
    bad = scans(1, 1)
    bad[0]["sha256"] = "not-a-sha"
    with pytest.raises(psycopg.errors.CheckViolation):
        seed_records(conn, patients(1), bad)
    assert count(conn, "patients") == 0
