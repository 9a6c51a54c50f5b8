"""The records database's schema, and the database half of seeding synthetic records (no real PHI).

Tables: `patients`, `users` (the staff who read charts), `scans` (a chart file's metadata, its S3 object key and the
SHA-256 of its bytes, so an integrity check can compare the archive against what the database promised),
`view_history` (who read which chart, when: HIPAA access accounting), the records lifecycle's
`patients.retained_until`, `legal_holds` and `disposals` (`dr_runbooks.lifecycle.records.LIFECYCLE_DDL`),
`dr_canary` (owned by the runbooks: a row written before a drill and looked for after it measures the RPO from the
data; `run_id` is unique because the runbooks write it with `ON CONFLICT (run_id) DO NOTHING`) and `dr_heartbeat` (a
row a minute in the writing region: its DDL is the runbooks', `canary.HEARTBEAT_DDL`, which the heartbeat also applies
in AWS).

Everything here is idempotent: the DDL uses IF NOT EXISTS, and seeding COPYs into temporary staging tables then
inserts with ON CONFLICT DO NOTHING, so seeding twice with the same input changes nothing and a crash mid-seed can
simply be re-run. COPY is what makes it fast: 5,000 scans with their patients, users and views load in well under
a second.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from dr_runbooks.lifecycle.records import LIFECYCLE_DDL
from dr_runbooks.runbooks.canary import HEARTBEAT_DDL

SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    patient_id   text PRIMARY KEY,
    practice     text NOT NULL,
    given_name   text NOT NULL,
    family_name  text NOT NULL,
    birth_date   date NOT NULL,
    last_visit   date NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    user_id      text PRIMARY KEY,
    display_name text NOT NULL,
    role         text NOT NULL CHECK (role IN ('physician', 'nurse', 'records-clerk', 'auditor'))
);
CREATE TABLE IF NOT EXISTS scans (
    scan_id      text PRIMARY KEY,
    patient_id   text NOT NULL REFERENCES patients,
    object_key   text NOT NULL UNIQUE,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    scanned_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS scans_patient ON scans (patient_id);
CREATE TABLE IF NOT EXISTS view_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users,
    scan_id      text NOT NULL REFERENCES scans,
    viewed_at    timestamptz NOT NULL,
    UNIQUE (user_id, scan_id, viewed_at)
);
CREATE INDEX IF NOT EXISTS view_history_scan ON view_history (scan_id, viewed_at);
CREATE TABLE IF NOT EXISTS dr_canary (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       text NOT NULL UNIQUE,
    region       text NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now(),
    note         text
);
""" + HEARTBEAT_DDL + LIFECYCLE_DDL

#: The records tables (all but the heartbeat, which changes every minute by design).
TABLES = ("patients", "users", "scans", "view_history", "dr_canary")

PATIENT_COLUMNS = ("patient_id", "practice", "given_name", "family_name", "birth_date", "last_visit", "retained_until")
SCAN_COLUMNS = ("scan_id", "patient_id", "object_key", "sha256", "content_type", "size_bytes")
USER_COLUMNS = ("user_id", "display_name", "role")
VIEW_COLUMNS = ("user_id", "scan_id", "viewed_at")
ROLES = ("physician", "nurse", "records-clerk")
#: One member of staff per this many patients (at least a handful), each chart read this many times on average.
PATIENTS_PER_USER = 20
VIEWS_PER_SCAN = 2
#: Views are dated in the year before this fixed instant, so the same input always gives the same rows.
VIEWS_UNTIL = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SeedCounts:
    """Rows this seed added to each table, scans also the rows it corrected to their file's new content (0
    everywhere when the same records were seeded before)."""

    patients: int
    users: int
    scans: int
    views: int


