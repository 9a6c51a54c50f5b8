"""Table fingerprints: every records table's row count and order-independent checksum, read over pg8000 from the
sandbox's PostgreSQL, and the differences a restore drill reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dr_runbooks.drills.fingerprint import Fingerprint, differences, fingerprint
from dr_runbooks.runbooks.canary import DbEndpoint
from ehr_dr_sandbox.postgres_pair import SUPERUSER, Node, pair_state_dir, running_pair
from ehr_dr_sandbox.records_schema import TABLES, apply_schema, ensure_database

USERS = [("u-1", "Dr One", "physician"), ("u-2", "Nurse Two", "nurse"), ("u-3", "Clerk Three", "records-clerk")]


@pytest.fixture(scope="module")
def writer() -> Iterator[Node]:
    with pair_state_dir() as state_dir, running_pair(state_dir, "us-east-1", "us-west-1") as pair:
        yield pair.writer()


@pytest.fixture
def database(writer: Node, request: pytest.FixtureRequest) -> Callable[[list[tuple[str, str, str]]], DbEndpoint]:
    """A fresh records database per call, its `users` table holding the given rows inserted in that order."""
    made: list[str] = []

    def make(users: list[tuple[str, str, str]]) -> DbEndpoint:
        name = f"fp_{request.node.name[:40].lower()}_{len(made)}"
        made.append(name)
        with writer.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            ensure_database(admin, name, "ehr_admin")
        with writer.connect(name) as conn:
            apply_schema(conn)
            for user in users:
                conn.execute("INSERT INTO users (user_id, display_name, role) VALUES (%s, %s, %s)", user)
        return DbEndpoint(host="127.0.0.1", port=writer.port, database=name, username=SUPERUSER, password="")

    return make


def test_every_records_table_is_fingerprinted_with_its_row_count(database: Callable[..., DbEndpoint]) -> None:
    found = fingerprint(database(USERS))
    assert sorted(found) == sorted(TABLES)
    assert found["users"]["rows"] == 3
    assert found["patients"] == {"rows": 0, "checksum": ""}
    assert len(found["users"]["checksum"]) == 32


def test_the_same_rows_written_in_another_order_have_the_same_fingerprint(
        database: Callable[..., DbEndpoint]) -> None:
    assert fingerprint(database(USERS)) == fingerprint(database(list(reversed(USERS))))


def test_a_changed_row_changes_the_checksum_but_not_the_count(database: Callable[..., DbEndpoint]) -> None:
    changed = [*USERS[:2], ("u-3", "Clerk Three", "auditor")]
    before, after = fingerprint(database(USERS))["users"], fingerprint(database(changed))["users"]
    assert after["rows"] == before["rows"]
    assert after["checksum"] != before["checksum"]


def test_a_table_the_schema_gains_is_fingerprinted_without_a_change_here(writer: Node,
                                                                         database: Callable[..., DbEndpoint]) -> None:
    records = database(USERS)
    with writer.connect(records.database) as conn:
        conn.execute('CREATE TABLE "Consent Forms" (form_id text PRIMARY KEY)')
        conn.execute("""INSERT INTO "Consent Forms" VALUES ('cf-1'), ('cf-2')""")
    assert fingerprint(records)["Consent Forms"]["rows"] == 2


def backed_up(**tables: dict[str, Any]) -> Fingerprint:
    return {"users": {"rows": 3, "checksum": "a" * 32}, "scans": {"rows": 5, "checksum": "b" * 32}, **tables}


def test_identical_fingerprints_have_no_difference() -> None:
    assert differences(backed_up(), backed_up()) == []


def test_a_table_missing_after_restore_is_a_difference() -> None:
    restored = backed_up()
    del restored["scans"]
    assert differences(backed_up(), restored) == ["scans: missing after restore"]


def test_a_table_the_backup_did_not_have_is_a_difference() -> None:
    assert differences(backed_up(), backed_up(extra={"rows": 0, "checksum": ""})) == [
        "extra: not in the backup fingerprint"]


def test_fewer_rows_restored_is_a_difference() -> None:
    assert differences(backed_up(), backed_up(users={"rows": 2, "checksum": "a" * 32})) == [
        "users: 2 rows restored, 3 backed up"]


def test_changed_rows_under_the_same_count_are_a_difference() -> None:
    assert differences(backed_up(), backed_up(users={"rows": 3, "checksum": "c" * 32})) == [
        "users: same 3 rows but the checksum differs (rows changed)"]


def test_a_backup_fingerprint_of_no_table_proves_nothing() -> None:
    assert differences({}, {}) == ["the backup fingerprint covers no table"]