def apply_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the tables that are missing; existing tables and their rows are left as they are."""
    with conn.transaction():
        conn.execute(SCHEMA)


def ensure_database(admin: psycopg.Connection[Any], database: str, owner: str) -> None:
    """The login role `owner` and the database `database` it owns, made if missing (the master user of a cluster).

    `admin` must be an autocommit connection to another database (CREATE DATABASE cannot run in a transaction).
    """
    if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone() is None:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(owner)))
    if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner)))


def synthetic_users(patients: int, seed_value: int = 3) -> list[tuple[str, str, str]]:
    """The staff of a practice group of `patients` patients: names are obviously synthetic."""
    rng = random.Random(seed_value)
    count = max(5, patients // PATIENTS_PER_USER)
    return [(f"user-{number:05d}", f"Staff Member {number:05d} (synthetic)", rng.choice(ROLES))
            for number in range(1, count + 1)]


def synthetic_views(scan_ids: Sequence[str], user_ids: Sequence[str],
                    seed_value: int = 3) -> list[tuple[str, str, datetime]]:
    """`VIEWS_PER_SCAN` reads of each chart by random staff at random whole seconds in the year before
    `VIEWS_UNTIL`."""
    rng = random.Random(seed_value)
    year = int(timedelta(days=365).total_seconds())
    return [(rng.choice(user_ids), scan_id, VIEWS_UNTIL - timedelta(seconds=rng.randrange(year)))
            for scan_id in scan_ids for _ in range(VIEWS_PER_SCAN)]


def seed_records(conn: psycopg.Connection[Any], patients: Sequence[Mapping[str, Any]],
                 scans: Sequence[Mapping[str, Any]], seed_value: int = 3) -> SeedCounts:
    """Insert the patients and the scans already written to S3 (their key, SHA-256 hex, size...), plus synthetic
    staff and chart views, in one transaction. A scan already present with another SHA-256, size or content type
    (its file was rewritten by a seed with another `seed_value`) is updated to match its file.

    `patients` carry `PATIENT_COLUMNS`, `scans` carry `SCAN_COLUMNS` (extra keys are ignored). A scan whose patient
    is in neither `patients` nor the database is refused with a one-line error, and nothing is written.
    """
    known = {str(patient["patient_id"]) for patient in patients}
    orphans = sorted({str(scan["patient_id"]) for scan in scans} - known)
    if orphans:
        present = conn.execute("SELECT patient_id FROM patients WHERE patient_id = ANY(%s)", (orphans,)).fetchall()
        missing = sorted(set(orphans) - {row[0] for row in present})
        if missing:
            raise ValueError(f"scans name {len(missing)} unknown patient(s), e.g. {missing[0]!r}: nothing seeded")
    users = synthetic_users(len(patients), seed_value)
    views = synthetic_views([str(scan["scan_id"]) for scan in scans], [user[0] for user in users], seed_value)
    with conn.transaction():
        counts = SeedCounts(
            patients=_copy_new(conn, "patients", PATIENT_COLUMNS, "patient_id",
                               ([patient[column] for column in PATIENT_COLUMNS] for patient in patients)),
            users=_copy_new(conn, "users", USER_COLUMNS, "user_id", users),
            scans=_copy_new(conn, "scans", SCAN_COLUMNS, "scan_id",
                            ([scan[column] for column in SCAN_COLUMNS] for scan in scans), update=True),
            views=_copy_new(conn, "view_history", VIEW_COLUMNS, "user_id, scan_id, viewed_at", views),
        )
    return counts


def _copy_new(conn: psycopg.Connection[Any], table: str, columns: Sequence[str], key: str, rows: Any,
              update: bool = False) -> int:
    """COPY `rows` into a staging copy of `table`, then insert the ones whose `key` is new (with `update`, also
    rewrite an existing row whose other columns differ); returns how many rows were inserted or rewritten."""
    staging = sql.Identifier(f"staging_{table}")
    column_list = sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
        staging, column_list, sql.Identifier(table)))
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, column_list)) as copy:
        for row in rows:
            copy.write_row(row)
    others = [sql.Identifier(column) for column in columns if column not in key.split(", ")]
    on_conflict = sql.SQL("DO NOTHING") if not update else sql.SQL(
        "DO UPDATE SET ({others}) = ROW({excluded}) WHERE ({current}) IS DISTINCT FROM ({excluded})").format(
        others=sql.SQL(", ").join(others),
        excluded=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(column) for column in others),
        current=sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(table), column) for column in others))
    inserted = conn.execute(sql.SQL("INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} "
                                    "ON CONFLICT ({key}) {on_conflict}").format(
        table=sql.Identifier(table), columns=column_list, staging=staging, key=sql.SQL(key), on_conflict=on_conflict))
    return inserted.rowcount
